"""shakegen serve: a real server process on 127.0.0.1, driven over HTTP.

The same request gives the same text as ``shakegen generate`` and ``model.generate``; the
stream joins into that text; bad requests get one-line 4xx answers naming the field and its
range while the server keeps serving; a client that goes away mid-stream stops its sampling;
concurrent requests give what they give one at a time; the token guards every /v1 route.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

import shakegen  # noqa: E402
from shakegen.cli import main  # noqa: E402
from shakegen.data import corpus
from shakegen.runs import pretrained  # noqa: E402
from tests.runs import train_tiny_run  # noqa: E402

MAX_LENGTH = 100_000  # long enough that a sample runs for a while on any machine
MAX_SEED = 50
MAX_SAMPLES = 4
MAX_BYTES = 4096
MAX_EVALUATE = 2000  # below MAX_BYTES: the text's own limit answers first
STARTUP_SECONDS = 180  # a bound on waiting, never an assertion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m shakegen serve`` in its own process, on 127.0.0.1."""

    def __init__(self, run_dir: Path, workdir: Path, *options: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "shakegen", "serve", "--checkpoint", str(run_dir), "--port", str(self.port)]
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1", **(env or {})}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*command, *options], cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"shakegen serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:  # the socket listens before the model is loaded: connections wait until then
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"shakegen serve did not answer /healthz:\n{self.log.read_text()}")
            time.sleep(0.05)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=120, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        if body is not None:
            kwargs["json"] = body
        return requests.post(self.url + path, timeout=120, **kwargs)

    def health(self) -> dict:
        return self.get("/healthz").json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def sse_events(response: requests.Response):
    """(event name, data) of each server-sent event in a streamed response."""
    buffer = ""
    for piece in response.iter_content(chunk_size=None, decode_unicode=True):
        buffer += piece
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            name, data = "message", ""
            for line in frame.split("\n"):
                if line.startswith("event:"):
                    name = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    data += line[len("data:") :].removeprefix(" ")
            yield name, json.loads(data)


