"""The auditor's and the operator's parts of the console, over a real exchange.

The auditor checks a receipt the auditor library issued (and one altered
after issue) and replays the period; the operator reads the running
enforcer's own /readyz and /metrics and the rejected topic, where a
submission altered in transit was refused.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.app.auditing import audit_source
from broker.auditlog.receipts import receipt_to_json
from broker.auditor.use_cases import issue_receipt, sign_checkpoints
from broker.parties.recipient import VerifiedDelivery
from broker.trust.keystore import Keystore
from tests.factories import make_report
from tests.integration.conftest import Exchange, enforcer, nl_be_settings
from tests.support.console import client, console_for, csrf
from tests.support.submissions import tamper_signed_payload

pytestmark = pytest.mark.integration


async def test_an_auditor_checks_a_receipt_by_upload_and_an_altered_one_is_refused(
    exchange: Exchange,
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.wait_completed(1)
    [delivery] = await exchange.feed("BE")
    assert isinstance(delivery, VerifiedDelivery)
    source = audit_source(exchange.settings)
    await sign_checkpoints(source, Keystore(exchange.settings.keystore_dir))
    receipt = receipt_to_json(await issue_receipt(source, delivery.delivery_id))
    altered = {**receipt, "index": receipt["index"] + 1}
    app = console_for(exchange)
    async with client(app, "auditor") as http:
        form = await http.get("/audit/receipt")
        answers = [
            await http.post(
                "/audit/receipt",
                data={"csrf": csrf(form.text)},
                files={"receipt": ("receipt.json", json.dumps(document), "application/json")},
            )
            for document in (receipt, altered)
        ]
        replayed = await http.get("/audit/replay?run=1")
    held, refused = answers
    assert held.status_code == 200
    assert "The receipt holds" in held.text
    assert delivery.delivery_id in held.text
    assert refused.status_code == 200
    assert "The receipt is refused" in refused.text
    assert replayed.status_code == 200
    assert "decisions replay as recorded" in replayed.text


@pytest.fixture
async def observed(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> AsyncIterator[tuple[Exchange, str]]:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    probes: list[str] = []
    async with enforcer(
        settings, on_listening=lambda address: probes.append(f"{address[0]}:{address[1]}")
    ) as running:
        yield running, probes[0]


async def test_an_operator_sees_the_enforcers_own_health_and_the_rejected_topics(
    observed: tuple[Exchange, str],
) -> None:
    exchange, probe = observed
    good = exchange.seal(make_report("NL"))
    bad = exchange.seal(make_report("NL"))
    altered = exchange.resealed(bad, lambda signed: tamper_signed_payload(exchange.catalog, signed))
    await exchange.publish("NL", [good, altered])
    await exchange.wait_completed(2)
    app = console_for(exchange, [probe])
    async with client(app, "operator") as http:
        for _ in range(100):  # the enforcer owns its partitions once the group has formed
            health = await http.get("/operator")
            if "pill ok" in health.text:
                break
            await asyncio.sleep(0.2)
        feed = await http.get("/analyst/BE")
    assert health.status_code == 200
    assert f"Enforcer at <code>{probe}</code>" in health.text
    assert '<span class="pill ok">ready</span>' in health.text
    assert re.search(r"owns \d+ submission partitions?", health.text)  # /readyz's second line
    assert '<div class="n">2</div><div class="what">submissions processed</div>' in health.text
    assert "bad_signature" in health.text
    assert exchange.topics.rejected("NL") in health.text
    assert feed.status_code == 403
