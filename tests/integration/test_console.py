"""The console over a real exchange: each person sees their own part, and only that.

A real enforcer on the session's broker delivers NL's reports to BE and BE's
to NL under the NL-BE test agreement; the console reads the same topics
with the recipient library. Pages are asked for over HTTP as a browser
would; the browser itself drives them in test_console_browser.py.
"""

from __future__ import annotations

import json

import pytest

from broker.app.auditing import audit_source
from broker.app.documents import delivery_json
from broker.auditor.use_cases import sign_checkpoints
from broker.parties.recipient import VerifiedDelivery
from broker.trust.keystore import Keystore
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.console import client, console_for, csrf

pytestmark = pytest.mark.integration

NL_TITLE = "NL-only: forged waybills at Hazeldonk"
BE_TITLE = "BE-only: cigarettes through Zeebrugge"


async def deliver_both_ways(exchange: Exchange) -> tuple[VerifiedDelivery, VerifiedDelivery]:
    """One report NL sends BE and one BE sends NL; their verified deliveries."""
    from_nl = make_report("NL", title=NL_TITLE)
    from_be = make_report("BE", title=BE_TITLE)
    await exchange.publish("NL", [exchange.seal(from_nl)])
    await exchange.publish("BE", [exchange.seal(from_be)])
    await exchange.wait_completed(2)
    [to_be] = await exchange.feed("BE")
    [to_nl] = await exchange.feed("NL")
    assert isinstance(to_be, VerifiedDelivery)
    assert isinstance(to_nl, VerifiedDelivery)
    return to_be, to_nl


async def test_an_analyst_sees_their_feed_and_each_fields_provenance_as_subscribe_says(
    exchange: Exchange,
) -> None:
    to_be, _ = await deliver_both_ways(exchange)
    app = console_for(exchange)
    async with client(app, "be-analyst") as http:
        feed = await http.get("/analyst/BE")
        assert feed.status_code == 200
        assert NL_TITLE in feed.text
        report = await http.get(f"/analyst/BE/reports/{to_be.delivery_id}")
        as_json = await http.get(f"/analyst/BE/reports/{to_be.delivery_id}.json")
    assert report.status_code == 200
    subscribed = delivery_json(to_be)  # what `ixb subscribe --json` prints for it
    assert as_json.json() == json.loads(json.dumps(subscribed))
    for path, words in subscribed["provenance"].items():
        assert f'data-path="{path}"' in report.text
        assert f'data-provenance="{words}"' in report.text
    assert "withheld" in subscribed["provenance"]["subjects[0].travel_documents[0].number"]
    assert "HX1234567" not in report.text  # the withheld passport number never reaches the page
    assert "TLP:AMBER" in report.text
    assert "H1" in report.text


async def test_an_analyst_asking_for_another_nations_feed_is_refused_and_shown_none_of_it(
    exchange: Exchange,
) -> None:
    to_be, to_nl = await deliver_both_ways(exchange)
    app = console_for(exchange)
    async with client(app, "be-analyst") as http:
        own = await http.get("/analyst/BE")
        assert own.status_code == 200
        assert NL_TITLE in own.text  # BE's feed is there to see
        refused = {
            path: await http.get(path)
            for path in [
                "/analyst/NL",
                "/analyst/NL/rows",
                "/analyst/NL/events",
                f"/analyst/NL/reports/{to_nl.delivery_id}",
                f"/analyst/NL/reports/{to_nl.delivery_id}.json",
                "/liaison",
                "/audit",
                "/operator",
            ]
        }
        not_in_own_feed = await http.get(f"/analyst/BE/reports/{to_nl.delivery_id}")
        not_in_own_json = await http.get(f"/analyst/BE/reports/{to_nl.delivery_id}.json")
    for path, response in refused.items():
        assert response.status_code == 403, path
    assert not_in_own_feed.status_code == 404
    assert not_in_own_json.status_code == 404
    for response in [*refused.values(), not_in_own_feed, not_in_own_json]:
        assert BE_TITLE not in response.text
        assert to_nl.delivery_id not in response.text
        assert str(to_nl.report.report_id) not in response.text
    assert to_be.delivery_id not in refused["/analyst/NL"].text