def streamed_texts(server: Server, body: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """The texts a streamed /v1/generate joins into (one per sample), and its events."""
    with server.post("/v1/generate", {**body, "stream": True}, stream=True) as response:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    texts = [""] * body.get("num_samples", 1)
    for name, data in events:
        if name == "text":
            texts[data["sample"]] += data["text"]
    return texts, events


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[:6000]
    return train_tiny_run(tmp_path_factory.mktemp("serve"), text)


@pytest.fixture(scope="module")
def server(tiny_run):
    running = Server(
        tiny_run,
        tiny_run.parent,
        "--max-length",
        str(MAX_LENGTH),
        "--max-seed-characters",
        str(MAX_SEED),
        "--max-samples",
        str(MAX_SAMPLES),
        "--max-request-bytes",
        str(MAX_BYTES),
        "--max-evaluate-characters",
        str(MAX_EVALUATE),
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def model(tiny_run):
    return shakegen.load(tiny_run)


def cli_texts(run_dir, *options) -> list[str]:
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(run_dir), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["texts"]


REQUESTS = [
    (
        dict(seed="First", length=150, temperature=0.8, top_p=0.9, random_seed=7),
        ["--seed", "First", "--length", "150", "--temperature", "0.8", "--top-p", "0.9", "--random-seed", "7"],
    ),
    (
        dict(seed="All:", length=130, temperature=1.3, top_k=5, random_seed=3, num_samples=3),
        ["--seed", "All:", "--length", "130", "--temperature", "1.3", "--top-k", "5", "--random-seed", "3"]
        + ["--num-samples", "3"],
    ),
    (
        dict(seed="You", length=70, temperature=0, random_seed=1),
        ["--seed", "You", "--length", "70", "--temperature", "0"],
    ),
    (dict(length=90, random_seed=4), ["--length", "90", "--random-seed", "4"]),  # no seed: after a newline
]


@pytest.mark.parametrize("body, cli_options", REQUESTS, ids=["top-p", "top-k-3-samples", "greedy", "no-seed"])
def test_generate_equals_the_cli_the_api_and_the_stream(server, model, tiny_run, body, cli_options):
    response = server.post("/v1/generate", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    count = body.get("num_samples", 1)
    assert answer["texts"] == cli_texts(tiny_run, *cli_options)
    api_options = {key: value for key, value in body.items() if key != "num_samples"}
    api = model.generate(**api_options, num_samples=count)
    assert answer["texts"] == api and answer["text"] == api[0]
    assert answer["random_seed"] == body["random_seed"] and answer["characters"] == body["length"] * count
    prefix = body.get("seed", "")
    assert all(text.startswith(prefix) and len(text) == len(prefix) + body["length"] for text in answer["texts"])

    texts, events = streamed_texts(server, body)
    assert texts == answer["texts"]
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"text"}
    assert events[0][1]["random_seed"] == body["random_seed"]
    # Streamed as sampled: one event per 64-character block and sample (the seed first), not one at the end.
    blocks = math.ceil(body["length"] / 64) + (1 if prefix else 0)
    assert names.count("text") == blocks * count


def test_a_drawn_random_seed_is_reported_and_gives_the_text_again(server):
    first = server.post("/v1/generate", {"seed": "First", "length": 40}).json()
    again = server.post("/v1/generate", {"seed": "First", "length": 40, "random_seed": first["random_seed"]}).json()
    assert again["text"] == first["text"]


def test_unknown_seed_characters_skipped_on_request(server, model):
    answer = server.post("/v1/generate", {"seed": "First€", "length": 30, "random_seed": 2, "skip_unknown": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["dropped"] == ["€"]
    assert answer.json()["text"] == model.generate("First€", length=30, random_seed=2, skip_unknown=True)


def test_evaluate_equals_the_api(server, model):
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[3000:4500]
    answer = server.post("/v1/evaluate", {"text": text + "€"})
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    report = model.evaluate(text + "€")
    assert figures["loss"] == pytest.approx(report.loss, rel=1e-6)
    assert figures["perplexity"] == pytest.approx(math.exp(report.loss), rel=1e-6)
    assert figures["bits_per_character"] == pytest.approx(report.loss / math.log(2), rel=1e-6)
    assert figures["characters"] == report.characters == len(text) - 1 and figures["left_out_characters"] == 1
    windows = server.post("/v1/evaluate", {"text": text, "protocol": "windows", "window": 64}).json()
    expected = model.evaluate(text, protocol="windows", window=64)
    assert windows["protocol"] == "windows" and windows["window"] == 64
    assert windows["loss"] == pytest.approx(expected.loss, rel=1e-6)


def test_model_card(server, model, tiny_run):
    card = server.get("/v1/model").json()
    history = [line.split(",") for line in (tiny_run / "history.csv").read_text().splitlines()]
    columns = {name: [float(row[index]) for row in history[1:]] for index, name in enumerate(history[0])}
    assert card["run"] == tiny_run.name and card["which"] == "best"
    assert (card["cell"], card["num_layers"], card["rnn_units"]) == ("gru", 1, 16)
    assert card["parameters"] == model.info.parameters
    # Independently of the server's code: the count of a GRU's weights, and history.csv's figures.
    units, embedding, vocabulary = 16, 8, card["vocabulary_size"]
    gru = 3 * (embedding * units + units * units + 2 * units)
    assert card["parameters"] == vocabulary * embedding + gru + units * vocabulary + vocabulary
    assert card["vocabulary"] == model.vocabulary and len(card["vocabulary"]) == vocabulary
    assert card["validation_loss"] == pytest.approx(min(columns["val_loss"]), abs=1e-4)
    assert card["training_minutes"] == pytest.approx(columns["elapsed_seconds"][-1] / 60, abs=1e-4)
    assert card["parent"] is None
    assert card["limits"] == {
        "max_length": MAX_LENGTH,
        "max_seed_characters": MAX_SEED,
        "max_samples": MAX_SAMPLES,
        "max_request_bytes": MAX_BYTES,
        "max_evaluate_characters": MAX_EVALUATE,
        "max_inspect_characters": 20_000,  # no flag: the default cap of /v1/inspect
    }
    assert str(tiny_run.parent) not in json.dumps(card)  # the server's disk is nobody's business


RAW = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    # (route, raw body or JSON value, status, field, words the answer must hold)
    ("/v1/generate", b'{"seed": "First", "length": 10', 400, None, "not valid JSON"),
    ("/v1/generate", b'{"temperature": NaN}', 400, None, "not valid JSON"),
    ("/v1/generate", b"\xff\xfe\x00", 400, None, "not valid JSON"),
    ("/v1/generate", [1, 2], 422, None, "JSON object"),
    ("/v1/generate", {"checkpoint": "/etc"}, 422, "checkpoint", "cannot choose a file"),
    ("/v1/generate", {"seed": "First", "path": "x"}, 422, "path", "cannot choose a file"),
    ("/v1/evaluate", {"text": "First", "path": "/etc/passwd"}, 422, "path", "cannot choose a file"),
    ("/v1/generate", {"length": 0}, 422, "length", f"from 1 to {MAX_LENGTH:,}"),
    ("/v1/generate", {"length": MAX_LENGTH + 1}, 422, "length", f"from 1 to {MAX_LENGTH:,}"),
    ("/v1/generate", {"length": "5"}, 422, "length", "an integer"),
    ("/v1/generate", {"length": 2.5}, 422, "length", "an integer"),
    ("/v1/generate", {"length": True}, 422, "length", "an integer"),
    ("/v1/generate", {"temperature": -0.1}, 422, "temperature", "from 0 (greedy) to 10"),
    ("/v1/generate", {"temperature": 11}, 422, "temperature", "from 0 (greedy) to 10"),
    ("/v1/generate", {"temperature": "hot"}, 422, "temperature", "a number"),
    ("/v1/generate", {"top_k": 0}, 422, "top_k", "(the vocabulary size)"),
    ("/v1/generate", {"top_k": 1000}, 422, "top_k", "(the vocabulary size)"),
    ("/v1/generate", {"top_p": 0}, 422, "top_p", "(0, 1]"),
    ("/v1/generate", {"top_p": 1.5}, 422, "top_p", "(0, 1]"),
    ("/v1/generate", {"random_seed": -1}, 422, "random_seed", "from 0 to 4294967295"),
    ("/v1/generate", {"random_seed": 2**32}, 422, "random_seed", "from 0 to 4294967295"),
    ("/v1/generate", {"num_samples": 0}, 422, "num_samples", f"from 1 to {MAX_SAMPLES}"),
    ("/v1/generate", {"num_samples": MAX_SAMPLES + 1}, 422, "num_samples", f"from 1 to {MAX_SAMPLES}"),
    ("/v1/generate", {"seed": "x" * (MAX_SEED + 1)}, 422, "seed", f"at most {MAX_SEED} characters"),
    ("/v1/generate", {"seed": 12}, 422, "seed", "a string"),
    ("/v1/generate", {"seed": "Señor €"}, 422, "seed", "does not know"),
    ("/v1/generate", {"seed": ""}, 422, "seed", "empty"),
    ("/v1/generate", {"stream": "yes"}, 422, "stream", "true or false"),
    ("/v1/evaluate", {}, 422, "text", "text is required"),
    ("/v1/evaluate", {"text": "F"}, 422, "text", "fewer than 2 characters"),
    ("/v1/evaluate", {"text": "First", "protocol": "bogus"}, 422, "protocol", '"streaming" or "windows"'),
    ("/v1/evaluate", {"text": "First", "window": 8}, 422, "window", "protocol"),
    ("/v1/evaluate", {"text": "First", "protocol": "windows", "window": 0}, 422, "window", "from 1 to"),
    ("/v1/evaluate", {"text": "x" * MAX_BYTES}, 413, None, f"limit of {MAX_BYTES:,} bytes"),
    ("/v1/evaluate", {"text": "x" * (MAX_EVALUATE + 1)}, 413, "text", f"limit of {MAX_EVALUATE:,} for /v1/evaluate"),
    ("/v1/generate", b"", 400, None, "body is empty"),
    (
        "/v1/generate",
        b"[" * 4000,
        400,
        None,
        "nested too deeply",
    ),  # RecursionError, a 500 before (any depth over 1,000)
    ("/v1/generate", b'{"length": "\\ud800"}', 400, None, "lone surrogate"),  # echoed back: crashed the encoder
    ("/v1/generate", b'{"seed": "First\\udfff"}', 400, None, "lone surrogate"),
    ("/v1/evaluate", b'{"text": "First Citizen \\ud83d"}', 400, None, "lone surrogate"),
    ("/v1/generate", b'{"seed": ' + b"[" * 500 + b"]" * 500 + b"}", 422, "seed", "a string"),
]


@pytest.mark.parametrize("route, body, status, field, words", BAD_REQUESTS)
def test_bad_requests_get_one_line_answers_naming_the_field(server, route, body, status, field, words):
    if isinstance(body, bytes):
        response = server.post(route, data=body, headers=RAW)
    else:
        response = server.post(route, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert words in answer["detail"] and "\n" not in answer["detail"]
    assert answer.get("field") == field
    if field is not None:
        assert answer["allowed"]  # what the field accepts, on its own
    if field is not None and " must be " in answer["detail"]:
        assert f"{field} must be {answer['allowed']}; got " in answer["detail"]
    assert server.health()["status"] == "ok"


def test_the_server_keeps_serving_after_bad_requests(server, model):
    for route, body, *_ in BAD_REQUESTS[:6]:
        server.post(route, data=body if isinstance(body, bytes) else json.dumps(body), headers=RAW)
    assert server.post("/v1/generate", {"seed": "First", "length": 50, "random_seed": 9}).json()["text"] == (
        model.generate("First", length=50, random_seed=9)
    )


def test_integer_valued_numbers_are_integers_as_the_schema_says(server, model):
    # JSON Schema's "integer" holds 10938.0; the schema's word is the server's.
    body = {"seed": "First", "length": 20.0, "random_seed": 10938.0, "top_k": 5.0, "num_samples": 1.0}
    answer = server.post("/v1/generate", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == model.generate("First", length=20, random_seed=10938, top_k=5)
    windows = server.post("/v1/evaluate", {"text": "First Citizen", "protocol": "windows", "window": 4.0})
    assert windows.status_code == 200 and windows.json()["window"] == 4


def test_routes_methods_and_content_types(server):
    assert server.get("/v1/generate").status_code == 405
    assert server.get("/v1/nothing").status_code == 404
    body = '{"seed": "First", "length": 20, "random_seed": 1}'
    # A page of any site may send these without asking the server first (CORS "simple" requests),
    # and curl -d sends a form: none of them is JSON, and none is read as JSON.
    for content_type in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None]:
        headers = {} if content_type is None else {"Content-Type": content_type}
        answer = requests.post(server.url + "/v1/generate", data=body.encode(), headers=headers, timeout=60)
        assert answer.status_code == 415, (content_type, answer.text)
        assert "Content-Type: application/json" in answer.json()["detail"]
    assert (
        server.post(
            "/v1/generate", data=body, headers={"Content-Type": "application/json; charset=latin-1"}
        ).status_code
        == 415
    )
    for content_type in ["application/json", "Application/JSON; charset=UTF-8"]:
        answer = server.post("/v1/generate", data=body, headers={"Content-Type": content_type})
        assert answer.status_code == 200 and len(answer.json()["text"]) == len("First") + 20


def test_openapi_schema_and_offline_docs(server):
    schema = server.get("/openapi.json").json()
    assert {"/v1/generate", "/v1/evaluate", "/v1/model", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/v1/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["length"]["maximum"] == MAX_LENGTH  # the server's own limits
    assert body["additionalProperties"] is False
    docs = server.get("/docs").text
    sources = [part.split('"')[1] for part in docs.split("src=")[1:] + docs.split("href=")[1:]]
    assert sources and all(source.startswith("/") for source in sources), sources  # nothing from outside
    for source in sources:
        assert server.get(source).status_code == 200, source
    page = server.get("/").text
    assert "http://" not in page and "https://" not in page


def test_disconnect_mid_stream_stops_sampling_and_healthz_answers_during_it(server, model):
    before = server.health()
    request = json.dumps({"seed": "First", "length": MAX_LENGTH, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
        client.sendall(
            b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(request)}\r\n\r\n".encode()
            + request
        )
        received = b""
        while received.count(b"event: text") < 2:
            piece = client.recv(4096)
            assert piece, received.decode(errors="replace")
            received += piece
        during = server.health()  # answered while the long sample runs
        assert during["sampling_now"] == 1
        client.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + STARTUP_SECONDS
    while (after := server.health())["sampling_now"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after["sampling_now"] == 0
    assert after["samples_stopped"] == before["samples_stopped"] + 1
    assert after["characters_sampled"] - before["characters_sampled"] < MAX_LENGTH  # it stopped early
    assert server.post("/v1/generate", {"seed": "First", "length": 50, "random_seed": 5}).json()["text"] == (
        model.generate("First", length=50, random_seed=5)
    )


def test_concurrent_requests_give_what_they_give_one_at_a_time(server):
    bodies = [
        {"seed": "First", "length": 300, "temperature": 0.5 + 0.1 * index, "random_seed": index, "top_k": 10 + index}
        for index in range(8)
    ]
    alone = [server.post("/v1/generate", body).json()["text"] for body in bodies]
    assert len(set(alone)) == len(alone)

    def run(indexed):
        index, body = indexed
        if index % 2:
            return streamed_texts(server, body)[0][0]
        return server.post("/v1/generate", body).json()["text"]

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        together = list(pool.map(run, enumerate(bodies)))
    assert together == alone
    assert server.health()["sampling_now"] == 0


def test_token_guards_every_v1_route(tiny_run):
    guarded = Server(tiny_run, tiny_run.parent, env={"SHAKEGEN_TOKEN": "s3cret"})
    try:
        good = {"Authorization": "Bearer s3cret"}
        body = {"seed": "First", "length": 20, "random_seed": 1}
        for route, method, payload in [
            ("/v1/model", "GET", None),
            ("/v1/generate", "POST", body),
            ("/v1/generate", "POST", {"length": -5}),  # refused before it is even read
            ("/v1/evaluate", "POST", {"text": "First Citizen"}),
        ]:
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}]:
                response = requests.request(method, guarded.url + route, json=payload, headers=headers, timeout=60)
                assert response.status_code == 401, (route, headers)
                assert "Bearer" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"
        assert guarded.get("/v1/model", headers=good).json()["run"] == tiny_run.name
        assert guarded.post("/v1/generate", body, headers=good).status_code == 200
        assert guarded.get("/healthz").status_code == 200 and guarded.get("/").status_code == 200
    finally:
        guarded.stop()


def test_serve_refuses_what_it_cannot_do_in_one_line(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pretrained, "BUNDLE_DIR", tmp_path / "no-bundle")  # as if none shipped
    runner = CliRunner()
    bundled = runner.invoke(main, ["serve", "--checkpoint", "pretrained", "--port", "0"])
    assert bundled.exit_code == 1 and "No pretrained model ships" in bundled.output
    nothing = runner.invoke(main, ["serve", "--port", "0"])  # no run under ./checkpoints
    empty = runner.invoke(main, ["serve", "--checkpoint", str(tiny_run), "--port", "0", "--token", " "])
    assert empty.exit_code == 2 and "--token" in empty.output
    assert nothing.exit_code == 1 and "No trained run found" in nothing.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = runner.invoke(main, ["serve", "--checkpoint", str(tiny_run), "--port", str(port)])
    assert busy.exit_code == 1 and f"Cannot listen on 127.0.0.1:{port}" in busy.output
    assert len(busy.output.strip().splitlines()) == 1
    # An address of another machine (TEST-NET-1): warned about, then refused; nothing listens.
    other = runner.invoke(main, ["serve", "--checkpoint", str(tiny_run), "--host", "192.0.2.1", "--port", "0"])
    assert other.exit_code == 1 and "Warning" in other.output and "no --token" in other.output
    assert "Cannot listen on 192.0.2.1" in other.output
