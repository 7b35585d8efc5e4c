"""The pretrained model exported with `shakegen export --format web`, in headless chromium.

Measures, over ``--rounds`` fresh page loads from a static server on 127.0.0.1:
  - time from navigation start to the model decoded, and to the first sampled character
    (``generate`` called as soon as the model is ready);
  - characters/s at batch 1 over ``--length`` characters, greedy and at temperature 0.8;
and checks the page against the NumPy engine on the same float16 weights:
  - greedy text for ``--greedy-length`` characters (identical or not; where it first differs);
  - ``--seeds`` random seeds × ``--sample-length`` characters at temperature 0.8: how many texts
    are identical, and for each other where it first differs and the engine's score gap there
    (logits / T + Gumbel between the two characters: a float near-tie when tiny);
  - that a file:// load gives the same greedy text, and the folder's size against its weights.

    python benchmarks/web_speed.py [--rounds 3] [--length 2000] [--seeds 20] [--sample-length 300] [--no-wasm]

--no-wasm measures the plain JavaScript loops the page falls back to without WebAssembly SIMD;
--screenshot PATH saves the page after sampling 500 characters at random seed 7 (docs/web-export.png).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shakegen.exports import webpage as webexport  # noqa: E402
from shakegen.machine import processor_description  # noqa: E402
from shakegen.runs import pretrained
from tests.test_web_export import (  # noqa: E402
    StaticServer,
    browser_generate,
    chromium,
    engine_text,
    float16_engine,
    open_page,
    score_gap,
)

SEED = "ROMEO:"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--greedy-length", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument("--no-wasm", action="store_true", help="the JavaScript fallback instead of WebAssembly SIMD")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the page here")
    args = parser.parse_args()
    print(f"processor: {processor_description()}")
    with tempfile.TemporaryDirectory() as scratch:
        result = webexport.export_web(pretrained.BUNDLE_DIR, Path(scratch) / "site")
        print(
            f"folder: {result.folder_bytes:,} bytes = float16 weights {result.weights_bytes:,} "
            f"+ {(result.folder_bytes - result.weights_bytes) / 1024:.1f} KB"
        )
        server = StaticServer(result.out_dir)
        driver = chromium(performance_log=False)
        if args.no_wasm:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "window.shakegenNoWasm = true;"})
        try:
            measure(driver, f"{server.url}/index.html", args)
            check(driver, f"{server.url}/index.html", (result.out_dir / "index.html").as_uri(), args)
            if args.screenshot:
                screenshot(driver, f"{server.url}/index.html", args.screenshot)
        finally:
            driver.quit()
            server.stop()
    return 0


def measure(driver, url: str, args) -> None:
    ready, first, greedy_rates, sampled_rates = [], [], [], []
    for _ in range(args.rounds):
        opened = open_page(driver, url)
        got = browser_generate(driver, seed=SEED, length=args.length, temperature=0.8, randomSeed=0)
        ready.append(opened["timings"]["readyMs"])
        first.append(got["first_ms"])
        sampled_rates.append(args.length / got["ms"] * 1000)
        got = browser_generate(driver, seed=SEED, length=args.length, temperature=0)
        greedy_rates.append(args.length / got["ms"] * 1000)
    print(f"kernel: {opened['kernel']}")
    for name, values, unit in [
        ("navigation start to model ready", ready, "ms"),
        ("navigation start to first character", first, "ms"),
        ("characters/s at batch 1, temperature 0.8", sampled_rates, "/s"),
        ("characters/s at batch 1, greedy", greedy_rates, "/s"),
    ]:
        runs = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:<44} median {statistics.median(values):>8,.0f} {unit}   ({runs})")


def check(driver, url: str, file_url: str, args) -> None:
    loaded, info = float16_engine(pretrained.BUNDLE_DIR)
    vocab = info.vocab
    open_page(driver, url)
    greedy = browser_generate(driver, seed=SEED, length=args.greedy_length, temperature=0)["text"]
    expected = engine_text(loaded, vocab, SEED, args.greedy_length, temperature=0)
    print(f"greedy {args.greedy_length} characters: {'identical' if greedy == expected else 'DIFFERENT'}")
    if greedy != expected:
        at = next(i for i, (a, b) in enumerate(zip(greedy, expected, strict=True)) if a != b)
        print(f"  first differs at character {at - len(SEED)}")
    identical, notes = 0, []
    for random_seed in range(args.seeds):
        options = dict(temperature=0.8, random_seed=random_seed)
        got = browser_generate(driver, seed=SEED, length=args.sample_length, temperature=0.8, randomSeed=random_seed)
        expected = engine_text(loaded, vocab, SEED, args.sample_length, **options)
        if got["text"] == expected:
            identical += 1
            continue
        at = next(i for i, (a, b) in enumerate(zip(got["text"], expected, strict=True)) if a != b)
        gap = score_gap(loaded, vocab, expected, SEED, at - len(SEED), options, got["text"][at], expected[at])
        notes.append(f"  random seed {random_seed}: first differs at character {at - len(SEED)}, score gap {gap:.2e}")
    print(f"sampled {args.seeds} seeds × {args.sample_length} characters at temperature 0.8: {identical} identical")
    print("\n".join(notes))
    open_page(driver, file_url)
    from_file = browser_generate(driver, seed=SEED, length=200, temperature=0)["text"]
    ok = from_file == engine_text(loaded, vocab, SEED, 200, temperature=0)
    print(f"file:// load: {'works, same greedy text' if ok else 'DIFFERENT TEXT'}")


def screenshot(driver, url: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1280, 760)
    open_page(driver, url)
    driver.find_element(By.ID, "random-seed").send_keys("7")
    driver.find_element(By.ID, "generate").click()
    WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "done")
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")


if __name__ == "__main__":
    sys.exit(main())
