"""``python -m bench.repeats``: what one enforcer writes twice while submit topics appear.

Issue 18 saw a first-time user's run write 220-250 decision-log entries
and some held records twice in two of three runs: each nation's submit
topic was created by its first publish, and every new topic made the
enforcer's consumer group rebalance while a batch was in flight. This run
does the same on a fresh embedded Kafka (or ``IXB_KAFKA_BOOTSTRAP``): keys
for the seven scenario nations, no submit topic created beforehand, one
enforcer in this process, then each nation publishes its reports in turn
through its own publisher (which creates the topic on its first send), a
short gap apart. When the group has been quiet for a while, it counts:

- ``decision_repeats``: decision-log entries naming a decision already
  logged (same outcome, recipient, report, submission and delivery),
  whichever writer and number they carry, plus exact copies;
- ``held_repeats``: held records with a delivery id already held;
- ``delivery_repeats``: deliveries with an id already on the recipient's topic
  (the recipient drops them; counted for the picture);
- ``revoke_drained`` / ``revoke_abandoned`` / ``commit_failed``: the
  enforcer's own log events (broker/kafka/consumer.py, runner.py);
- ``evicted``: aiokafka's word that the group no longer knew the member (a
  session missed on a busy machine: repeats with another cause).

Zero repeats are not guaranteed by at-least-once delivery: a batch redone
after a crash still writes twice. This run has no crash, so every repeat
it counts comes from the group moving partitions under a batch.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

from structlog.testing import capture_logs

from bench.embedded import kafka_for
from broker.app import logs
from broker.app.assembly import open_publisher, provision_keys
from broker.app.enforcer_process import run_enforcer
from broker.app.settings import Settings
from broker.auditlog.entries import AUDIT_ENTRY_SCHEMA, entry_from_record
from broker.cli.demo.scenario import NATIONS, build
from broker.enforcer.processor import EnforcerStats
from broker.enforcer.stages.fanout import HELD_SCHEMA
from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames

QUIET_S = 12.0  # no new entry for this long (two metadata refreshes): the run is over


@dataclasses.dataclass
class Counted:
    submissions: int = 0
    decision_entries: int = 0
    decision_repeats: int = 0
    held_records: int = 0
    held_repeats: int = 0
    deliveries: int = 0
    delivery_repeats: int = 0
    revoke_drained: int = 0  # revocations that found a batch in flight and let it commit
    revoke_abandoned: int = 0  # ... that found one it could not commit (redone: repeats)
    commit_failed: int = 0
    evicted: int = 0  # aiokafka: the group no longer knew the member (a missed session)


async def one_run(base: Settings, root: Path, *, per_nation: int, gap_s: float) -> Counted:
    """One fresh namespace and group, one enforcer, each nation publishing in turn."""
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "home": root / tag,
            "topic_namespace": f"repeats-{tag}",
            "group_id": f"repeats-{tag}",
            "metrics_addr": "",
        }
    )
    bootstrap = settings.kafka_bootstrap or ""
    provision_keys(settings, list(NATIONS))
    scenario = build(seed=7, per_nation=per_nation)
    stats, stop, started = EnforcerStats(), asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        run_enforcer(settings, bootstrap, stop, started=started, stats=stats)
    )
    counted = Counted()
    evictions = _Evictions()
    logging.getLogger("aiokafka").addHandler(evictions)
    with capture_logs() as captured:
        try:
            await asyncio.wait_for(started.wait(), 60)
            for nation in NATIONS:
                async with open_publisher(settings, bootstrap, nation) as publisher:
                    await publisher.publish(scenario.reports[nation])
                counted.submissions += len(scenario.reports[nation])
                await asyncio.sleep(gap_s)
            await _quiet(stats)
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)
    logging.getLogger("aiokafka").removeHandler(evictions)
    counted.evicted = evictions.count
    events = collections.Counter(str(e.get("event")) for e in captured)
    counted.revoke_drained = events["revoke_waited_for_batch"]
    counted.revoke_abandoned = events["revoked_with_batch_in_flight"]
    counted.commit_failed = events["commit_failed"]
    await _count(settings, bootstrap, counted)
    return counted


class _Evictions(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "UnknownMemberId" in record.getMessage() or "not recognized" in record.getMessage():
            self.count += 1


async def _quiet(stats: EnforcerStats) -> None:
    last, since = -1, time.monotonic()
    while time.monotonic() - since < QUIET_S:
        await asyncio.sleep(0.5)
        if stats.completed != last:
            last, since = stats.completed, time.monotonic()


async def _count(settings: Settings, bootstrap: str, counted: Counted) -> None:
    topics = TopicNames(settings.topic_namespace)
    catalog = SchemaCatalog.load()
    decisions: collections.Counter[tuple[object, ...]] = collections.Counter()
    async for record in read_topic(bootstrap, topics.audit, idle_timeout_s=2.0):
        event = entry_from_record(catalog.decode(record.value or b"", AUDIT_ENTRY_SCHEMA)).event
        sub = event.submission
        where = None if sub is None else (sub.topic, sub.partition, sub.offset)
        key = (event.outcome, event.recipient, event.report_id, where, event.delivery_id)
        decisions[key] += 1
    counted.decision_entries = sum(decisions.values())
    counted.decision_repeats = sum(n - 1 for n in decisions.values())
    held: collections.Counter[str] = collections.Counter()
    async for record in read_topic(bootstrap, topics.held, idle_timeout_s=2.0):
        held[catalog.decode(record.value or b"", HELD_SCHEMA)["delivery_id"]] += 1
    counted.held_records = sum(held.values())
    counted.held_repeats = sum(n - 1 for n in held.values())
    admin = TopicAdmin(bootstrap)
    await admin.start()
    try:
        existing = await admin.topics()
    finally:
        await admin.close()
    delivered: collections.Counter[bytes] = collections.Counter()
    for nation in NATIONS:
        if topics.deliver(nation) not in existing:
            continue
        async for record in read_topic(bootstrap, topics.deliver(nation), idle_timeout_s=1.0):
            delivered[record.key or b""] += 1
    counted.deliveries = sum(delivered.values())
    counted.delivery_repeats = sum(n - 1 for n in delivered.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.repeats", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-nation", type=int, default=9, help="reports per nation (9: 63)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two nations")
    args = parser.parse_args(argv)
    logs.configure(level="WARNING")
    results = asyncio.run(_runs(args.runs, args.per_nation, args.gap))
    names = [f.name for f in dataclasses.fields(Counted)]
    print("run " + " ".join(names))
    for index, counted in enumerate(results, 1):
        print(f"{index} " + " ".join(str(getattr(counted, n)) for n in names))
    return 0


async def _runs(runs: int, per_nation: int, gap_s: float) -> list[Counted]:
    results = []
    with tempfile.TemporaryDirectory(prefix="ixb-repeats-") as temporary:
        async with kafka_for(Settings(), print) as kafka:
            # The session timeout `ixb run` has (10 s), not the tests' 2 s: a member dropped
            # for a missed heartbeat on a busy machine is another source of repeats.
            base = kafka.settings(Settings()).model_copy(
                update={"consumer_session_timeout_ms": Settings().consumer_session_timeout_ms}
            )
            for _ in range(runs):
                results.append(
                    await one_run(base, Path(temporary), per_nation=per_nation, gap_s=gap_s)
                )
    return results


if __name__ == "__main__":
    sys.exit(main())
