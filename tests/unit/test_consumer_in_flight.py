"""What the consumer still counts as in flight (and waits for on revoke) after a commit.

White-box: the batches in flight are set as two overlapping fetches would
leave them; the commit fails for real (aiokafka refuses a consumer that has
not joined), so no broker is needed.
"""

from __future__ import annotations

import pytest

from broker.errors import TransportError
from broker.kafka.consumer import SubmissionConsumer

TOPIC = "ixb.submit.NL"


async def test_a_failed_commit_of_one_batch_leaves_the_batch_fetched_after_it_in_flight() -> None:
    consumer = SubmissionConsumer("127.0.0.1:1", group_id="g", pattern=TOPIC, max_poll_records=1)
    # batch N up to offset 5 on partition 0; batch N+1 fetched meanwhile: 0 up to 10, 1 up to 5
    consumer._in_flight = {(TOPIC, 0): 10, (TOPIC, 1): 5}
    consumer._settled.clear()
    try:
        with pytest.raises(TransportError):
            await consumer.commit({(TOPIC, 0): 5})  # batch N's commit fails

        assert consumer._in_flight == {(TOPIC, 0): 10, (TOPIC, 1): 5}
        assert not consumer._settled.is_set(), "a revoke still waits for batch N+1"

        consumer._in_flight = {(TOPIC, 1): 5}
        with pytest.raises(TransportError):
            await consumer.commit({(TOPIC, 1): 5})

        assert consumer._settled.is_set()
        assert not consumer._last_committed, "a revoke then reports the batch abandoned"
    finally:
        await consumer.stop()
