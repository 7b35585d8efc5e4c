"""shakegen serve's page in a real headless browser: Debian's chromium through chromium-driver.

The browser may reach 127.0.0.1 only (every other host resolves to nothing), and every request
it makes is checked: the page and the API docs work with no internet at all.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser import POLL_SECONDS, chromium, requested_urls  # noqa: E402
from tests.test_serve import STARTUP_SECONDS, Server, tiny_run  # noqa: E402, F401

WAIT_SECONDS = 120  # a bound on waiting, never an assertion
LONG = 100_000


@pytest.fixture(scope="module")
def server(tiny_run):  # noqa: F811
    running = Server(tiny_run, tiny_run.parent, "--max-length", str(LONG))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    driver = chromium("1280,860", WAIT_SECONDS)
    yield driver
    driver.quit()


def assert_only_local(urls: list[str], server: Server) -> None:
    outside = [url for url in urls if not url.startswith((server.url + "/", "data:", "blob:"))]
    assert urls and not outside, outside


def wait_for_state(driver, *states: str) -> str:
    WebDriverWait(driver, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") in states
    )
    return driver.find_element(By.ID, "status").get_attribute("data-state")


def fill(driver, field_id: str, value: str) -> None:
    element = driver.find_element(By.ID, field_id)
    element.clear()
    element.send_keys(value)


def test_page_streams_the_apis_text_and_fetches_nothing_from_outside(browser, server, tmp_path):
    requested_urls(browser)
    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: d.find_element(By.ID, "card-fields").get_attribute("data-run") is not None
    )
    card = browser.find_element(By.ID, "card").text
    assert server.get("/v1/model").json()["run"] in card and "parameters" in card

    options = {"seed": "First Citizen:", "length": 400, "temperature": 0.7, "top_k": 20, "top_p": 0.95}
    fill(browser, "seed", options["seed"])
    fill(browser, "length", str(options["length"]))
    fill(browser, "temperature", str(options["temperature"]))
    fill(browser, "top-k", str(options["top_k"]))
    fill(browser, "top-p", str(options["top_p"]))
    fill(browser, "random-seed", "11")
    browser.find_element(By.ID, "generate").click()
    assert wait_for_state(browser, "done", "error") == "done", browser.find_element(By.ID, "status").text

    shown = browser.find_element(By.ID, "output").get_property("textContent")
    expected = server.post("/v1/generate", {**options, "random_seed": 11}).json()["text"]
    assert shown == expected
    assert "random seed 11" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "serve.png"))
    if os.environ.get("SHAKEGEN_SCREENSHOT"):  # how docs/serve.png is made
        shutil.copyfile(tmp_path / "serve.png", os.environ["SHAKEGEN_SCREENSHOT"])
    assert_only_local(requested_urls(browser), server)


def test_page_reports_a_bad_field(browser, server):
    browser.get(server.url + "/")
    WebDriverWait(
        browser, WAIT_SECONDS, POLL_SECONDS
    ).until(  # the card sets the fields' limits; the server's answer is shown
        lambda d: d.find_element(By.ID, "length").get_attribute("max") == str(LONG)
    )
    fill(browser, "length", str(LONG + 1))
    browser.find_element(By.ID, "generate").click()
    assert wait_for_state(browser, "error") == "error"
    assert f"length must be an integer from 1 to {LONG:,}" in browser.find_element(By.ID, "status").text
    assert "invalid" in browser.find_element(By.ID, "length").get_attribute("class")


def test_stop_ends_the_sampling_on_the_server(browser, server):
    browser.get(server.url + "/")
    before = server.health()
    fill(browser, "length", str(LONG))
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: len(d.find_element(By.ID, "output").get_property("textContent")) > 200
    )
    browser.find_element(By.ID, "stop").click()
    assert wait_for_state(browser, "stopped", "done", "error") == "stopped"
    deadline = time.monotonic() + STARTUP_SECONDS
    while (after := server.health())["sampling_now"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert after["samples_stopped"] == before["samples_stopped"] + 1
    assert after["characters_sampled"] - before["characters_sampled"] < LONG


def test_api_docs_work_offline(browser, server):
    requested_urls(browser)
    browser.get(server.url + "/docs")
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 4
    )
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "/v1/generate" in text and "/v1/evaluate" in text and "/v1/model" in text
    assert_only_local(requested_urls(browser), server)
