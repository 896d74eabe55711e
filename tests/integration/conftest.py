"""Fixtures for tests that run the real enforcer against the session's broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.app.assembly import provision_keys
from broker.app.enforcer_process import run_enforcer
from broker.app.settings import Settings
from broker.domain.report import ThreatReport
from broker.enforcer.processor import EnforcerStats
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import FeedProblem, VerifiedDelivery, read_feed
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.support.kafka import SESSION_TIMEOUT_MS
from tests.support.submissions import resealed, seal_record

pytestmark = pytest.mark.integration

NL_BE_AGREEMENT = """
id: test-nl-be
version: 4
title: NL-BE test agreement
purpose: integration tests
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling, document_fraud]
max_marking: TLP:AMBER
field_rules:
  "*":
    - {field: "subjects[].travel_documents[].number", action: redact}
  smuggling:
    - {field: summary, action: redact}
"""


@dataclass
class Exchange:
    """A running enforcer on fresh topics, with keys for NL, BE and DE."""

    settings: Settings
    bootstrap: str
    stats: EnforcerStats
    catalog: SchemaCatalog

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.settings.topic_namespace)

    @property
    def agreements(self) -> PartyAgreements:
        """The agreements the recipients are party to: the test's own agreement files."""
        return PartyAgreements.from_directory(self.settings.policies_dir / "agreements")

    def seal(
        self,
        report: ThreatReport,
        *,
        key_nation: str | None = None,
        topic_nation: str | None = None,
    ) -> OutboundRecord:
        """``report`` signed by ``key_nation``'s agency key (default: the report's origin).

        Sealed as the agency of the topic's nation seals it (``topic_nation``,
        default the signer's).
        """
        nation = key_nation or report.origin
        return OutboundRecord(
            topic=self.topics.submit(topic_nation or nation),
            key=str(report.report_id).encode(),
            value=seal_record(
                self.settings,
                self.catalog,
                report_to_record(report),
                key_nation=nation,
                topic_nation=topic_nation,
            ),
        )

    def resealed(self, record: OutboundRecord, change: Callable[[bytes], bytes]) -> OutboundRecord:
        """``record`` with its signed submission changed by ``change`` and sealed again."""
        return resealed(self.settings, self.catalog, record, change)

    async def publish(self, nation: str, records: list[OutboundRecord]) -> None:
        """Send records sealed elsewhere, as ``nation``'s adapter (which needs no key to send)."""
        admin = TopicAdmin(self.bootstrap)
        producer = OutputProducer(self.bootstrap, admin, client_id=f"test-publisher-{nation}")
        try:
            await admin.start()
            await producer.start()
            await producer.send_all(records)
        finally:
            await producer.stop()
            await admin.close()

    async def wait_completed(self, count: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.stats.completed < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"enforcer completed {self.stats.completed} of {count}")
            await asyncio.sleep(0.05)

    async def feed(self, nation: str) -> list[VerifiedDelivery | FeedProblem]:
        registry = RegistryFile(self.settings.registry_path)
        return [
            item
            async for item in read_feed(
                bootstrap=self.bootstrap,
                topics=self.topics,
                nation=nation,
                catalog=self.catalog,
                registry=registry.current,
                keys=Keystore(self.settings.keystore_dir),
                idle_timeout_s=1.5,
            )
        ]

    async def rejections(self, nation: str) -> list[dict[str, object]]:
        return [
            self.catalog.decode(record.value or b"", REJECTION_SCHEMA)
            async for record in read_topic(
                self.bootstrap, self.topics.rejected(nation), idle_timeout_s=1.5
            )
        ]


def make_settings(tmp_path: Path, bootstrap: str, policies: Path) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        home=tmp_path / "home",
        policies_dir=policies,
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        group_id=f"g{uuid.uuid4().hex[:8]}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        metrics_addr="127.0.0.1:0",  # tests run side by side: no fixed port
    )


@pytest.fixture
async def exchange(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> AsyncIterator[Exchange]:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    async with enforcer(settings) as running:
        yield running


async def nl_be_settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    """Settings under the NL-BE test agreement, keys for NL, BE, DE and their submit topics."""
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE", "DE"])
    # Create the submission topics first, so the enforcer's pattern subscription
    # sees them at once instead of at its next metadata refresh.
    admin = TopicAdmin(kafka_bootstrap)
    await admin.start()
    try:
        await admin.ensure(
            TopicNames(settings.topic_namespace).submit(n) for n in ["NL", "BE", "DE"]
        )
    finally:
        await admin.close()
    return settings


@contextlib.asynccontextmanager
async def enforcer(
    settings: Settings, *, on_listening: Callable[[tuple[str, int]], None] | None = None
) -> AsyncIterator[Exchange]:
    """A real enforcer in this process, from started until the block ends (stopped even then)."""
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    stats = EnforcerStats()
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_enforcer(
            settings, bootstrap, stop, started=started, stats=stats, on_listening=on_listening
        )
    )
    try:
        await asyncio.wait_for(started.wait(), timeout=30)
        yield Exchange(settings, bootstrap, stats, SchemaCatalog.load())
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
