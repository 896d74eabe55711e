"""The console in a real browser: Debian's chromium, headless, driven by Playwright.

As a person would: BE's analyst logs in, sees BE's feed, watches a new
delivery arrive without reloading, opens a report and reads each field's
provenance, and is refused NL's feed; NL's liaison officer opens the
agreement; the auditor runs a verification. Every page is checked with
axe-core (bundled in axe-playwright-python, run offline) for serious
accessibility faults, every request the browser makes is watched (none
may leave 127.0.0.1), and each step leaves a screenshot
(``IXB_CONSOLE_SCREENSHOTS`` names a directory to keep them in).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from broker.app.auditing import audit_source
from broker.auditor.use_cases import sign_checkpoints
from broker.parties.recipient import VerifiedDelivery
from broker.trust.keystore import Keystore
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.browser import FLAGS, chromium_path
from tests.support.console import PASSWORD, console_for, served

pytestmark = pytest.mark.integration

CHROMIUM = chromium_path()
if CHROMIUM is None:
    WHY = "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)"
    if os.environ.get("IXB_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure
        pytest.fail(WHY, pytrace=False)
    pytest.skip(WHY, allow_module_level=True)

from axe_playwright_python.async_playwright import Axe  # noqa: E402 - only once chromium is known
from playwright.async_api import Browser, Page, Route, async_playwright  # noqa: E402

FIRST = "Forged waybills at Hazeldonk"
SECOND = "Refrigerated trailer with a false floor"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class Visit:
    """One person's browser context: their pages, screenshots, and every request watched."""

    def __init__(self, page: Page, shots: Path, who: str) -> None:
        self.page, self.shots, self.who = page, shots, who
        self.outside: list[str] = []
        self.axe = Axe()

    async def watch(self) -> None:
        async def route(route_: Route) -> None:
            host = urlsplit(route_.request.url).hostname
            if host not in ("127.0.0.1", None) and not route_.request.url.startswith("data:"):
                self.outside.append(route_.request.url)
                await route_.abort()
                return
            await route_.continue_()

        await self.page.route("**/*", route)

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(self.shots / f"{self.who}-{name}.png"), full_page=True)

    async def accessible(self) -> None:
        results = await self.axe.run(self.page)
        serious = [
            v for v in results.response["violations"] if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], [(v["id"], v["help"], len(v["nodes"])) for v in serious]


async def log_in(browser: Browser, url: str, user: str, shots: Path) -> Visit:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    visit = Visit(await context.new_page(), shots, user)
    await visit.watch()
    await visit.page.goto(url + "/")
    await visit.page.get_by_label("User name").fill(user)
    await visit.page.get_by_label("Password").fill(PASSWORD)
    await visit.page.get_by_label("Password").press("Enter")  # by keyboard, as a person may
    await visit.page.wait_for_load_state()
    return visit


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path


def keep_screenshots(shots: Path) -> None:
    """Copy the screenshots to ``IXB_CONSOLE_SCREENSHOTS``, when it names a directory."""
    kept = os.environ.get("IXB_CONSOLE_SCREENSHOTS")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        for picture in shots.glob("*.png"):
            shutil.copy(picture, Path(kept) / picture.name)


async def test_a_person_uses_the_console_in_chromium_and_no_request_leaves_the_machine(
    exchange: Exchange, browser: Browser, shots: Path
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL", title=FIRST))])
    await exchange.wait_completed(1)
    app = console_for(exchange, [])
    visits: list[Visit] = []
    try:
        async with served(app) as console:
            be = await log_in(browser, console.url, "be-analyst", shots)
            visits.append(be)
            page = be.page
            assert page.url.endswith("/analyst/BE")
            await page.get_by_role("link", name=FIRST).wait_for()
            await page.locator("#live-status.on").wait_for(timeout=10_000)
            await be.shot("feed")
            await be.accessible()

            await exchange.publish("NL", [exchange.seal(make_report("NL", title=SECOND))])
            await page.get_by_role("link", name=SECOND).wait_for(timeout=20_000)  # no reload
            assert await page.locator("#feed-count").inner_text() == "2 of 2 verified deliveries"
            await be.shot("feed-live")

            await page.get_by_role("link", name=FIRST).click()
            await page.get_by_role("heading", name=FIRST).wait_for()
            [delivery] = [
                d
                for d in await exchange.feed("BE")
                if isinstance(d, VerifiedDelivery) and d.report.title == FIRST
            ]
            shown = dict(  # every row's badge in one round trip, not one per field
                await page.eval_on_selector_all(
                    "tr[data-path]",
                    "rows => rows.map(r => [r.dataset.path, r.querySelector('.badge')?.innerText])",
                )
            )
            for path, provenance in delivery.provenance.items():
                assert shown.get(path) == provenance.describe(), path
            await be.shot("report")
            await be.accessible()

            refused = await page.goto(console.url + "/analyst/NL")
            assert refused is not None
            assert refused.status == 403
            assert await page.get_by_role("heading", name="Not yours to see").is_visible()
            await be.shot("refused")

            liaison = await log_in(browser, console.url, "nl-liaison", shots)
            visits.append(liaison)
            await liaison.page.get_by_role("link", name="NL-BE test agreement").click()
            await liaison.page.get_by_role("heading", name="Field rules, in plain words").wait_for()
            await liaison.shot("agreement")
            await liaison.accessible()
            await liaison.page.get_by_role("link", name="Who receives what").click()
            await liaison.page.get_by_role("heading", name="NL sends to").wait_for()
            await liaison.shot("matrix")
            await liaison.accessible()

            source = audit_source(exchange.settings)  # as `ixb audit checkpoint` does
            await sign_checkpoints(source, Keystore(exchange.settings.keystore_dir))
            auditor = await log_in(browser, console.url, "auditor", shots)
            visits.append(auditor)
            await auditor.page.get_by_role("button", name="Verify every log now").click()
            await auditor.page.get_by_text("Every log verifies").wait_for()
            await auditor.shot("verify")
            await auditor.accessible()
            await auditor.page.get_by_role("link", name="Charts").click()
            await auditor.page.get_by_role(
                "heading", name="Who shared how much with whom"
            ).wait_for()
            export = auditor.page.frame_locator("iframe.export")
            await export.get_by_role("heading", name="Verification").wait_for()
            await auditor.shot("charts")
    finally:
        keep_screenshots(shots)
    assert [url for v in visits for url in v.outside] == []
