"""The NumPy engine against the TensorFlow sampler on the pretrained model.

(warm) characters per second in one warm process, batch by batch (1, 2, 4, 8, 16 by default):
       the engine's sampler (``shakegen.use.engine``) against TensorFlow's compiled loop
       (``tf_sampler.Sampler``), both loaded and warmed up first, alternating rounds, median;
       the crossover is the first batch where TensorFlow is faster (``sampling.TENSORFLOW_FROM_SAMPLES``
       is what ``--engine auto`` uses). Checked against the targets: at least 2,000 characters/s
       at batch 1, and at least 1.4x TensorFlow's.
(cold) the whole command ``shakegen generate --seed "ROMEO:" --length 500`` in a fresh empty
       folder (so it falls back to the pretrained model), as it runs by default (the engine)
       and with ``--engine tensorflow``, alternating runs, median. Its stdout is a pseudo-terminal,
       so it streams as it does for a user: wall time, time to the first byte on stdout (the seed)
       and to the first sampled character, and peak RSS (``os.wait4``'s rusage of that child
       alone). The children are started by a small process that imports only the standard
       library: a child's peak RSS counts its parent's pages up to its exec. Checked against
       the targets: at most 0.7 s wall, 0.4 s to the first character, 200 MB.

    python benchmarks/engine_speed.py [--rounds 5] [--length 2000] [--batches 1,2,4,8,16] [--blas-threads 1,2]
    python benchmarks/engine_speed.py --cold [--runs 5] [--cold-length 500] [--cli-args "--top-p 0.9"]
    python benchmarks/engine_speed.py --cold-only --runs 1 --cold-length 50     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "shakegen" / "pretrained_model"

SEED = "ROMEO:"
TEMPERATURE = 0.8
TARGETS = {"wall s": 0.7, "first sampled s": 0.4, "peak RSS MB": 200.0}  # issue 27, the engine's command
RATE_TARGET, RATIO_TARGET = 2000.0, 1.4  # characters/s at batch 1, and against TensorFlow's


def engine_sampler(run_dir, blas_threads: int = 1):
    from shakegen.use import engine

    loaded, info, _ = engine.load(run_dir)
    seed_ids = info.vocab.encode(SEED)

    def run(length: int, batch: int) -> None:
        engine.BLAS_THREADS = blas_threads
        try:
            for _ in loaded.sample(seed_ids, length, num_samples=batch, temperature=TEMPERATURE):
                pass
        finally:
            engine.BLAS_THREADS = 1

    return run


def tensorflow_sampler(run_dir):
    """TensorFlow's path as the faces use it: the float32 model and its compiled sampling loop."""
    from shakegen.runs import checkpoint
    from shakegen.use import sampling, tf_sampler

    model, info, _ = checkpoint.load_model(run_dir, precision="float32")
    sampler = tf_sampler.Sampler(model, sampling.SamplingOptions(temperature=TEMPERATURE))
    seed_ids = info.vocab.encode(SEED)

    def run(length: int, batch: int) -> None:
        for _ in sampler.sample(seed_ids, length, batch, 0):
            pass

    return run


def warm(run_dir, batches: list[int], length: int, rounds: int, blas_threads: list[int]) -> None:
    from common import alternate, report, timed_rate  # imports TensorFlow

    ways = {
        "engine" if count == 1 else f"engine, {count} BLAS threads": engine_sampler(run_dir, count)
        for count in blas_threads
    }
    ways["tensorflow"] = tensorflow_sampler(run_dir)
    crossover, batch_one = None, None
    for batch in batches:
        for run in ways.values():
            run(min(length, 200), batch)  # trace, compile, fill caches
        runs = {
            f"{name}, batch {batch}": (
                lambda run=run, batch=batch: timed_rate(lambda: run(length, batch), length * batch)
            )
            for name, run in ways.items()
        }
        print(f"\nbatch {batch}: {length:,} characters per sample, {rounds} alternating rounds")
        rates = alternate(runs, rounds, pause=0.5)
        report(rates, f"tensorflow, batch {batch}", "chars/s")
        engine_best = max(statistics.median(values) for name, values in rates.items() if name.startswith("engine"))
        tensorflow = statistics.median(rates[f"tensorflow, batch {batch}"])
        if crossover is None and tensorflow > engine_best:
            crossover = batch
        if batch == 1:
            batch_one = (statistics.median(rates["engine, batch 1"]), tensorflow)
    print(
        f"\ncrossover: {'TensorFlow faster from batch ' + str(crossover) if crossover else 'none in ' + str(batches)}"
    )
    if batch_one is not None:
        rate, tensorflow = batch_one
        verdict = "meets" if rate >= RATE_TARGET and rate >= RATIO_TARGET * tensorflow else "misses"
        print(
            f"batch 1: the engine {rate:,.0f} chars/s, {rate / tensorflow:.2f}x TensorFlow's {tensorflow:,.0f}: "
            f"{verdict} the target (>= {RATE_TARGET:,.0f} chars/s and >= {RATIO_TARGET}x)"
        )


