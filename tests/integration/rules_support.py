"""An enforcer under one test-written agreement with field rules, for integration tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.kafka.admin import TopicAdmin
from broker.parties.recipient import FeedProblem, VerifiedDelivery
from broker.wire.topics import TopicNames
from tests.integration.conftest import Exchange, make_settings

AGREEMENT = """
id: rules-nl-be
version: {version}
title: NL-BE rules test
purpose: integration tests of field rules
parties: [NL, BE, DE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling, terrorism]
max_marking: TLP:AMBER
field_rules:
{rules}
"""

RULES = """  "*":
    - {field: "subjects[].full_name", action: pseudonymise}
    - {field: "subjects[].travel_documents[].number", action: redact}
    - {field: "subjects[].date_of_birth", action: generalise, to: year}
    - {field: location, action: generalise, to: 0.1deg}
    - {field: observed_at, action: generalise, to: hour}
  terrorism:
    - {action: embargo, after: 6s}
"""


def write_agreement(policies: Path, *, version: int = 1, rules: str = RULES) -> None:
    text = AGREEMENT.format(version=version, rules=rules)
    (policies / "agreements" / "rules-nl-be.yaml").write_text(text)


async def rules_settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    """Settings whose policies hold only the rules test agreement, with keys for NL, BE, DE."""
    for existing in (policies_dir / "agreements").glob("*.yaml"):
        existing.unlink()  # only this test's agreement decides
    write_agreement(policies_dir)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir).model_copy(
        update={"policy_check_interval_s": 0.1}
    )
    provision_keys(settings, ["NL", "BE", "DE"])
    topics = TopicNames(settings.topic_namespace)
    admin = TopicAdmin(kafka_bootstrap)
    await admin.start()
    await admin.ensure([*(topics.submit(n) for n in ["NL", "BE", "DE"]), topics.held])
    await admin.close()
    return settings


def verified(items: list[VerifiedDelivery | FeedProblem]) -> list[VerifiedDelivery]:
    assert not [i for i in items if isinstance(i, FeedProblem)], items
    return [i for i in items if isinstance(i, VerifiedDelivery)]


async def feed_until(
    exchange: Exchange, nation: str, count: int, timeout_s: float
) -> list[VerifiedDelivery]:
    deadline = time.monotonic() + timeout_s
    while True:
        received = verified(await exchange.feed(nation))
        if len(received) >= count or time.monotonic() > deadline:
            return received
        await asyncio.sleep(0.5)
