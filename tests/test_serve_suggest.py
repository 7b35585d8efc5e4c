"""shakegen serve's stop, ban and min-p fields and its suggest mode (/v1/suggest and the page's), against the
Python API and ``shakegen write``'s proposals computed in this process."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

import shakegen  # noqa: E402
from shakegen.use import suggest as write  # noqa: E402
from tests.test_serve import Server, streamed_texts, tiny_run  # noqa: E402, F401
from tests.test_serve_browser import browser  # noqa: E402, F401


@pytest.fixture(scope="module")
def server(tiny_run):  # noqa: F811
    running = Server(tiny_run, tiny_run.parent)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def model(tiny_run):  # noqa: F811
    return shakegen.load(tiny_run)


def test_stop_ban_and_min_p_give_the_apis_text_and_say_why_each_sample_ended(server, model):
    body = {"seed": "ROMEO:", "length": 300, "temperature": 1.0, "random_seed": 11, "num_samples": 3}
    body.update(stop=["\n", "th"], ban="z", min_p=0.02)
    answer = server.post("/v1/generate", body)
    assert answer.status_code == 200, answer.text
    options = dict(length=300, temperature=1.0, random_seed=11, num_samples=3, stop=["\n", "th"], ban="z", min_p=0.02)
    expected = model.generate("ROMEO:", **options)
    assert answer.json()["texts"] == expected and answer.json()["engine"] == "numpy"
    assert answer.json()["stopped"] == model.last_stop_reasons
    assert any(reason["stop_reason"] == "stop" for reason in model.last_stop_reasons)
    texts, events = streamed_texts(server, body)
    assert texts == expected and events[-1][1]["stopped"] == model.last_stop_reasons
    lined = server.post("/v1/generate", {**body, "stop": None, "lines": 2, "keep_stop": True}).json()
    assert lined["texts"] == model.generate("ROMEO:", **{**options, "stop": None, "lines": 2})
    assert {reason["stop_reason"] for reason in lined["stopped"]} <= {"lines", "length"}


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"stop": [""]}, "stop", "a list of at most 8 texts"),
        ({"stop": "\n"}, "stop", "a list of at most 8 texts"),
        ({"stop": ["a"] * 9}, "stop", "a list of at most 8 texts"),
        ({"keep_stop": "yes"}, "keep_stop", "true or false"),
        ({"lines": 0}, "lines", "an integer from 1"),
        ({"min_p": 1.5}, "min_p", "a number in [0, 1]"),
        ({"ban": "\u00e9"}, "ban", "Cannot ban characters the model does not know"),
    ],
)
def test_bad_new_fields_get_one_line_answers_naming_the_field(server, body, field, words):
    answer = server.post("/v1/generate", {"seed": "ROMEO:", "length": 20, **body})
    assert answer.status_code == 422
    refusal = answer.json()
    assert refusal["field"] == field and words in refusal["detail"] and "\n" not in refusal["detail"]


def test_banning_every_character_is_refused(server, model):
    answer = server.post("/v1/generate", {"seed": "ROMEO:", "length": 20, "ban": model.vocabulary})
    assert answer.status_code == 422 and answer.json()["field"] == "ban"
    assert "bans every one" in answer.json()["detail"]


def test_suggest_gives_shakegen_writes_proposals(server, model):
    text = "First Citizen:\nBefore we"
    answer = server.post("/v1/suggest", {"text": text, "count": 4, "random_seed": 3, "temperature": 0.7})
    assert answer.status_code == 200, answer.text
    proposals = write.Suggester(model.engine, model.info.vocab, write.SamplingChoice(temperature=0.7, random_seed=3))
    found = answer.json()
    assert [(c["text"], c["probability"]) for c in found["characters"]] == proposals.next_characters(text, 4)
    assert [(w["text"], w["probability"]) for w in found["words"]] == proposals.next_words(text, 4)
    assert found["continuation"] == proposals.continuation(text)
    for body, field in [
        ({"text": 5}, "text"),
        ({"text": "a", "count": 0}, "count"),
        ({"text": "a", "ban": "\u00e9"}, "ban"),
    ]:
        refused = server.post("/v1/suggest", body)
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text


def test_the_pages_suggest_mode_offers_the_next_words_and_takes_one(server, browser):  # noqa: F811
    """In headless chromium: ticking Suggest and typing a seed shows /v1/suggest's words and continuation;
    clicking a word adds it to the seed and offers the next ones; Tab takes the first."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import POLL_SECONDS
    from tests.test_serve_browser import WAIT_SECONDS, fill

    browser.get(server.url + "/")
    browser.find_element(By.ID, "suggest").click()
    fill(browser, "seed", "ROMEO:\n")

    def offered_for(text):
        WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
            lambda d: (
                d.find_element(By.ID, "suggestions").get_attribute("data-for") == text
                and d.find_elements(By.CSS_SELECTOR, "#words button")
            )
        )
        return [b.get_attribute("data-text") for b in browser.find_elements(By.CSS_SELECTOR, "#words button")]

    shown = offered_for("ROMEO:\n")
    expected = server.post("/v1/suggest", {"text": "ROMEO:\n", "count": 5, "temperature": 0.8}).json()
    assert shown == [word["text"] for word in expected["words"]]
    assert browser.find_element(By.ID, "ghost").text.lstrip("\u2026") == expected["continuation"].rstrip("\n")
    browser.find_elements(By.CSS_SELECTOR, "#words button")[1].click()  # the second word
    taken = "ROMEO:\n" + shown[1]
    assert browser.find_element(By.ID, "seed").get_property("value") == taken
    after = offered_for(taken)
    browser.find_element(By.ID, "seed").send_keys(Keys.TAB)  # Tab takes the first
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: d.find_element(By.ID, "seed").get_property("value") == taken + after[0]
    )


def test_beam_gives_the_apis_beams_and_refuses_bad_fields_in_one_line(server, model):
    body = {"seed": "ROMEO:", "length": 40, "beams": 3, "stop": ["\n\n"], "ban": "z"}
    answer = server.post("/v1/beam", body)
    assert answer.status_code == 200, answer.text
    expected = model.beam_search("ROMEO:", length=40, beams=3, stop=["\n\n"], ban="z")
    assert answer.json()["beams"] == expected and answer.json()["texts"] == [beam["text"] for beam in expected]
    for bad, field, words in [
        ({"beams": 0}, "beams", "an integer from 1 to 16"),
        ({"beams": 17}, "beams", "an integer from 1 to 16"),
        ({"length": 1001}, "length", "an integer from 1 to 1,000"),
        ({"ban": "\u00e9"}, "ban", "Cannot ban"),
        ({"stream": True}, "stream", "Unknown field"),
    ]:
        refused = server.post("/v1/beam", {"seed": "ROMEO:", **bad})
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
        assert words in refused.json()["detail"] and "\n" not in refused.json()["detail"]


def test_the_page_shows_the_beams_when_beams_is_set(server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    from tests.test_serve_browser import fill, wait_for_state

    browser.get(server.url + "/")
    fill(browser, "seed", "ROMEO:")
    fill(browser, "length", "40")
    fill(browser, "beams", "3")
    browser.find_element(By.ID, "generate").click()
    assert wait_for_state(browser, "done", "error") == "done", browser.find_element(By.ID, "status").text
    shown = browser.find_element(By.ID, "output").get_property("textContent")
    found = server.post("/v1/beam", {"seed": "ROMEO:", "length": 40, "beams": 3}).json()["beams"]
    for index, beam in enumerate(found):
        assert f"--- beam {index + 1} · log-probability {beam['log_prob']:.3f}" in shown and beam["text"] in shown
