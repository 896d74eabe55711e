"""Agreements' field rules, embargo and hot reload, through the running enforcer.

Each test writes its own agreement, runs real enforcers against the
session's broker and reads what each recipient received.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.reader import read_topic
from broker.parties.recipient import VerifiedDelivery
from broker.policy.source import request_reload
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import (
    RULES,
    feed_until,
    rules_settings,
    verified,
    write_agreement,
)
from tests.support.opa_server import OpaServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


async def test_pseudonyms_link_reports_about_one_person_and_values_are_generalised(
    settings: Settings,
) -> None:
    observed = dt.datetime(2026, 11, 22, 9, 41, 17, tzinfo=dt.UTC)
    first = make_report("NL", observed_at=observed)
    second = make_report("NL", observed_at=observed)  # same people, another report
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(first), exchange.seal(second)])
        await exchange.wait_completed(2)
        be = verified(await exchange.feed("BE"))
        de = verified(await exchange.feed("DE"))

    assert len(be) == 2
    assert len(de) == 2
    names = [[s.full_name for s in d.report.subjects] for d in be]
    assert names[0] == names[1], "the same person has the same pseudonym in both reports"
    assert names[0][0] != names[0][1], "different people have different pseudonyms"
    assert all(n is not None and n.startswith("ps1-") for n in names[0])
    # Under one agreement every recipient sees the same pseudonym.
    assert [s.full_name for s in de[0].report.subjects] == names[0]
    received = be[0].report
    assert received.observed_at == dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)
    assert received.subjects[0].date_of_birth == dt.date(1984, 1, 1)
    assert received.location is not None
    assert (received.location.latitude, received.location.longitude) == (51.5, 4.7)
    assert received.location.precision_m == 11132
    assert received.location.border_sector == "A16 Hazeldonk"
    assert [d.number for d in received.subjects[0].travel_documents] == [None, None]
    assert be[0].withheld_fields == ("subjects[].travel_documents[].number",)
    assert {(d.field, d.action, d.to) for d in be[0].derived_fields} == {
        ("subjects[].full_name", "pseudonymise", None),
        ("subjects[].date_of_birth", "generalise", "year"),
        ("location", "generalise", "0.1deg"),
        ("observed_at", "generalise", "hour"),
    }
    # Fields without rules arrive exactly as issued.
    assert received.summary == first.summary
    assert received.vehicles == first.vehicles


async def test_an_embargoed_report_is_held_in_kafka_and_released_after_a_restart(
    settings: Settings,
) -> None:
    report = make_report("NL", report_type="terrorism", observed_at=dt.datetime.now(dt.UTC))
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        assert exchange.stats.held == 2  # BE and DE, both under embargo
        assert exchange.stats.deliveries == 0
        assert verified(await exchange.feed("BE")) == []
    due = dt.datetime.fromtimestamp(int(report.observed_at.timestamp()) + 6, dt.UTC)
    assert dt.datetime.now(dt.UTC) < due, "the first enforcer must stop before the embargo ends"
    # The enforcer is gone before the embargo ends; a new one must release it.
    async with enforcer(settings) as restarted:
        released = await feed_until(restarted, "BE", 1, timeout_s=30)
        assert len(verified(await restarted.feed("DE"))) == 1
        [raw] = [
            r
            async for r in read_topic(
                restarted.bootstrap, restarted.topics.deliver("BE"), idle_timeout_s=1.5
            )
        ]
    # A released delivery is the same record as one delivered at once, headers included.
    assert ("ixb-origin", b"NL") in raw.headers
    assert raw.key == released[0].delivery_id.encode()

    [delivery] = released
    assert delivery.report.report_id == report.report_id
    assert delivery.not_before == due


# A release refused after the agreement changed: test_audit_running.py, with its log entries.


async def test_a_changed_agreement_applies_from_the_next_batch_and_a_broken_one_is_refused(
    settings: Settings,
) -> None:
    first, second, third = make_report("NL"), make_report("NL"), make_report("NL")
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(first)])
        await exchange.wait_completed(1)

        write_agreement(
            settings.policies_dir,
            version=2,
            rules=RULES + "  smuggling:\n    - {field: summary, action: redact}\n",
        )
        request_reload(settings.reload_request_file, "test")
        await asyncio.sleep(0.5)
        await exchange.publish("NL", [exchange.seal(second)])
        await exchange.wait_completed(2)

        (settings.policies_dir / "agreements" / "broken.yaml").write_text("id: [unclosed\n")
        await asyncio.sleep(0.5)
        await exchange.publish("NL", [exchange.seal(third)])
        await exchange.wait_completed(3)
        # The feed is ordered per partition, not by publication: find each by id.
        received = {d.report.report_id: d for d in verified(await exchange.feed("BE"))}

    assert len(received) == 3
    before, changed, kept = (received[r.report_id] for r in (first, second, third))
    assert before.agreement_version == 1
    assert before.report.summary is not None
    assert changed.agreement_version == 2
    assert changed.policy_bundle_hash != before.policy_bundle_hash
    assert changed.report.summary is None
    assert "summary" in changed.withheld_fields
    # The broken file was refused: the last good bundle kept deciding.
    assert kept.policy_bundle_hash == changed.policy_bundle_hash
    assert kept.agreement_version == 2


async def test_held_deliveries_wait_on_the_held_topic_not_the_recipients(
    settings: Settings,
) -> None:
    report = make_report("NL", report_type="terrorism", observed_at=dt.datetime.now(dt.UTC))
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        held = [
            r
            async for r in read_topic(exchange.bootstrap, exchange.topics.held, idle_timeout_s=1.5)
        ]
        assert len(held) == 2
        assert verified(await exchange.feed("BE")) == []
        assert b"Adrian Varga" not in b"".join(r.value or b"" for r in held)


async def test_the_enforcer_decides_through_an_opa_server_with_the_same_results(
    settings: Settings, opa: OpaServer
) -> None:
    """IXB_OPA_URL: the bundle is pushed to the real OPA server and every decision asked of it."""
    observed = dt.datetime(2026, 11, 22, 9, 41, 17, tzinfo=dt.UTC)
    report = make_report("NL", observed_at=observed)
    in_process: list[VerifiedDelivery] = []
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        in_process = verified(await exchange.feed("BE"))
    evaluations = opa.evaluations()
    through_opa = settings.model_copy(
        update={"opa_url": opa.url, "topic_namespace": settings.topic_namespace + "opa"}
    )
    async with enforcer(through_opa) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        via_server = verified(await exchange.feed("BE"))
    assert opa.evaluations() > evaluations

    [local], [remote] = in_process, via_server
    assert remote.report == local.report  # same rules, same pseudonyms, same generalisations
    assert remote.policy_bundle_hash == local.policy_bundle_hash
    assert (remote.agreement_id, remote.agreement_version) == ("rules-nl-be", 1)
    assert remote.derived_fields == local.derived_fields


OVERLAPPING = """
id: aa-nl-be-overlap
version: 2
title: An NL-BE agreement overlapping the rules test agreement
purpose: integration tests of overlapping agreements
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling]
max_marking: TLP:AMBER
excluded_facets: [victims]
field_rules:
  "*":
    - {field: "subjects[].full_name", action: pseudonymise}
    - {field: location, action: generalise, to: country}
    - {field: summary, action: redact}
