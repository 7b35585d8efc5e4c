"""shakegen inspect's page, and the served page's Inspect view, in a real headless browser
(Debian's chromium through chromium-driver).

The browser may reach 127.0.0.1 only (every other host resolves to nothing) and every request
it makes is recorded: the exported page works from file:// with no request beyond itself, and
the served view asks its own server only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from shakegen.cli import main

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from tests.browser import POLL_SECONDS, chromium, requested_urls  # noqa: E402

WAIT_SECONDS = 60  # a bound on waiting, never an assertion
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"


@pytest.fixture(scope="module")
def browser():
    driver = chromium("1100,700", WAIT_SECONDS)
    yield driver
    driver.quit()


def shown(browser, spans) -> list[tuple[str, str]]:
    """Each span's text and computed background colour, as WebDriver's textContent property and CSS
    value give them, read in one script rather than two browser round trips per character."""
    script = "return arguments[0].map(span => [span.textContent, getComputedStyle(span).backgroundColor]);"
    return [tuple(pair) for pair in browser.execute_script(script, spans)]


def test_the_page_colours_the_text_shows_five_guesses_and_requests_nothing(browser, tmp_path):
    page = tmp_path / "inspect.html"
    arguments = ["inspect", "--checkpoint", "pretrained", "--text", TEXT, "--neurons", "--unit", "2:17"]
    result = CliRunner().invoke(main, [*arguments, "--html", str(page), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    requested_urls(browser)
    browser.get(page.as_uri())
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".sg-char"))
    spans = browser.find_elements(By.CSS_SELECTOR, ".sg-char")
    assert len(spans) == len(TEXT)
    texts, backgrounds = zip(*shown(browser, spans), strict=True)
    assert "".join(texts).replace("↵", "") == TEXT
    assert len(set(backgrounds)) >= 3  # coloured by surprisal, several bins in use

    worst = max(range(1, len(records)), key=lambda i: records[i]["bits"])
    ActionChains(browser).move_to_element(spans[worst]).perform()
    tip = browser.find_element(By.CSS_SELECTOR, ".sg-tip")
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: tip.is_displayed())
    guesses = tip.find_elements(By.CSS_SELECTOR, ".sg-guess")
    assert len(guesses) == 5
    expected = records[worst]["top"]
    for guess, top in zip(guesses, expected, strict=True):
        assert f"{100 * top['probability']:.1f}%" in guess.text
    assert f"rank {records[worst]['rank']}" in tip.text

    view = Select(browser.find_element(By.CSS_SELECTOR, ".sg-view"))
    assert any(option.get_attribute("value") == "2:17" for option in view.options)
    view.select_by_value("2:17")
    after = [background for _, background in shown(browser, spans)]
    strongest = max(range(len(records)), key=lambda i: abs(records[i]["units"]["2:17"]))
    assert len(set(after)) >= 3
    assert after[strongest] not in ("rgba(255, 255, 255, 1)", "rgb(255, 255, 255)")
    assert "hint" in browser.find_element(By.CSS_SELECTOR, ".sg-legend").text

    browser.save_screenshot(str(tmp_path / "inspect.png"))
    if os.environ.get("SHAKEGEN_SCREENSHOT"):  # how docs/inspect.png is made
        shutil.copyfile(tmp_path / "inspect.png", os.environ["SHAKEGEN_SCREENSHOT"])
    assert set(requested_urls(browser)) == {page.as_uri()}  # the page itself, nothing else


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    from tests.test_serve import Server

    running = Server(Path("pretrained"), tmp_path_factory.mktemp("inspect-page"))
    yield running
    running.stop()


def test_the_served_pages_inspect_view_colours_the_text_and_shows_the_guesses(browser, server, tmp_path):
    requested_urls(browser)
    browser.get(server.url + "/")
    field = browser.find_element(By.ID, "inspect-text")
    field.clear()
    field.send_keys(TEXT)
    browser.find_element(By.ID, "inspect").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: d.find_element(By.ID, "inspect-status").get_attribute("data-state") in ("done", "error")
    )
    assert browser.find_element(By.ID, "inspect-status").get_attribute("data-state") == "done"
    records = server.post("/v1/inspect", {"text": TEXT, "top_k": 5}).json()["records"]
    spans = browser.find_elements(By.CSS_SELECTOR, "#inspect-output .sg-char")
    assert len(spans) == len(records) == len(TEXT)
    assert len({background for _, background in shown(browser, spans)}) >= 3
    worst = max(range(1, len(records)), key=lambda i: records[i]["bits"])
    ActionChains(browser).move_to_element(spans[worst]).perform()
    tip = browser.find_element(By.CSS_SELECTOR, "#inspect-output .sg-tip")
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: tip.is_displayed())
    guesses = tip.find_elements(By.CSS_SELECTOR, ".sg-guess")
    assert [g.text.split()[-1] for g in guesses] == [f"{100 * t['probability']:.1f}%" for t in records[worst]["top"]]
    assert f"rank {records[worst]['rank']}" in tip.text
    browser.save_screenshot(str(tmp_path / "serve-inspect.png"))
    outside = [url for url in requested_urls(browser) if not url.startswith((server.url + "/", "data:"))]
    assert not outside, outside
