"""/v1/evaluate takes turns with sampling: a real server process on 127.0.0.1.

A small generate sent while a long text is being scored is answered before the score; a
client that leaves stops its evaluation at the next turn; a text over the limit is refused;
and the figure scored in turns is the one ``TextModel.evaluate`` gives in one call.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

import shakegen  # noqa: E402
from shakegen.data import corpus  # noqa: E402
from shakegen.serve.turns import TurnTaking  # noqa: E402
from tests.test_serve import STARTUP_SECONDS, Server, tiny_run  # noqa: E402, F401

LONG_TEXT_REPEATS = 1  # the embedded corpus: 1.1 million characters, about seventy turns of 32 streams
MAX_EVALUATE = 1_500_000
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def long_text() -> str:
    return corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8") * LONG_TEXT_REPEATS


@pytest.fixture(scope="module")
def server(tiny_run):  # noqa: F811
    running = Server(
        tiny_run,
        tiny_run.parent,
        "--max-request-bytes",
        str(MAX_BYTES),
        "--max-evaluate-characters",
        str(MAX_EVALUATE),
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def model(tiny_run):  # noqa: F811
    return shakegen.load(tiny_run)


@pytest.fixture(scope="module")
def one_call(model, long_text):
    """The long text scored in one call of the Python API: its report, and how many compiled calls it took."""
    calls = []
    report = model.evaluate(long_text, progress=lambda *done: calls.append(done))
    return report, len(calls)


def wait_for(server: Server, condition, what: str) -> dict:
    """/healthz until ``condition(health)``; a bound on waiting, never an assertion on time."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not condition(health := server.health()):
        assert time.monotonic() < deadline, f"{what}: {health}"
        time.sleep(0.05)
    return health


@pytest.mark.parametrize("protocol, window", [("streaming", None), ("windows", 100)])
def test_scoring_in_turns_gives_the_one_call_figure(model, long_text, protocol, window):
    # 32 streams of eleven 512-character windows each, or five batches of windows: turns enough.
    text = long_text[:150_000]
    options = {"protocol": protocol, **({"window": window} if window else {})}
    expected = model.evaluate(text, **options)
    stepped, turns = TurnTaking(lambda progress: model.evaluate(text, progress=progress, **options)), 0
    while not stepped.turn():
        turns += 1
    assert turns > 2  # it did take turns
    assert stepped.result() == expected


def test_a_stopped_evaluation_unwinds_and_an_error_is_raised_again(model, long_text):
    calls = []

    def scored(progress):
        def counted(*done):
            calls.append(done)
            progress(*done)

        return model.evaluate(long_text[:300_000], progress=counted)

    stopped = TurnTaking(scored)
    assert not stopped.turn() and not stopped.turn()
    stopped.stop()
    assert stopped.turn() and stopped.result() is None and len(calls) == 2  # no third window was scored
    failing = TurnTaking(lambda progress: model.evaluate("F", progress=progress))
    assert failing.turn()
    with pytest.raises(ValueError, match="fewer than 2"):
        failing.result()


def test_a_small_generate_is_answered_while_a_long_text_is_scored(server, model, long_text, one_call):
    finished: list[str] = []
    answers: dict = {}

    def score():
        answers["evaluate"] = server.post("/v1/evaluate", {"text": long_text})
        finished.append("evaluate")

    before = server.health()
    scoring = threading.Thread(target=score)
    scoring.start()
    try:
        wait_for(
            server,
            lambda health: health["evaluating_now"] == 1 and health["evaluation_turns"] > before["evaluation_turns"],
            "the evaluation never started",
        )
        small = server.post("/v1/generate", {"seed": "First", "length": 20, "random_seed": 3})
        finished.append("generate")
        during = server.health()
    finally:
        scoring.join(STARTUP_SECONDS)
    assert small.status_code == 200 and small.json()["text"] == model.generate("First", length=20, random_seed=3)
    assert during["evaluating_now"] == 1  # the long text was still being scored
    assert finished == ["generate", "evaluate"]
    answer = answers["evaluate"]
    assert answer.status_code == 200, answer.text
    expected = one_call[0]
    assert answer.json()["loss"] == pytest.approx(expected.loss, rel=1e-9)
    figures = answer.json()
    assert figures["characters"] == expected.characters
    assert figures["characters"] + figures["left_out_characters"] == len(long_text) - 1  # every one but the first
    after = server.health()
    assert after["evaluations_finished"] == before["evaluations_finished"] + 1 and after["evaluating_now"] == 0


def test_an_evaluation_whose_client_leaves_stops(server, long_text, one_call):
    before = server.health()
    body = json.dumps({"text": long_text}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
        client.sendall(
            f"POST /v1/evaluate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_for(
            server,
            lambda health: health["evaluating_now"] == 1 and health["evaluation_turns"] > before["evaluation_turns"],
            "the evaluation never started",
        )
        client.shutdown(socket.SHUT_RDWR)
    stopped = wait_for(server, lambda health: health["evaluating_now"] == 0, "the evaluation never stopped")
    assert stopped["evaluations_stopped"] == before["evaluations_stopped"] + 1
    assert stopped["evaluations_finished"] == before["evaluations_finished"]
    # Scoring the text to its end takes every one of its turns; the abandoned one took far fewer.
    assert stopped["evaluation_turns"] - before["evaluation_turns"] < one_call[1] // 2
    # The model's thread is free again: turns do not go on being taken.
    assert server.post("/v1/generate", {"seed": "First", "length": 10, "random_seed": 1}).status_code == 200
    assert server.health()["evaluation_turns"] == stopped["evaluation_turns"]


def test_a_text_over_the_limit_is_refused_in_one_line(server):
    too_long = "x" * (MAX_EVALUATE + 1)
    answer = server.post("/v1/evaluate", {"text": too_long})
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert f"limit of {MAX_EVALUATE:,}" in detail and "--max-evaluate-characters" in detail and "\n" not in detail
    assert answer.json()["field"] == "text"
    card = server.get("/v1/model").json()
    assert card["limits"]["max_evaluate_characters"] == MAX_EVALUATE
    default = requests.get(server.url + "/openapi.json", timeout=60).json()
    schema = default["paths"]["/v1/evaluate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["text"]["maxLength"] == MAX_EVALUATE
