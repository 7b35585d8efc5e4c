"""Load on `shakegen serve`: N concurrent clients streaming the same length each, on loopback only.

For each engine of --engine (``auto`` by default; ``numpy,tensorflow`` compares the NumPy engine
with TensorFlow) starts `python -m shakegen serve --engine E` on 127.0.0.1, then for each client
count (1 and 8 by default) runs --rounds rounds in which every client streams --length characters at once
(server-sent events, a different random seed each). Reports time to the first sampled
character, characters per second per client and in total, p50/p95 latency of a whole
request, and checks that nothing was mixed or lost: every client's text must equal the
Python API's text for its random seed (sample i of one batched ``model.generate`` call
with random seed s is the text for random seed s + i).

Then small requests under evaluation load: --small-requests plain /v1/generate requests of
--small-length characters, one after another, first with nothing else running, then while
--evaluators clients keep scoring texts of --evaluate-characters characters on /v1/evaluate
(each starts the next as soon as one is answered). Reports p50/p95 latency of the small
requests in both phases and their ratio; their texts must equal the API's too. Evaluation
takes turns with sampling on the model's thread, so a small request waits for at most a
turn or so, not for a whole evaluation. --evaluate-characters 0 skips this part.

    python benchmarks/serve_load.py --checkpoint pretrained --engine numpy,tensorflow [--clients 1,8] [--rounds 3]
    python benchmarks/serve_load.py --checkpoint pretrained --evaluate-characters 1000000 --evaluators 2
    python benchmarks/serve_load.py --tiny --engine numpy,tensorflow --rounds 1 --length 50 --small-requests 3 \
        --evaluate-characters 20000      # a smoke run: a tiny run trained on the spot (seconds)

Nothing leaves 127.0.0.1; every request has a timeout and the whole run a deadline (--max-seconds).
"""

from __future__ import annotations

import argparse
import codecs
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from shakegen.machine import processor_description

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run_dir: Path, port: int, log_path: Path, deadline: float, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "shakegen", "serve", "--checkpoint", str(run_dir), "--port", str(port), *options]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"shakegen serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("shakegen serve did not answer /healthz in time.")


def stream(port: int, body: dict, timeout: float, barrier: threading.Barrier | None = None) -> dict:
    """One client: POST a streamed /v1/generate and time it. Returns the text and the timings."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = json.dumps({**body, "stream": True})
    if barrier is not None:
        barrier.wait(timeout)
    started = time.perf_counter()
    connection.request("POST", "/v1/generate", body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"/v1/generate answered {response.status}: {response.read()[:300]!r}")
    decoder, buffer, text, first, finished = codecs.getincrementaldecoder("utf-8")(), "", "", None, None
    seed_length = len(body.get("seed") or "")
    while finished is None:
        piece = response.read1(65536)
        if not piece:
            break
        buffer += decoder.decode(piece)
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            name = next(line[6:].strip() for line in frame.split("\n") if line.startswith("event:"))
            data = json.loads(next(line[5:] for line in frame.split("\n") if line.startswith("data:")))
            if name == "text":
                text += data["text"]
                if first is None and len(text) > seed_length:
                    first = time.perf_counter()
            elif name == "done":
                finished = time.perf_counter()
            elif name == "error":
                raise SystemExit(f"stream error: {data['detail']}")
    connection.close()
    if finished is None:
        raise SystemExit("a stream ended without its done event")
    return {"text": text, "first": first - started, "latency": finished - started, "started": started, "end": finished}


def load_round(port: int, clients: int, body: dict, base_seed: int, timeout: float) -> list[dict]:
    barrier = threading.Barrier(clients)
    results: list = [None] * clients

    def client(index: int) -> None:
        try:
            results[index] = stream(port, {**body, "random_seed": base_seed + index}, timeout, barrier)
        except BaseException as error:  # reported below, not lost in a thread
            results[index] = error

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout * 2)
    failures = [result for result in results if not isinstance(result, dict)]
    if failures:
        raise SystemExit(f"{len(failures)} of {clients} clients failed: {failures[0]!r}")
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def post_json(port: int, path: str, body: dict, timeout: float, connection=None) -> tuple[dict, float]:
    """One plain POST; its answer and its latency in seconds."""
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    latency = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {payload[:300]!r}")
    return json.loads(payload), latency


def small_requests(port: int, bodies: list[dict], expected: list[str], timeout: float) -> tuple[list[float], int]:
    """The small requests one after another: their latencies, and how many texts differ from the API's."""
    latencies, wrong = [], 0
    for body, text in zip(bodies, expected, strict=True):
        answer, latency = post_json(port, "/v1/generate", body, timeout)
        latencies.append(latency)
        wrong += answer["text"] != text
    return latencies, wrong


