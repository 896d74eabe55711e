"""Kafka, through aiokafka: the only module that imports it.

The enforcer sees three small things here: a consumer of submission topics
that fetches batches and commits explicit offsets, a producer that sends a
whole batch of outputs and returns only once every one is acknowledged, and
a feed reader for recipients and auditors. aiokafka's errors are wrapped in
:class:`~broker.errors.TransportError` at this boundary.

The producer is idempotent (``acks=all``): a send the client retries is
written once. Delivery is still at least once, not exactly once: a batch
whose offsets were not committed before a crash is processed and sent
again, and every output carries a stable id for the receiver to
de-duplicate (README, "At least once, not Kafka transactions"). Tansu, the no-JVM
fallback (broker/kafka/embedded), cannot serve idempotence; with it the
producer runs without.

When the consumer group rebalances, the submission consumer lets the batch
in flight finish and commit before its partitions go (see
:class:`SubmissionConsumer`), so a rebalance does not make the next owner
redo work that was already delivered.

A partition can also be paused at a record the caller cannot process yet
(the policy engine could not decide): :meth:`SubmissionConsumer.pause_at`
rewinds it there and fetches nothing from it until the pause ends, so an
outage leaves the backlog in Kafka instead of in memory.

A record batch the consumer cannot decode (a codec it lacks, a corrupt or
CRC-failing batch) is handed over as one
:class:`~broker.wire.records.UndecodableBatch` in its records' place, and
the partition reads on after it (broker/kafka/undecodable.py).
"""