def timed_child(command: list[str], cwd: str, seed_length: int, environment: dict) -> dict:
    """Run ``command`` with a pseudo-terminal as its stdout (so shakegen streams); seconds to its first
    stdout byte, to the first sampled character, to its end, and its own peak RSS in MB."""
    reader, writer = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=writer, stderr=subprocess.DEVNULL)
    os.close(writer)
    received, first_byte, first_sampled = b"", None, None
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            break
        now = time.perf_counter() - started
        first_byte = now if first_byte is None else first_byte
        received += chunk
        if first_sampled is None and len(received.decode("utf-8", "ignore")) > seed_length:
            first_sampled = now
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    os.close(reader)
    if process.returncode:
        raise SystemExit(f"{shlex.join(command)} failed with exit status {process.returncode}")
    return {
        "wall s": wall,
        "first byte s": first_byte,
        "first sampled s": first_sampled,
        "peak RSS MB": usage.ru_maxrss / 1024,
    }


def cold_runs(run_dir: str, length: int, runs: int, cli_args: list[str]) -> dict:
    """In the small process: every command ``runs`` times, alternating; figures by command."""
    # The pretrained model is what a fresh folder falls back to: the command exactly as a user types it.
    run = [] if Path(run_dir).resolve() == BUNDLE.resolve() else ["--checkpoint", run_dir]
    command = [sys.executable, "-m", "shakegen", "generate", *run, "--seed", SEED, "--length", str(length), *cli_args]
    commands = {
        "shakegen generate (engine)": command,
        "shakegen generate --engine tensorflow": [*command, "--engine", "tensorflow"],
    }
    figures = {name: [] for name in commands}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as folder:  # a fresh folder: no checkpoints/ or data/ to find
        for _ in range(runs):
            for name, command in commands.items():
                figures[name].append(timed_child(command, folder, len(SEED), environment))
    return figures


def cold(run_dir, length: int, runs: int, cli_args: list[str]) -> None:
    request = json.dumps([str(Path(run_dir).resolve()), length, runs, cli_args])
    result = subprocess.run([sys.executable, __file__, "--cold-child", request], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr.strip() or "the timing process failed")
    figures = json.loads(result.stdout)
    print(f"\nfresh process, {length} characters, {runs} alternating runs, median (all runs):")
    for name, rows in figures.items():
        print(f"  {name}")
        for key in rows[0]:
            values = [row[key] for row in rows]
            median = statistics.median(values)
            target = TARGETS.get(key) if "(engine)" in name and length == 500 else None
            check = "" if target is None else f"   target <= {target:g}: {'met' if median <= target else 'MISSED'}"
            print(f"    {key:<16}{median:8.3f}   ({', '.join(f'{value:.3f}' for value in values)}){check}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(BUNDLE), help="run folder (default: the pretrained model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--length", type=int, default=2000, help="characters per sample in the warm comparison")
    parser.add_argument("--batches", default="1,2,4,8,16", help="comma-separated batch sizes, e.g. 1,2,4,8,16,32")
    parser.add_argument("--blas-threads", default="1", help="engine OpenBLAS thread counts to compare, e.g. 1,2")
    parser.add_argument("--cold", action="store_true", help="also time whole fresh processes")
    parser.add_argument("--cold-only", action="store_true", help="only time whole fresh processes")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command")
    parser.add_argument("--cold-length", type=int, default=500)
    parser.add_argument("--cli-args", default="", help="extra options for shakegen generate, one string")
    parser.add_argument("--cold-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        return print(json.dumps(cold_runs(*json.loads(args.cold_child))))
    sys.path.insert(0, str(ROOT))
    from shakegen.machine import processor_description

    print(f"processor: {processor_description()}; run: {Path(args.run)}")
    if not args.cold_only:
        batches = [int(value) for value in args.batches.split(",")]
        warm(args.run, batches, args.length, args.rounds, [int(value) for value in args.blas_threads.split(",")])
    if args.cold or args.cold_only:
        cold(args.run, args.cold_length, args.runs, shlex.split(args.cli_args))


if __name__ == "__main__":
    main()
