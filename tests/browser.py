"""Headless chromium for the browser tests (Debian's chromium through chromium-driver).

The browser may reach 127.0.0.1 only (every other host resolves to nothing), and with the
performance log on, ``requested_urls`` reads back every request it made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
POLL_SECONDS = 0.05  # how often a wait looks again (selenium's default, half a second, is mostly idle)


def chromium(window_size: str, wait_seconds: float, performance_log: bool = True):
    """A headless chromium of ``window_size`` ("width,height") that waits ``wait_seconds`` at most for a
    page or a script; skipped (failed on CI) where chromium or chromium-driver is missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(message)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in [
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={window_size}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing beyond 127.0.0.1
    ]:
        options.add_argument(argument)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(wait_seconds)
    driver.set_script_timeout(wait_seconds)
    return driver


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (from Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
