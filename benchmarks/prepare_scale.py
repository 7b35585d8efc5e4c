"""Peak memory (and time) of `shakegen prepare`, `train` start-up and `eval` on a corpus of about 1 GB.

Each step runs as the real command in a child process (`python -m shakegen ...`); its peak
memory is the child's maximum resident set size, read from os.wait4 (Linux: kilobytes).
Corpora, chosen with --corpus:

  shakespeare  Tiny Shakespeare repeated to --size-mb (the default; 65 characters, uint8 ids)
  mixed        random lines mixing Latin with accents, Greek, Cyrillic, CJK and emoji
               (over 255 characters, so ids are uint16; about 2.2 bytes per character)
  cr-only      Tiny Shakespeare with CR-only line ends (every "\\n" made "\\r"), repeated

    python benchmarks/prepare_scale.py                                  # prepare, 1 GB
    python benchmarks/prepare_scale.py --measure prepare,train,eval     # and train start-up, eval
    python benchmarks/prepare_scale.py --corpus cr-only --size-mb 40
    python benchmarks/prepare_scale.py --shakegen-root /tmp/old-checkout   # another version's code

train runs `--preset quick --max-steps 1 --val-characters 100000` (start-up: data loading,
model, one step, a short validation);
eval runs on that run folder. Steps reuse what --workdir holds from a run with --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from shakegen.machine import processor_description

ROOT = Path(__file__).resolve().parent.parent
TINY_SHAKESPEARE = ROOT / "shakegen" / "data" / "tinyshakespeare.txt"
STEPS = ("prepare", "train", "eval")


def make_corpus(path: Path, size_mb: int, kind: str) -> int:
    """Write ~size_mb MB of corpus ``kind`` to ``path``; returns the byte count."""
    if kind == "mixed":
        block = _mixed_block()
    else:
        block = TINY_SHAKESPEARE.read_bytes()
        if kind == "cr-only":
            block = block.replace(b"\n", b"\r")
    written = 0
    with open(path, "wb") as handle:
        while written < size_mb * 1024 * 1024:
            handle.write(block)
            written += len(block)
    return written


def _mixed_block() -> bytes:
    rng = random.Random(0)
    alphabets = [
        "abcdefghijklmnopqrstuvwxyzéèêàçüöäß",
        "αβγδεζηθικλμνξοπρστυφχψω",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "".join(chr(0x4E00 + i) for i in range(400)),
        "😀😃😄😁🎭🎬📜",
    ]
    lines = []
    for _ in range(20000):
        alphabet = rng.choice(alphabets)
        words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(3, 14))]
        lines.append(" ".join(words) + rng.choice([".", ",", "!", "?", ";"]) + "\n")
    return "".join(lines).encode("utf-8")


def run_measured(
    args: list[str], shakegen_root: Path, log: Path, limit_seconds: float | None = None
) -> tuple[float, float, float, int]:
    """Run ``python -m shakegen <args>``; returns (seconds, peak RSS MB, peak anonymous RSS MB, exit status).

    Peak RSS (the kernel's, from wait4) includes pages of memory-mapped files the command
    touched, such as the prepared splits: clean page cache, which the kernel reclaims under
    pressure (and which this machine's 8 MB read-ahead makes large for random windows). The
    anonymous peak, sampled from /proc every 0.1 s, is the memory the command itself holds.
    With ``limit_seconds`` the command is stopped (SIGTERM) after that long: the peaks are then
    the peaks so far, which is what a flat-memory claim needs for a command that would run long.
    """
    env = dict(os.environ, PYTHONPATH=str(shakegen_root), TF_CPP_MIN_LOG_LEVEL="3", NO_COLOR="1")
    started = time.perf_counter()
    anonymous_kb = 0
    with open(log, "wb") as output:
        # cwd: `python -m` puts it first on sys.path, where it would shadow --shakegen-root.
        process = subprocess.Popen(
            [sys.executable, "-m", "shakegen", *args], stdout=output, stderr=output, env=env, cwd=log.parent
        )
        deadline = None if limit_seconds is None else started + limit_seconds
        while True:
            # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would mix all children).
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            anonymous_kb = max(anonymous_kb, _anonymous_kb(process.pid))
            if deadline is not None and time.perf_counter() > deadline:
                process.send_signal(signal.SIGTERM)
                deadline = None  # now wait for it to exit
            time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, anonymous_kb / 1024, process.returncode


def _anonymous_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next((int(line.split()[1]) for line in handle if line.startswith("RssAnon:")), 0)
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--corpus", choices=("shakespeare", "mixed", "cr-only"), default="shakespeare")
    parser.add_argument("--measure", default="prepare", help="Comma-separated steps: prepare, train, eval.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/shakegen-scale"))
    parser.add_argument("--keep", action="store_true", help="Keep --workdir (corpus, prepared data, run) for later.")
    parser.add_argument("--shakegen-root", type=Path, default=ROOT, help="Checkout whose shakegen code runs.")
    parser.add_argument(
        "--eval-seconds",
        type=float,
        default=120.0,
        help="Stop eval after this long and report its peak so far (a full streaming pass over a 1 GB "
        "corpus's validation split takes far longer; memory is flat from the first window). 0: run to the end.",
    )
    args = parser.parse_args()
    steps = [step.strip() for step in args.measure.split(",") if step.strip()]
    if unknown := set(steps) - set(STEPS):
        parser.error(f"unknown step(s) {', '.join(sorted(unknown))}; expected some of {', '.join(STEPS)}")

    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    corpus_path = workdir / f"corpus-{args.corpus}-{args.size_mb}mb.txt"
    data_dir, run_dir = workdir / "data", workdir / "run"
    if not corpus_path.exists():
        make_corpus(corpus_path, args.size_mb, args.corpus)
    size = corpus_path.stat().st_size
    print(f"corpus: {args.corpus}, {size / 1e6:,.0f} MB ({corpus_path})")
    print(f"code: {args.shakegen_root}; processor: {processor_description()}")

    commands = {
        "prepare": ["prepare", "--input", str(corpus_path), "--data-dir", str(data_dir)],
        # Start-up: data, model, one step, and a validation capped at 100k characters (the
        # memory question is about the 1 GB training split, not a long validation).
        "train": ["train", "--preset", "quick", "--max-steps", "1", "--data-dir", str(data_dir)]
        + ["--val-characters", "100000", "--run-dir", str(run_dir), "--overwrite"],
        "eval": ["eval", "--checkpoint", str(run_dir), "--data-dir", str(data_dir), "--json"],
    }
    for step in STEPS:
        if step not in steps:
            continue
        log = workdir / f"{step}.log"
        limit = args.eval_seconds if step == "eval" and args.eval_seconds > 0 else None
        seconds, peak_mb, anonymous_mb, status = run_measured(commands[step], args.shakegen_root, log, limit)
        rate = f", {size / 1e6 / seconds:.1f} MB/s" if step == "prepare" else ""
        stopped = f" (stopped after {limit:g} s, as --eval-seconds asks)" if limit and seconds >= limit else ""
        print(
            f"{step:<8} {seconds:7.1f} s{rate}, peak memory (max RSS of the child) {peak_mb:,.0f} MB, "
            f"of which anonymous at most {anonymous_mb:,.0f} MB{stopped}"
        )
        if status != 0 and not stopped:
            print(f"  exit status {status}; last lines of {log}:")
            print("  " + "\n  ".join(log.read_text(errors="replace").splitlines()[-5:]))
    meta_path = data_dir / "prepared" / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        print(f"prepared: {meta['characters']:,} characters, vocabulary {meta['vocab_size']} ({meta['dtype']} ids)")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