"""


async def test_under_an_overlap_deliveries_verify_with_the_strictest_rules_and_prohibitions_hold(
    settings: Settings,
) -> None:
    (settings.policies_dir / "agreements" / "aa-nl-be-overlap.yaml").write_text(OVERLAPPING)
    suspects = make_report("NL")
    victim = {"role": "victim", "full_name": "Lena Horvath", "nationality": "HU"}
    with_victim = make_report("NL", subjects=[*suspects.model_dump()["subjects"], victim])
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(suspects), exchange.seal(with_victim)])
        await exchange.wait_completed(2)
        be = verified(await exchange.feed("BE"))  # every delivery verifies: no FeedProblem
        de = verified(await exchange.feed("DE"))

    # NL→BE is covered by both agreements; NL→DE by the rules test agreement alone.
    assert [d.report.report_id for d in be] == [suspects.report_id]  # a victim: refused to BE
    assert sorted(d.report.report_id for d in de) == sorted(
        [suspects.report_id, with_victim.report_id]
    )
    [to_be] = be
    [to_de] = [d for d in de if d.report.report_id == suspects.report_id]
    assert (to_be.agreement_id, to_be.agreement_version) == ("aa-nl-be-overlap", 2)
    assert to_de.agreement_id == "rules-nl-be"
    assert to_be.withheld_fields == ("subjects[].travel_documents[].number", "summary")
    assert {(d.field, d.action, d.to) for d in to_be.derived_fields} == {
        ("subjects[].full_name", "pseudonymise", None),
        ("subjects[].date_of_birth", "generalise", "year"),  # only the rules test agreement's
        ("location", "generalise", "country"),  # the coarser of 0.1deg and country
        ("observed_at", "generalise", "hour"),
    }
    received = to_be.report.location
    assert received is not None
    assert (received.latitude, received.border_sector, received.country) == (None, None, "NL")
    assert to_be.report.summary is None
    # The pseudonyms are keyed by the authorising agreement's secret: BE's cannot be joined
    # with DE's, which come from another agreement.
    be_names = [s.full_name for s in to_be.report.subjects]
    de_names = [s.full_name for s in to_de.report.subjects]
    assert all(n is not None and n.startswith("ps1-") for n in be_names + de_names)
    assert not set(be_names) & set(de_names)
    assert to_be.provenance["subjects[0].full_name"].describe() == (
        "pseudonymise by the broker under aa-nl-be-overlap v2"
    )