async def test_nobody_logged_in_is_sent_to_the_login_page_and_a_wrong_password_gets_nothing(
    exchange: Exchange,
) -> None:
    await deliver_both_ways(exchange)
    app = console_for(exchange)
    async with client(app) as http:
        anonymous = await http.get("/analyst/BE")
        stream = await http.get("/analyst/BE/events")
        wrong = await http.post("/login", data={"name": "be-analyst", "password": "guess"})
        unknown = await http.post("/login", data={"name": "nobody", "password": "guess"})
        after = await http.get("/analyst/BE")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    assert stream.status_code == 401
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match" in wrong.text
    assert "do not match" in unknown.text
    assert after.status_code == 303
    assert NL_TITLE not in anonymous.text + wrong.text + after.text


async def test_a_liaison_officer_reads_their_agreement_in_plain_words_and_explains_a_report(
    exchange: Exchange,
) -> None:
    app = console_for(exchange)
    report = make_report("NL").model_dump(mode="json")
    async with client(app, "nl-liaison") as http:
        listing = await http.get("/liaison")
        page = await http.get("/liaison/agreements/test-nl-be")
        other = await http.get("/liaison/agreements/no-such-agreement")
        matrix = await http.get("/liaison/matrix")
        form = await http.get("/liaison/explain")
        explained = await http.post(
            "/liaison/explain",
            data={"csrf": csrf(form.text), "direction": "to", "partner": "BE"},
            files={"report": ("report.json", json.dumps(report), "application/json")},
        )
        outside = await http.post(
            "/liaison/explain",
            data={"csrf": csrf(form.text), "direction": "to", "partner": "US"},
            files={"report": ("report.json", json.dumps(report), "application/json")},
        )
        forged = await http.post(
            "/liaison/explain",
            data={"csrf": "not-the-token", "direction": "to", "partner": "BE"},
            files={"report": ("report.json", json.dumps(report), "application/json")},
        )
        feed = await http.get("/analyst/NL")
    assert listing.status_code == 200
    assert "NL-BE test agreement" in listing.text
    assert "the number of each travel document of each subject is withheld" in page.text
    assert "the summary is withheld" in page.text
    assert other.status_code == 404
    assert matrix.status_code == 200
    assert "test-nl-be v4" in matrix.text
    assert explained.status_code == 200
    assert "Delivered" in explained.text
    assert "test-nl-be v4" in explained.text
    assert "subjects[].travel_documents[].number" in explained.text
    assert outside.status_code == 400
    assert "partner nations" in outside.text
    assert forged.status_code == 403
    assert feed.status_code == 403  # a liaison officer is not the nation's analyst


async def test_an_auditor_verifies_every_log_and_sees_the_flows(exchange: Exchange) -> None:
    await deliver_both_ways(exchange)
    app = console_for(exchange)
    async with client(app, "auditor") as http:
        unsigned = await http.get("/audit?run=1")
        source = audit_source(exchange.settings)
        await sign_checkpoints(source, Keystore(exchange.settings.keystore_dir))
        verified = await http.get("/audit?run=1")
        charts = await http.get("/audit/charts")
        export = await http.get("/audit/export.html")
        feed = await http.get("/analyst/BE")
    assert unsigned.status_code == 200  # entries no checkpoint signs yet: as `ixb audit verify`
    assert "status-bad" in unsigned.text
    assert "no_checkpoint" in unsigned.text
    assert "after the newest checkpoint" in unsigned.text
    assert verified.status_code == 200
    assert "Every log verifies" in verified.text
    assert "status-bad" not in verified.text
    assert "after the newest checkpoint" not in verified.text
    assert charts.status_code == 200
    assert "<svg" in charts.text
    assert "NL → BE: 1 delivered" in charts.text
    assert export.status_code == 200
    assert "Flows between nations" in export.text
    assert "unsafe-inline" in export.headers["content-security-policy"]
    assert feed.status_code == 403


async def test_every_page_forbids_loading_anything_from_another_origin(exchange: Exchange) -> None:
    app = console_for(exchange)
    async with client(app, "nl-liaison") as http:
        page = await http.get("/liaison")
        css = await http.get("/static/console.css")
        rebinding = await http.get("/liaison", headers={"host": "attacker.example"})
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "http" not in policy  # no other origin named anywhere
    assert page.headers["cache-control"] == "no-store"
    assert css.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert rebinding.status_code == 400
