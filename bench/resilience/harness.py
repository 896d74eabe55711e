"""One resilience run: publish under chaos, wait until quiescent, judge against the oracle.

The steps:

1. a fresh namespace and consumer group on the given Kafka (or a fresh
   embedded one), keys for the seven scenario nations, the repository's
   policies, and the workload sealed in advance (signing is not under test);
2. ``processes`` enforcers, each ``ixb run`` in its own process group, until
   their group is stable;
3. the workload published in bursts over a window, while a chaos schedule
   (drawn from the seed) SIGKILLs a random enforcer at random moments and
   restarts it, and adds and later gracefully removes an extra enforcer
   (``rebalances`` times);
4. quiescence: the group has committed every submission, and stays so;
5. every enforcer stopped with SIGTERM: each must exit 0 within the bound;
6. every feed and rejected topic read back and judged by the oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.embedded import Kafka, kafka_for
from bench.kafka import GroupProbe
from bench.resilience.fleet import Fleet
from bench.resilience.oracle import Verdict, expected, judge, observe
from bench.resilience.workload import SealerFor, Workload, reports, workload
from bench.workspace import Phase
from broker.app.assembly import load_catalog, provision_keys, signer_for
from broker.app.settings import Settings
from broker.cli.demo.scenario import NATIONS
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.parties.agency import Publisher
from broker.parties.derivations import PartyAgreements
from broker.trust.envelopes import Signer
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.wire.topics import TopicNames

Say = Callable[[str], None]
BASE = "enforcer-"  # the slots started first and kept to the end; extras come and go
STOP_BOUND_S = 10.0  # a SIGTERMed enforcer exits 0 within this
LOG_EVENTS = ("revoke_waited_for_batch", "revoked_with_batch_in_flight", "commit_failed")


@dataclass(frozen=True, slots=True)
class Preset:
    reports: int = 20_000  # valid reports; submissions to refuse come on top
    processes: int = 2
    kills: int = 10
    rebalances: int = 1  # times an extra enforcer joins and later leaves
    seed: int = 7
    partitions: int = 3  # per submission topic
    refused_every: int = 50  # one submission to refuse after every this many valid ones
    bursts: int = 20
    publish_s: float = 0.0  # the publishing window; 0: from the report count
    settle_timeout_s: float = 300.0
    session_timeout_ms: int = 0  # 0: broker/kafka/embedded's rule for the Kafka it runs on

    @property
    def window_s(self) -> float:
        return self.publish_s or max(8.0, self.reports / 400)


QUICK = Preset(reports=1500, processes=2, kills=3, rebalances=1, bursts=10, settle_timeout_s=60)


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    seconds: float

    @property
    def ok(self) -> bool:
        return self.verdict.ok


async def run_resilience(
    preset: Preset, base: Settings, *, workdir: Path | None = None, say: Say = lambda _: None
) -> Outcome:
    """The whole run; ``base.kafka_bootstrap`` unset means a fresh embedded Kafka."""
    started = time.monotonic()
    with _directory(workdir) as root:
        async with kafka_for(base, say) as kafka:
            say(f"on {kafka.description}")
            run = _Run(preset, _settings(base, root, kafka, preset), root, say)
            verdict = await run.go()
    return Outcome(verdict, time.monotonic() - started)


def _settings(base: Settings, root: Path, kafka: Kafka, preset: Preset) -> Settings:
    """Fresh names on ``kafka``, with its session timeout (the rule's, or the preset's)."""
    tag = uuid.uuid4().hex[:8]
    settings = kafka.settings(base).model_copy(
        update={
            "home": root / "home",
            "topic_namespace": f"resilience-{tag}",
            "group_id": f"resilience-{tag}",
        }
    )
    if preset.session_timeout_ms:
        settings = settings.model_copy(
            update={"consumer_session_timeout_ms": preset.session_timeout_ms}
        )
    return settings


@contextlib.contextmanager
def _directory(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="ixb-resilience-") as temporary:
        yield Path(temporary)


class _Run:
    def __init__(self, preset: Preset, settings: Settings, root: Path, say: Say) -> None:
        self.preset = preset
        self.settings = settings
        self.root = root
        self.say = say
        self.bootstrap = settings.kafka_bootstrap or ""
        self.topics = TopicNames(settings.topic_namespace)
        self.catalog = load_catalog(settings)
        self.rng = random.Random(preset.seed)  # noqa: S311 - a reproducible schedule, not secrets
        (root / "logs").mkdir(exist_ok=True)
        self.fleet = Fleet(Phase(settings, self.bootstrap).env(), root / "logs")
        self.probe = GroupProbe(self.bootstrap, settings.group_id)

    async def go(self) -> Verdict:
        p = self.preset
        registry = provision_keys(self.settings, list(NATIONS))
        await self._create_topics()
        now = dt.datetime.now(dt.UTC)
        producer, admin = await self._producer()
        try:
            self.say(f"sealing {p.reports:,} reports from {', '.join(NATIONS)}")
            load = workload(
                reports(p.reports, seed=p.seed, now=now),
                self._sealer(producer),
                self.topics,
                refused_every=p.refused_every,
                seed=p.seed,
            )
            self.say("deciding every (report, partner) pair with the same policies")
            expectation = expected(
                self.settings.policies_dir,
                self.catalog,
                registry=registry,
                submissions=load.submissions,
                topics=self.topics,
                now=now,
            )
            await self.probe.start()
            try:
                problems = await self._under_chaos(load, producer)
            finally:
                self.fleet.close()
                await self.probe.stop()
        finally:
            await producer.stop()
            await admin.close()
        self.say("reading every feed and rejected topic")
        agreements = PartyAgreements.from_directory(self.settings.policies_dir / "agreements")
        seen = await observe(
            self.bootstrap,
            self.topics,
            self.catalog,
            registry,
            NATIONS,
            agreements=agreements,
            keys=Keystore(self.settings.keystore_dir),
        )
        verdict = judge(expectation, seen)
        events = self.fleet.log_events(LOG_EVENTS)
        verdict.counts.update(
            submissions=len(load.submissions),
            valid_reports=len(load.valid),
            kills=self.fleet.kills,
            restarts=self.fleet.restarts,
            rebalances_added=p.rebalances,
            revoke_drained=events["revoke_waited_for_batch"],
            revoke_abandoned=events["revoked_with_batch_in_flight"],
            commit_failed=events["commit_failed"],
            slowest_stop_ms=round(1000 * max((s.seconds for s in self.fleet.stopped), default=0)),
        )
        for name, found in problems.items():
            verdict.violations[name] = found
            verdict.counts[name] = len(found)
        return verdict

    async def _under_chaos(self, load: Workload, producer: OutputProducer) -> dict[str, list[str]]:
        p = self.preset
        submit = await self.probe.partitions(self.topics.submit(n) for n in NATIONS)
        self.say(f"starting {p.processes} enforcers")
        for i in range(p.processes):
            self.fleet.start(f"{BASE}{i}")
        await self._until_stable(p.processes)
        self.say(
            f"publishing {len(load.submissions):,} submissions in {p.bursts} bursts over "
            f"{p.window_s:.0f} s; {p.kills} kills, {p.rebalances} extra enforcer(s) in and out"
        )
        background: list[asyncio.Task[None]] = []
        await asyncio.gather(
            self._publish(load, producer), self._chaos(background), return_exceptions=False
        )
        await asyncio.gather(*background)
        self.say("waiting until every submission is committed")
        settled = await self._until_committed(submit, len(load.submissions))
        stops = await self.fleet.stop_all(timeout_s=STOP_BOUND_S)
        self.say(
            "stopped with SIGTERM: "
            + ", ".join(f"{s.slot} exit {s.code} in {s.seconds:.1f} s" for s in stops)
        )
        committed = await self.probe.committed_total(submit)
        return {
            "enforcer_crashed": list(self.fleet.crashed),
            "not_quiescent": []
            if settled
            else [f"committed {committed} of {len(load.submissions)}"],
            "graceful_stop": [
                f"{s.slot}: exit {s.code} after {s.seconds:.1f} s"
                for s in self.fleet.stopped
                if s.code != 0
            ],
            "commit_after_stop": []
            if committed == len(load.submissions)
            else [f"committed {committed} of {len(load.submissions)} after the enforcers stopped"],
        }

    async def _publish(self, load: Workload, producer: OutputProducer) -> None:
        p = self.preset
        records = [s.record for s in load.submissions]
        size = -(-len(records) // p.bursts)
        pause = p.window_s / p.bursts
        for start in range(0, len(records), size):
            await producer.send_all(records[start : start + size])
            await asyncio.sleep(pause)

    async def _chaos(self, background: list[asyncio.Task[None]]) -> None:
        """Kills, restarts and one extra enforcer per rebalance, on a seeded schedule."""
        p, w = self.preset, self.preset.window_s
        plan = [(self.rng.uniform(0.05 * w, w), "kill", "") for _ in range(p.kills)]
        for i in range(p.rebalances):
            joins = self.rng.uniform(0.1 * w, 0.7 * w)
            plan.append((joins, "add", f"extra-{i}"))
        started = time.monotonic()
        for at, action, slot in sorted(plan):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
            self.fleet.restart_crashed()
            if action == "kill":
                # Not the extra enforcers: each must really join, and later leave gracefully.
                victims = [v for v in self.fleet.alive() if v.startswith(BASE)]
                if victims:
                    victim = self.rng.choice(victims)
                    self.fleet.kill(victim)
                    background.append(asyncio.create_task(self._restart(victim)))
            else:
                self.fleet.start(slot)
                stay = self.rng.uniform(2, 6)
                background.append(asyncio.create_task(self._remove(slot, stay)))

    async def _restart(self, slot: str) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # a supervisor's restart delay
        self.fleet.start(slot)

    async def _remove(self, slot: str, after_s: float) -> None:
        """Stop ``slot`` gracefully ``after_s`` after it has started consuming."""
        for _ in range(600):  # polls its log, for at most a minute
            if self.fleet.has_started(slot):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(after_s)
        stopped = await self.fleet.stop(slot, timeout_s=STOP_BOUND_S)
        self.say(f"removed {slot}: exit {stopped.code} in {stopped.seconds:.1f} s")

    async def _until_stable(self, members: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.probe.members() != ("Stable", members):
            self.fleet.restart_crashed()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{members} enforcers did not form a stable group in time")
            await asyncio.sleep(0.1)

    async def _until_committed(self, submit: list[object], total: int, hold_s: float = 1.0) -> bool:
        """True once the group has committed all ``total`` submissions for ``hold_s``."""
        deadline = time.monotonic() + self.preset.settle_timeout_s
        since: float | None = None
        while time.monotonic() < deadline:
            self.fleet.restart_crashed()
            if await self.probe.committed_total(submit) >= total:
                since = since or time.monotonic()
                if time.monotonic() - since >= hold_s:
                    return True
            else:
                since = None
            await asyncio.sleep(0.1)
        return False

    async def _create_topics(self) -> None:
        """Everything first, so the enforcers' pattern subscription sees it at once."""
        submit = TopicAdmin(self.bootstrap, partitions=self.preset.partitions)
        outputs = TopicAdmin(self.bootstrap)
        for admin in (submit, outputs):
            await admin.start()
        try:
            await submit.ensure(self.topics.submit(n) for n in NATIONS)
            await outputs.ensure(
                [
                    *(self.topics.deliver(n) for n in NATIONS),
                    *(self.topics.rejected(n) for n in NATIONS),
                    self.topics.held,
                ]
            )
        finally:
            for admin in (submit, outputs):
                await admin.close()

    async def _producer(self) -> tuple[OutputProducer, TopicAdmin]:
        admin = TopicAdmin(self.bootstrap)
        producer = OutputProducer(
            self.bootstrap,
            admin,
            client_id="ixb-resilience",
            idempotent=self.settings.kafka_idempotence,
        )
        await admin.start()
        await producer.start()
        return producer, admin

    def _sealer(self, producer: OutputProducer) -> SealerFor:
        publishers: dict[tuple[str, str | None], Publisher] = {}
        impostor_keys = Keystore(self.root / "unregistered-keys")

        def sealer(claims: str, signed_by: str | None) -> Publisher:
            if (claims, signed_by) not in publishers:
                if signed_by is None:
                    record, private = impostor_keys.generate(role=KeyRole.AGENCY, nation=claims)
                    signer = Signer(record.key_id, private, self.catalog)
                else:
                    signer = signer_for(
                        self.settings, self.catalog, role=KeyRole.AGENCY, nation=signed_by
                    )
                publishers[claims, signed_by] = Publisher(
                    nation=claims,
                    catalog=self.catalog,
                    signer=signer,
                    producer=producer,
                    topics=self.topics,
                    registry=RegistryFile(self.settings.registry_path).current,
                )
            return publishers[claims, signed_by]

        return sealer
