"""Debian's chromium, driven by Playwright, for the console's end-to-end test.

Playwright cannot download a browser here, so it drives the one Debian
installs (``apt-get install chromium``; ``.ci/run`` does it when it is
missing, as it installs the JDK), found at :data:`CANDIDATES` or
``IXB_CHROMIUM``. A test that needs it is skipped, saying why, when it is
not there; with ``IXB_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) it fails
instead, so CI never passes without having driven the browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--metrics-recording-only",
]
"""Headless is Playwright's own option; it gives every launch a fresh temporary profile."""


def chromium_path() -> Path | None:
    """The chromium binary to drive, or None if none is installed."""
    named = os.environ.get("IXB_CHROMIUM")
    if named:
        return Path(named) if Path(named).exists() else None
    for candidate in CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("chromium")
    return Path(found) if found else None