class Evaluators:
    """``count`` clients, each scoring ``text`` on /v1/evaluate again and again until ``stop``."""

    def __init__(self, port: int, count: int, text: str, timeout: float):
        self.port, self.text, self.timeout = port, text, timeout
        self.finished: list[float] = []  # seconds per evaluation answered
        self.errors: list[BaseException] = []
        self.connections: list = [None] * count
        self.turns_before = self._health()["evaluation_turns"]
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(index,), daemon=True) for index in range(count)]
        for thread in self.threads:
            thread.start()

    def _health(self) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        connection.request("GET", "/healthz")
        return json.loads(connection.getresponse().read())

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.connections[index] = connection
            try:
                _, seconds = post_json(self.port, "/v1/evaluate", {"text": self.text}, self.timeout, connection)
                self.finished.append(seconds)
            except (OSError, http.client.HTTPException) as error:
                if not self._stop.is_set():
                    self.errors.append(error)
                return
            finally:
                connection.close()

    def wait_until_scoring(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            health = self._health()
            if health["evaluating_now"] >= len(self.threads) and health["evaluation_turns"] > self.turns_before:
                return
            time.sleep(0.05)
        raise SystemExit("the evaluations did not start in time")

    def stop(self) -> dict:
        """Hang up on the evaluations still running (the server stops them) and report the counters."""
        self._stop.set()
        for connection in self.connections:
            if connection is not None and connection.sock is not None:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self.threads:
            thread.join(self.timeout)
        if self.errors:
            raise SystemExit(f"an evaluation failed: {self.errors[0]!r}")
        deadline = time.monotonic() + self.timeout
        while (health := self._health())["evaluating_now"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the server stops each at its next turn
        return health


def evaluation_load(port: int, args, run_dir: Path, expected: list[str], bodies: list[dict], deadline: float) -> bool:
    """Latency of small requests alone and under evaluation load; prints a table. True if every text matched."""
    from shakegen.data import corpus

    source = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")
    text = (source * (args.evaluate_characters // len(source) + 1))[: args.evaluate_characters]
    alone, wrong_alone = small_requests(port, bodies, expected, args.timeout)
    if time.monotonic() > deadline:
        raise SystemExit("--max-seconds reached")
    evaluators = Evaluators(port, args.evaluators, text, args.timeout)
    try:
        evaluators.wait_until_scoring(deadline)
        loaded, wrong_loaded = small_requests(port, bodies, expected, args.timeout)
        during = evaluators._health()
    finally:
        after = evaluators.stop()
    turns = during["evaluation_turns"] - evaluators.turns_before
    print()
    print(
        f"small requests: {len(bodies)} plain /v1/generate of {args.small_length} characters, one after another; "
        f"evaluation load: {args.evaluators} client(s) scoring {args.evaluate_characters:,} characters each, "
        "again and again"
    )
    print()
    print("| small requests | latency p50 (s) | latency p95 (s) | p95 / p95 alone | mixed or lost |")
    print("|---|---:|---:|---:|---|")
    p95_alone = percentile(alone, 95)
    for name, latencies, wrong in [
        ("alone", alone, wrong_alone),
        (f"during {args.evaluators} evaluation(s)", loaded, wrong_loaded),
    ]:
        print(
            f"| {name} | {percentile(latencies, 50):.3f} | {percentile(latencies, 95):.3f} "
            f"| {percentile(latencies, 95) / p95_alone:.1f}x | {'none' if wrong == 0 else f'{wrong} texts differ'} |"
        )
    print()
    evaluated = evaluators.finished
    print(
        f"while the small requests ran: {turns} evaluation turns taken, {during['evaluating_now']} evaluation(s) "
        f"running at the end; evaluations answered in all: {len(evaluated)}"
        + (f" (median {np.median(evaluated):.2f} s each)" if evaluated else "")
        + f"; stopped when their client hung up: {after['evaluations_stopped']}"
    )
    return wrong_alone == 0 and wrong_loaded == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="Run folder to serve.")
    parser.add_argument("--tiny", action="store_true", help="Train a tiny run in a temporary folder and serve it.")
    parser.add_argument("--clients", default="1,8", help="Comma-separated concurrent client counts.")
    parser.add_argument(
        "--engine",
        default="auto",
        help="Comma-separated engines to serve with, one after the other: auto, numpy, tensorflow.",
    )
    parser.add_argument("--length", type=int, default=500, help="Characters each client streams.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per client count.")
    parser.add_argument("--seed", default="ROMEO:", help="Seed text of every request.")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds any one request may take.")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="Deadline for the whole benchmark.")
    parser.add_argument("--small-requests", type=int, default=40, help="Small requests per phase (evaluation load).")
    parser.add_argument("--small-length", type=int, default=20, help="Characters per small request.")
    parser.add_argument(
        "--evaluate-characters", type=int, default=200_000, help="Characters per evaluation of the load; 0 skips it."
    )
    parser.add_argument("--evaluators", type=int, default=1, help="Clients scoring texts at once (evaluation load).")
    args = parser.parse_args()
    counts = [int(count) for count in args.clients.split(",")]
    engines = args.engine.split(",")
    if not all(engine in ("auto", "numpy", "tensorflow") for engine in engines):
        parser.error("--engine takes auto, numpy and tensorflow, comma-separated")
    if not (args.checkpoint or args.tiny) or not all(1 <= count <= 64 for count in counts) or args.length > 5000:
        parser.error("give --checkpoint RUN or --tiny; client counts 1 to 64; --length at most 5000")
    if not (1 <= args.small_requests <= 1000 and 1 <= args.small_length <= 5000 and 1 <= args.evaluators <= 16):
        parser.error("--small-requests 1 to 1000, --small-length 1 to 5000, --evaluators 1 to 16")
    deadline = time.monotonic() + args.max_seconds
    workdir = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run_dir = args.checkpoint
    if args.tiny:
        from shakegen.data import corpus
        from tests.runs import train_tiny_run

        run_dir = train_tiny_run(workdir, corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[:6000])

    print(f"processor: {processor_description()}; load average before: {os.getloadavg()[0]:.2f}")
    all_equal = True
    for engine in engines:
        all_equal &= measure(engine, run_dir, args, counts, workdir, deadline)
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(
        "every client's text equals the Python API's for its random seed"
        if all_equal
        else "MIXED OR LOST: some texts differ"
    )
    if not all_equal:
        raise SystemExit(1)


def measure(engine: str, run_dir: Path, args, counts: list[int], workdir: Path, deadline: float) -> bool:
    """Serve ``run_dir`` with ``--engine engine`` and print its tables; True if every text matched the API's."""
    import shakegen

    # References first (the server is not up yet): sample i of a batch with random seed s is the
    # text for random seed s + i, so one call gives every client's expected text (on the same engine).
    model = shakegen.load(run_dir, engine="tensorflow" if engine == "tensorflow" else "numpy")
    body = {"seed": args.seed, "length": args.length, "temperature": args.temperature}
    plan, expected = [], {}
    for count in counts:
        for round_index in range(args.rounds):
            base = 1000 * count + 100 * round_index
            plan.append((count, base))
            expected[base] = model.generate(
                args.seed, length=args.length, temperature=args.temperature, num_samples=count, random_seed=base
            )
    small_bodies = [
        {"seed": args.seed, "length": args.small_length, "temperature": args.temperature, "random_seed": 50_000 + index}
        for index in range(args.small_requests)
    ]
    small_expected = model.generate(
        args.seed,
        length=args.small_length,
        temperature=args.temperature,
        num_samples=args.small_requests,
        random_seed=50_000,
    )
    del model

    port = free_port()
    evaluation_options = [
        "--max-evaluate-characters",
        str(max(1, args.evaluate_characters)),
        "--max-request-bytes",
        str(max(1_048_576, 4 * args.evaluate_characters + 1024)),  # JSON may escape a character to 6 bytes; ample
        "--engine",
        engine,
    ]
    server = start_server(run_dir, port, workdir / f"serve-{engine}.log", deadline, *evaluation_options)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
        connection.request("GET", "/v1/model")
        card = json.loads(connection.getresponse().read())
        stream(port, {**body, "random_seed": 1}, args.timeout)  # warm-up
        print()
        print(
            f"--engine {engine} (a single request samples on {card['generate_engine']}); run: {run_dir} "
            f"({card['num_layers']} x {card['cell']} GRU({card['rnn_units']}), {card['parameters']:,} parameters); "
            f"{args.length} characters per client, seed {args.seed!r}, temperature {args.temperature:g}, "
            f"{args.rounds} rounds per row"
        )
        print()
        print(
            "| engine | clients | first character p50 / p95 (s) | latency p50 / p95 (s) "
            "| characters/s per client (median) | characters/s in total | mixed or lost |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        all_equal = True
        for count in counts:
            results, totals, wrong = [], [], 0
            for row_count, base in plan:
                if row_count != count:
                    continue
                if time.monotonic() > deadline:
                    raise SystemExit("--max-seconds reached")
                round_results = load_round(port, count, body, base, args.timeout)
                wrong += sum(result["text"] != text for result, text in zip(round_results, expected[base], strict=True))
                span = max(r["end"] for r in round_results) - min(r["started"] for r in round_results)
                totals.append(count * args.length / span)
                results += round_results
            all_equal &= wrong == 0
            firsts = [result["first"] for result in results]
            latencies = [result["latency"] for result in results]
            per_client = [args.length / result["latency"] for result in results]
            print(
                f"| {engine} | {count} | {percentile(firsts, 50):.3f} / {percentile(firsts, 95):.3f} "
                f"| {percentile(latencies, 50):.3f} / {percentile(latencies, 95):.3f} "
                f"| {np.median(per_client):,.0f} | {np.median(totals):,.0f} "
                f"| {'none' if wrong == 0 else f'{wrong} of {len(results)} texts differ'} |"
            )
        if args.evaluate_characters > 0:
            all_equal &= evaluation_load(port, args, run_dir, small_expected, small_bodies, deadline)
        return all_equal
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
