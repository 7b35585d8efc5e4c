"""Memory and tracing while one loaded model samples at many distinct temperatures on TensorFlow.

Each request uses a temperature no earlier request used (1.0001, 1.0002, ...), as a server
taking requests from many clients sees. Before the fix ``TextModel`` built a new sampler,
and traced and compiled two ``tf.function``s, for every new (temperature, top_k, top_p);
now one compiled loop takes the options as inputs. Printed: the resident set size (RSS,
current, from /proc) after the first request and every ``--every`` requests, the growth,
the number of tracings of the compiled functions, and the seconds per request.

With ``--old N``, in the same process afterwards, N temperatures sampled the old way (a new
``Sampler`` per option value, which is what ``TextModel`` did) for contrast.

    python benchmarks/sampler_memory.py [--run pretrained] [--temperatures 1000] [--length 64] [--old 30]
    python benchmarks/sampler_memory.py --run checkpoints/tiny --temperatures 20 --old 3   # smoke
"""

from __future__ import annotations

import argparse
import os
import time

from common import processor_description

import shakegen
from shakegen.use import sampling, tf_sampler


def rss_mb() -> float:
    """Current resident set size in MiB (not the peak: memory handed back counts as gone)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained", help="run folder, or 'pretrained'")
    parser.add_argument("--temperatures", type=int, default=1000, help="distinct temperatures, one request each")
    parser.add_argument("--length", type=int, default=64, help="characters per request")
    parser.add_argument("--every", type=int, default=100, help="print RSS every this many requests")
    parser.add_argument("--old", type=int, default=0, help="then this many temperatures with a sampler each")
    args = parser.parse_args()

    print(
        f"{processor_description()}; run {args.run}; {args.temperatures} distinct temperatures, {args.length} chars each"
    )
    model = shakegen.load(args.run, engine="tensorflow")  # the compiled loop is what is measured
    model.generate("ROMEO:", length=args.length, temperature=1.0, random_seed=0)  # trace and compile once
    start = rss_mb()
    traces = model.sampler().tracing_count()
    print(f"after the first request: RSS {start:,.1f} MiB, {traces} tracings")
    started = time.perf_counter()
    for index in range(1, args.temperatures + 1):
        model.generate("ROMEO:", length=args.length, temperature=1.0 + index / 10_000, random_seed=index)
        if index % args.every == 0 or index == args.temperatures:
            seconds = (time.perf_counter() - started) / index
            print(
                f"{index:>6} temperatures: RSS {rss_mb():,.1f} MiB ({rss_mb() - start:+,.1f}), "
                f"{model.sampler().tracing_count()} tracings, {seconds * 1000:,.0f} ms per request"
            )
    if args.old:
        before = rss_mb()
        started = time.perf_counter()
        seed_ids = model.info.vocab.encode("ROMEO:")
        kept = []  # TextModel kept every sampler it built
        for index in range(args.old):
            options = sampling.SamplingOptions(temperature=2.0 + index / 10_000)
            kept.append(tf_sampler.Sampler(model.model, options))
            for _ in kept[-1].sample(seed_ids, args.length, 1, index):
                pass
        seconds = (time.perf_counter() - started) / args.old
        print(
            f"old way, a sampler per option value, {args.old} temperatures: RSS {rss_mb() - before:+,.1f} MiB, "
            f"{sum(sampler.tracing_count() for sampler in kept)} tracings, {seconds * 1000:,.0f} ms per request"
        )


if __name__ == "__main__":
    main()
