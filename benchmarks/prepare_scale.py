"""Preparing a corpus larger than is comfortable in memory: throughput and peak memory.

Generates a UTF-8 corpus of --size-mb megabytes mixing scripts (Latin with accents, Greek,
Cyrillic, CJK, emoji), so the vocabulary is large (over 255 characters: ids become uint16),
then runs `prepare_corpus` in a child process and reports MB/s and the child's peak RSS.

    python benchmarks/prepare_scale.py [--size-mb 1024] [--workdir /tmp/shakegen-scale]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_corpus(path: Path, size_mb: int) -> int:
    """Write ~size_mb MB of mixed-script lines; returns the byte count."""
    import random

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
    block = "".join(lines).encode("utf-8")
    written = 0
    with open(path, "wb") as handle:
        while written < size_mb * 1024 * 1024:
            handle.write(block)
            written += len(block)
    return written


def child(input_path: str, data_dir: str, queue) -> None:
    from shakegen.prepare import prepare_corpus

    started = time.perf_counter()
    meta = prepare_corpus(input_path, data_dir)
    queue.put((time.perf_counter() - started, meta["characters"], meta["vocab_size"], meta["dtype"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--workdir", default="/tmp/shakegen-scale")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    corpus_path = workdir / "corpus.txt"
    size = make_corpus(corpus_path, args.size_mb)
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(
        target=child, args=(str(corpus_path), str(workdir / "data"), queue)
    )
    process.start()
    seconds, characters, vocab_size, dtype = queue.get()
    process.join()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kilobytes
    print(f"input: {size / 1e6:,.0f} MB UTF-8, {characters:,} characters, vocabulary {vocab_size} ({dtype} ids)")
    print(
        f"prepare: {seconds:.1f} s, {size / 1e6 / seconds:.1f} MB/s, peak memory (max RSS of the child) {peak_mb:,.0f} MB"
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
