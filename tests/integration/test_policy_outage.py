"""A policy engine that goes down: submissions are held, never refused, delivered once it is back.

The enforcer decides through the session's real OPA server, which goes away
mid-stream in one of two ways: the OPA process stops (connections refused)
and is started again, empty, as an in-memory OPA always comes back; or a
proxy in front of it answers 503 for a while (tests/support/opa_fault_double.py,
a TEST DOUBLE that forwards to the real server otherwise). The reports sent
meanwhile have decision inputs the enforcer has not cached, so each of them
needs the engine.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.app.settings import Settings
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import feed_until, rules_settings, verified
from tests.support.opa_fault_double import OpaFaultDouble
from tests.support.opa_server import OpaServer

pytestmark = pytest.mark.integration

OUTAGE_S = 3.0


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


@pytest.mark.parametrize("refuse", [True, False], ids=["opa_stopped_and_restarted", "http_503"])
async def test_while_the_policy_engine_is_down_nothing_is_delivered_nor_refused_and_all_follows(
    settings: Settings, opa: OpaServer, refuse: bool
) -> None:
    before = [make_report("NL") for _ in range(3)]  # TLP:AMBER smuggling: allowed
    allowed = [make_report("NL", marking=m) for m in ("TLP:GREEN", "TLP:CLEAR") for _ in range(3)]
    withheld = [
        make_report("NL", marking="TLP:RED"),
        make_report("NL", report_type="document_fraud"),
    ]
    with OpaFaultDouble(opa.url) as proxy:
        through_opa = settings.model_copy(
            update={
                "opa_url": opa.url if refuse else proxy.url,
                "policy_retry_initial_s": 0.2,
                "policy_retry_max_s": 1.0,
            }
        )
        async with enforcer(through_opa) as exchange:
            await exchange.publish("NL", [exchange.seal(r) for r in before])
            await exchange.wait_completed(len(before))

            if refuse:
                opa.stop()
            else:
                proxy.answer_unavailable()
            during = allowed + withheld
            await exchange.publish("NL", [exchange.seal(r) for r in during])
            deadline = time.monotonic() + 10
            while exchange.stats.undecided_holds == 0:
                assert time.monotonic() < deadline, "the enforcer never met the outage"
                await asyncio.sleep(0.05)
            holds_at_start = exchange.stats.undecided_holds
            await asyncio.sleep(OUTAGE_S)
            completed_in_outage = exchange.stats.completed
            delivered_in_outage = verified(await exchange.feed("BE"))
            refused_in_outage = await exchange.rejections("NL")
            holds_in_outage = exchange.stats.undecided_holds

            if refuse:
                opa.start()  # holding nothing: the enforcer must give it the bundle again
            else:
                proxy.resume()
            be = await feed_until(exchange, "BE", len(before) + len(allowed), timeout_s=30)
            await exchange.wait_completed(len(before) + len(during))
            de = verified(await exchange.feed("DE"))
            refused = await exchange.rejections("NL")

    assert completed_in_outage == len(before)
    assert {d.report.report_id for d in delivered_in_outage} == {r.report_id for r in before}
    assert refused_in_outage == []
    assert holds_in_outage > holds_at_start, "held partitions are retried, with back-off"
    # Once the engine is back: every allowed report exactly once per recipient, nothing else.
    expected = sorted(str(r.report_id) for r in before + allowed)
    assert sorted(str(d.report.report_id) for d in be) == expected
    assert sorted(str(d.report.report_id) for d in de) == expected
    assert refused == [], "undecided is never a refusal, and the rest was withheld, not refused"
    assert exchange.stats.withheld == {
        "rules-nl-be:marking_above_limit": 2,
        "rules-nl-be:report_type_not_covered": 2,
    }
    assert exchange.stats.submissions == len(before) + len(during), "nothing processed twice"
    assert exchange.stats.rejected == {}
