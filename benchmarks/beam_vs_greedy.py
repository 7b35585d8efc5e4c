"""How often beam search beats greedy decoding's total log-probability on the pretrained model.

For each of ``--prompts`` seed texts (windows of the embedded corpus at evenly spaced places, cut
to end at a line end), greedy decoding (beam 1) and beam ``--beams`` each continue the seed by
``--length`` characters; the figure is the share of prompts where the best beam's total
log-probability is higher than greedy's (they are equal when the best beam is the greedy text).

    python benchmarks/beam_vs_greedy.py --prompts 20 --length 100 --beams 5
"""

from __future__ import annotations

import argparse

from shakegen.data import corpus
from shakegen.runs import pretrained
from shakegen.use import engine
from shakegen.use.beam import beam_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--beams", type=int, default=5)
    args = parser.parse_args()
    model, info, _ = engine.load(pretrained.BUNDLE_DIR)
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")
    better = equal = 0
    gains = []
    for index in range(args.prompts):
        start = (index + 1) * len(text) // (args.prompts + 1)
        window = text[start : start + 200]
        seed = window[: window.rfind("\n") + 1] or window
        seed_ids = info.vocab.encode(seed)
        (greedy,) = beam_search(model, seed_ids, args.length, beams=1)
        best = beam_search(model, seed_ids, args.length, beams=args.beams)[0]
        gain = best.log_prob - greedy.log_prob
        gains.append(gain)
        better += gain > 1e-9
        equal += best.ids == greedy.ids
        print(f"prompt {index:2d}: greedy {greedy.log_prob:9.3f}  beam {best.log_prob:9.3f}  gain {gain:7.3f}")
    print(
        f"beam {args.beams} beats greedy on {better} of {args.prompts} prompts ({better / args.prompts:.0%}); "
        f"same text on {equal}; mean gain {sum(gains) / len(gains):.3f} nats over {args.length} characters"
    )


if __name__ == "__main__":
    main()
