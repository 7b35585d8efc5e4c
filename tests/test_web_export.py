"""`shakegen export --format web`: the exported page in a real headless browser (Debian's chromium).

The page's texts are checked against the NumPy engine fed the same float16 weights (greedy equal,
sampled equal except where the engine's two best scores are a float near-tie), its noise against
``shakegen.use.noise`` bit for bit, and its requests against a log: served from 127.0.0.1 or opened
from file://, it asks for nothing outside its folder.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from shakegen.errors import CheckpointError
from shakegen.exports import webpage as webexport
from shakegen.runs import archive, checkpoint, pretrained
from shakegen.use import engine, noise
from shakegen.use.logits import filter_logits

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")

from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser import POLL_SECONDS, requested_urls  # noqa: E402, F401
from tests.browser import chromium as headless_chromium  # noqa: E402

WAIT_SECONDS = 180  # a bound on waiting, never an assertion
SEPARATOR = "-- the second run --"
SIZE_ALLOWANCE = 100 * 1024  # the folder is at most the float16 weights plus this
NEAR_TIE = 1e-3  # a gap between two characters' scores (logits / T + Gumbel) this small is a float near-tie


# --- the harness: a static server with a request log, and the browser ---------------------------------


class StaticServer:
    """``folder`` served on 127.0.0.1 by the standard library; ``paths`` logs every request.

    Scripts go out as ``application/javascript; charset=utf-8``, as many static hosts send them:
    the page must not depend on a host naming weights.js's encoding (its byte-order mark does).
    """

    def __init__(self, folder: Path):
        self.root, self.paths = Path(folder), []
        log = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            extensions_map = {
                **http.server.SimpleHTTPRequestHandler.extensions_map,
                ".js": "application/javascript; charset=utf-8",
            }

            def log_message(self, *args):
                log.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        # Looks for stop's shutdown request every 50 ms (socketserver's default, half a second, is waited out).
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def chromium(performance_log: bool = True):
    """Headless chromium of a phone's width that can reach 127.0.0.1 only."""
    return headless_chromium("420,860", WAIT_SECONDS, performance_log=performance_log)


def open_page(driver, url: str) -> dict:
    """Load the page at ``url`` and wait until its model is decoded; returns shakegen's timings and kernel."""
    driver.get(url)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.shakegen.ready.then(s => done({timings: s.timings, kernel: s.kernel}), e => done({error: e.message}));"
    )
    assert "error" not in result, result
    return result


def browser_generate(driver, **request) -> dict:
    """window.shakegen.generate(request) in the page: {text, ms, first_ms} or {error}."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1], t0 = performance.now(); let first = null;"
        "const request = Object.assign(arguments[0], {onText: () => { if (first === null) first = performance.now(); }});"
        "window.shakegen.generate(request).then("
        "  text => done({text, ms: performance.now() - t0, first_ms: first, seed: window.shakegen.lastRandomSeed}),"
        "  e => done({error: e.message}));",
        request,
    )


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


# --- the engine's side ---------------------------------------------------------------------------------


def float16_engine(run_dir: Path) -> tuple[engine.Engine, object]:
    """The run's engine on its weights rounded to float16, as the page stores them."""
    info = checkpoint.read_run(run_dir)
    weights = checkpoint.read_weights(checkpoint.checkpoint_path(run_dir, "best"))
    halfs = {name: value.astype(np.float16) for name, value in weights.items()}
    return engine.Engine(halfs, info.config.cell, info.config.num_layers), info


def engine_text(loaded, vocab, seed: str, length: int, **options) -> str:
    ids = np.concatenate(list(loaded.sample(vocab.encode(seed), length, **options)), axis=1)[0]
    return seed + vocab.decode(ids)


def score_gap(loaded, vocab, text: str, seed: str, position: int, options: dict, a: str, b: str) -> float:
    """The engine's score gap between characters a and b at ``position`` after ``text[:len(seed) + position]``."""
    context = loaded.prime(vocab.encode(text[: len(seed) + position]))
    logits = context.logits.astype(np.float32)
    temperature = options.get("temperature", 0.8)
    keys = noise.sample_keys(options.get("random_seed", 0), 1)
    gumbel = noise.gumbel_numpy(keys, [position], loaded.vocab_size)[:, 0]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    if temperature < engine.GREEDY_BELOW:
        scores = shifted[0]
    else:
        scaled = filter_logits(shifted / np.float32(temperature), options.get("top_k"), options.get("top_p"))
        scores = (scaled + gumbel)[0]
    return abs(float(scores[vocab.char_to_id[a]]) - float(scores[vocab.char_to_id[b]]))


def compare_texts(loaded, vocab, got: str, expected: str, seed: str, options: dict) -> int:
    """0 when equal; 1 when they first differ at a float near-tie of the engine's scores (else fail)."""
    if got == expected:
        return 0
    assert len(got) == len(expected)
    first = next(i for i, (x, y) in enumerate(zip(got, expected, strict=True)) if x != y)
    gap = score_gap(loaded, vocab, expected, seed, first - len(seed), options, got[first], expected[first])
    assert gap < NEAR_TIE, (first, gap, options)
    return 1


# --- exports of small runs of every cell ----------------------------------------------------------------

CELL_LAYERS = [("gru", 2), ("classic", 1), ("gru1", 2), ("gru2", 3), ("gru3", 2)]


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory, small_text):
    """{cell: (run folder, export folder)}: random weights (see test_engine) exported as pages."""
    pytest.importorskip("tensorflow")
    from tests.test_engine import write_random_run

    runs = {}
    for index, (cell, layers) in enumerate(CELL_LAYERS):
        folder = tmp_path_factory.mktemp(cell)
        run_dir = write_random_run(folder / "run", small_text, cell, layers, seed=10 + index)
        runs[cell] = (run_dir, webexport.export_web(run_dir, folder / "site").out_dir)
    return runs


@pytest.fixture(scope="module")
def served(random_runs):
    """A static server over the parent of every export: /<cell>/site/index.html."""
    root = next(iter(random_runs.values()))[1].parent.parent
    server = StaticServer(root)
    yield server
    server.stop()


def page_url(served, site: Path) -> str:
    return f"{served.url}/{site.relative_to(served.root).as_posix()}/index.html"


SAMPLED = [
    dict(temperature=0.8, random_seed=0),
    dict(temperature=1.3, random_seed=2**32 - 1),
    dict(temperature=0.7, top_k=5, random_seed=12345),
    dict(temperature=1.0, top_p=0.9, random_seed=2**31),
    dict(temperature=0.9, top_k=12, top_p=0.8, random_seed=77),
]


def as_request(options: dict) -> dict:
    return {
        "temperature": options.get("temperature", 0.8),
        "topK": options.get("top_k"),
        "topP": options.get("top_p"),
        "randomSeed": options.get("random_seed", 0),
    }


@pytest.mark.parametrize("cell", [cell for cell, _ in CELL_LAYERS])
def test_every_cell_gives_the_engines_text(browser, random_runs, served, cell):
    """Greedy text equal to the engine's on the same float16 weights; sampled texts (temperatures,
    top-k, top-p, seeds up to 2**32 - 1) equal except at float near-ties, which are counted."""
    run_dir, site = random_runs[cell]
    loaded, info = float16_engine(run_dir)
    opened = open_page(browser, page_url(served, site))
    assert opened["kernel"] == "WebAssembly SIMD"  # chromium has it: the fast path is the one tested here
    seed, vocab = "First Citizen:", info.vocab
    got = browser_generate(browser, seed=seed, length=200, temperature=0)
    assert got["text"] == engine_text(loaded, vocab, seed, 200, temperature=0)
    near_ties = 0
    for options in SAMPLED:
        got = browser_generate(browser, seed=seed, length=150, **as_request(options))
        assert got["seed"] == options["random_seed"]
        near_ties += compare_texts(
            loaded, vocab, got["text"], engine_text(loaded, vocab, seed, 150, **options), seed, options
        )
    assert near_ties <= 1, near_ties  # a near-tie is rare: more would mean a real difference


def test_the_plain_javascript_path_gives_the_same_text(browser, random_runs, served):
    """Without WebAssembly SIMD (older browsers) the JavaScript loops give the engine's text too."""
    run_dir, site = random_runs["gru"]
    loaded, info = float16_engine(run_dir)
    driver = browser  # every page it opens until the finally below runs this script first
    added = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "window.shakegenNoWasm = true;"})
    try:
        assert open_page(driver, page_url(served, site))["kernel"] == "JavaScript"
        got = browser_generate(driver, seed="ROMEO:", length=150, temperature=0)
        assert got["text"] == engine_text(loaded, info.vocab, "ROMEO:", 150, temperature=0)
        options = dict(temperature=0.9, top_p=0.95, random_seed=5)
        got = browser_generate(driver, seed="ROMEO:", length=150, **as_request(options))
        expected = engine_text(loaded, info.vocab, "ROMEO:", 150, **options)
        assert compare_texts(loaded, info.vocab, got["text"], expected, "ROMEO:", options) == 0
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})
    assert open_page(driver, page_url(served, site))["kernel"] == "WebAssembly SIMD"  # as the other tests need


def test_the_noise_is_murmur3_bit_for_bit(browser, random_runs, served):
    """The page's hashes and uniforms equal shakegen.use.noise's exactly for keys and positions up to
    2**32 - 1; its Gumbel noise (float64 logarithms rounded to float32) in all but rare rounding cases."""
    open_page(browser, page_url(served, random_runs["gru"][1]))
    rng = np.random.default_rng(1)
    keys = np.concatenate([[0, 1, 2**31 - 1, 2**31, 2**32 - 1], rng.integers(0, 2**32, 15)]).astype(np.uint32)
    positions = np.concatenate([[0, 1, 63, 64, 2**32 - 1], rng.integers(0, 2**32, 15)]).astype(np.uint32)
    vocab = 70
    got = browser.execute_script(
        "const [keys, positions, V] = arguments, i = window.shakegen.internals, h = [], u = [], g = [];"
        "for (const k of keys) for (const p of positions) for (let c = 0; c < V; c++) {"
        "  const x = i.hash(k, p, c); h.push(x); u.push(i.uniform(x)); g.push(i.gumbel(x)); }"
        "return [h, u, g];",
        keys.tolist(),
        positions.tolist(),
        vocab,
    )
    hashes, uniforms, gumbel = (np.array(values).reshape(len(keys), len(positions), vocab) for values in got)
    assert np.array_equal(hashes, noise.hashes_numpy(keys, positions, vocab))
    assert np.array_equal(uniforms.astype(np.float32), noise.uniforms_numpy(keys, positions, vocab))
    expected = noise.gumbel_numpy(keys, positions, vocab)
    differ = gumbel.astype(np.float32) != expected
    assert differ.mean() < 1e-3
    assert np.all(np.abs(gumbel[differ] - expected[differ]) <= np.spacing(np.abs(expected[differ])))


def test_every_float16_value_survives_weights_js_in_the_browser(browser, random_runs, served, tmp_path):
    """All 65,536 float16 bit patterns (NUL, quotes, backslashes, line ends and lone surrogates
    among them) written by the exporter's weights_script decode in the browser to their values."""
    site = random_runs["gru"][1]
    open_page(browser, page_url(served, site))
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    manifest = {"arrays": [{"name": "every", "shape": [65536], "offset": 0}], "values": 65536}
    (site / "every.js").write_bytes(webexport.weights_script(manifest, every))
    try:
        decoded = browser.execute_async_script(
            "const done = arguments[arguments.length - 1], script = document.createElement('script');"
            "script.src = 'every.js'; script.onerror = () => done('not loaded');"
            "script.onload = () => { const m = window.shakegenModel;"
            "  const a = window.shakegen.internals.decodeArrays(m.manifest, m.weights).every.data;"
            "  done(Array.from(a, x => Number.isFinite(x) ? x : String(x))); };"
            "document.head.append(script);"
        )
    finally:
        (site / "every.js").unlink()
    values = np.array([float(value) for value in decoded])  # "NaN", "Infinity", "-Infinity" too
    assert np.array_equal(values, every.astype(np.float64), equal_nan=True)
    assert np.isnan(values).sum() == 2046 and np.isinf(values).sum() == 2


def test_nothing_is_requested_outside_the_folder(browser, random_runs, served):
    site = random_runs["gru3"][1]
    requested_urls(browser)
    del served.paths[:]
    open_page(browser, page_url(served, site))
    browser_generate(browser, seed="ROMEO:", length=50, temperature=0.8, randomSeed=3)
    urls = requested_urls(browser)
    prefix = page_url(served, site).rsplit("/", 1)[0] + "/"
    assert urls and all(url.startswith((prefix, "data:")) for url in urls), urls
    files = {path.lstrip("/").split("/", 2)[-1] for path in served.paths}
    assert files <= set(webexport.FILES) and {"index.html", "shakegen.js", "weights.js"} <= files, served.paths
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith(prefix) for name in resources), resources


def test_a_file_url_works_without_any_server(browser, random_runs):
    run_dir, site = random_runs["gru2"]
    loaded, info = float16_engine(run_dir)
    requested_urls(browser)
    open_page(browser, (site / "index.html").as_uri())
    got = browser_generate(browser, seed="MENENIUS:", length=120, temperature=0)
    assert got["text"] == engine_text(loaded, info.vocab, "MENENIUS:", 120, temperature=0)
    urls = requested_urls(browser)
    assert urls and all(url.startswith((site.as_uri() + "/", "data:")) for url in urls), urls


def test_the_page_streams_stops_and_reports(browser, random_runs, served):
    """Through the page's own fields and buttons: the engine's text appears; Stop ends a long
    sample early; a bad field is reported in one line; the card names the run."""
    from selenium.webdriver.common.by import By

    run_dir, site = random_runs["classic"]
    loaded, info = float16_engine(run_dir)
    open_page(browser, page_url(served, site))
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: d.find_element(By.ID, "generate").is_enabled())
    assert "run (best)" in browser.find_element(By.ID, "card").text

    def fill(field, value):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)

    def state():
        return browser.find_element(By.ID, "status").get_attribute("data-state")

    for field, value in [("seed", "ROMEO:"), ("length", "300"), ("temperature", "0.9"), ("top-k", "8")]:
        fill(field, value)
    fill("top-p", "0.95")
    fill("random-seed", "4000000000")
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: state() in ("done", "error"))
    assert state() == "done", browser.find_element(By.ID, "status").text
    shown = browser.find_element(By.ID, "output").get_property("textContent")
    options = dict(temperature=0.9, top_k=8, top_p=0.95, random_seed=4_000_000_000)
    assert (
        compare_texts(
            loaded, info.vocab, shown, engine_text(loaded, info.vocab, "ROMEO:", 300, **options), "ROMEO:", options
        )
        == 0
    )
    assert "random seed 4000000000" in browser.find_element(By.ID, "status").text

    fill("length", "1000000")
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(
        lambda d: len(d.find_element(By.ID, "output").get_property("textContent")) > 500
    )
    browser.find_element(By.ID, "stop").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: state() in ("stopped", "done", "error"))
    assert state() == "stopped"
    assert len(browser.find_element(By.ID, "output").get_property("textContent")) < 1_000_000

    fill("seed", "ROMEO: ∑")
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS).until(lambda d: state() in ("done", "error"))
    assert 'Seed text has characters the model does not know: "∑"' in browser.find_element(By.ID, "status").text
    for request, message in [
        (dict(length=0), "length must be a positive integer"),
        (dict(temperature=-1), "temperature must be"),
        (dict(topK=len(info.vocab) + 1), "top-k must be between 1 and the vocabulary size"),
        (dict(topP=1.5), "top-p must be a number in (0, 1]"),
        (dict(randomSeed=2**32), "random seed must be an integer from 0 to 4294967295"),
    ]:
        assert message in browser_generate(browser, seed="A", **request)["error"]


# --- the folder ----------------------------------------------------------------------------------------


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_the_pretrained_export_is_its_float16_weights_plus_under_100_kb(tmp_path):
    result = webexport.export_web(pretrained.BUNDLE_DIR, tmp_path / "site")
    assert sorted(path.name for path in result.out_dir.iterdir()) == sorted(webexport.FILES)
    weights = checkpoint.read_weights(pretrained.BUNDLE_DIR / checkpoint.BEST_FILE)
    float16_bytes = 2 * sum(value.size for value in weights.values())
    assert result.weights_bytes == float16_bytes
    assert folder_bytes(result.out_dir) == result.folder_bytes <= float16_bytes + SIZE_ALLOWANCE
    manifest, arrays = webexport.read_weights(result.out_dir)
    assert manifest["vocab"] == list(checkpoint.read_run(pretrained.BUNDLE_DIR).vocab.chars)
    for name, value in weights.items():  # the float16 bundle's values, bit for bit, shapes from the manifest
        short = {"embedding/embeddings": "embedding"}.get(name, name.replace("char_model/", ""))
        assert arrays[short].dtype == np.float16 and np.array_equal(
            arrays[short].view(np.uint16), value.view(np.uint16)
        )
    card = json.loads((result.out_dir / webexport.CARD_FILE).read_text(encoding="utf-8"))
    assert card["run"] == "pretrained" and card["parameters"] == 4179649
    assert card["pretrained"]["command"] == pretrained.card()["command"]
    assert manifest["card"] == card


def test_the_card_names_no_path_of_this_machine(tmp_path, random_runs):
    run_dir, site = random_runs["gru1"]
    text = "".join(
        path.read_bytes().decode("utf-16" if path.name == "weights.js" else "utf-8") for path in site.iterdir()
    )
    for path in (run_dir, run_dir.parent, Path.home(), Path.cwd()):
        assert str(path) not in text and str(path).replace("/", "\\/") not in text
    card = json.loads((site / webexport.CARD_FILE).read_text(encoding="utf-8"))
    assert card["run"] == "run" and card["config"]["cell"] == "gru1" and card["storage"] == "float16"


def test_the_destination_is_checked_and_replaced_only_when_asked(tmp_path, random_runs):
    run_dir = random_runs["gru"][0]
    site = webexport.export_web(run_dir, tmp_path / "site").out_dir
    with pytest.raises(webexport.WebExportError, match="already holds a shakegen web page. Pass --overwrite"):
        webexport.export_web(run_dir, site)
    (site / "weights.js").write_bytes(b"damaged")
    webexport.export_web(run_dir, site, overwrite=True)
    assert webexport.read_weights(site)[0]["cell"] == "gru"
    (site / "my_notes.txt").write_text("keep me")  # a file of the user's beside the page: never deleted
    with pytest.raises(webexport.WebExportError, match="also my_notes.txt, which the export did not write"):
        webexport.export_web(run_dir, site, overwrite=True)
    assert (site / "my_notes.txt").read_text() == "keep me"
    assert sorted(path.name for path in site.iterdir()) == sorted([*webexport.FILES, "my_notes.txt"])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(webexport.WebExportError, match="holds no shakegen web page; it is never replaced"):
        webexport.export_web(run_dir, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(webexport.WebExportError, match="is a file; --out needs a folder"):
        webexport.export_web(run_dir, tmp_path / "file")
    with pytest.raises(CheckpointError):
        webexport.export_web(tmp_path / "no-such-run", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_weight_beyond_float16_is_refused_in_one_line(tmp_path, random_runs):
    run_dir = tmp_path / "run"
    import shutil

    shutil.copytree(random_runs["gru3"][0], run_dir)
    path = checkpoint.checkpoint_path(run_dir, "best")
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    name = next(key for key in arrays if key.endswith("rnn_1/kernel"))
    arrays[name] = arrays[name].copy()
    arrays[name][0, 0] = 1e5  # float16 holds at most 65,504
    archive.write_snapshot(path, arrays)
    with pytest.raises(webexport.WebExportError, match=r"weight rnn_1/kernel has values beyond float16's range"):
        webexport.export_web(run_dir, tmp_path / "site")
    assert not (tmp_path / "site").exists()


# --- the command line ---------------------------------------------------------------------------------


def test_the_command_writes_the_page_without_importing_tensorflow(tmp_path, random_runs):
    """`shakegen export --format web` in a fresh process: the folder, a one-line note naming
    index.html, no tensorflow or keras in sys.modules; again without --overwrite (in the same
    process, after the first): one line, exit 1."""
    import subprocess
    import sys

    run_dir = random_runs["gru"][0]
    code = (
        "import sys; from shakegen.cli import main\n"
        "for attempt in range(2):\n"
        "    try: main(sys.argv[1:])\n"
        "    except SystemExit as exit: print(exit.code)\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')), flush=True)\n"
        f"    print({SEPARATOR!r}, file=sys.stderr, flush=True)"
    )
    args = ["export", "--format", "web", "--checkpoint", str(run_dir), "--out", str(tmp_path / "site")]
    env = {**os.environ, "COLUMNS": "2000"}  # rich would wrap the note, paths included, at 80 columns
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    first, again, rest = result.stderr.split(SEPARATOR + "\n")
    assert result.stdout.split("\n")[:2] == ["0", "[]"], result.stdout + result.stderr
    note = first.strip()
    assert "as a web page" in note and f"open {tmp_path / 'site' / 'index.html'} in a browser" in note
    assert webexport.is_web_export(tmp_path / "site")
    assert result.stdout.split("\n")[2:] == ["1", "[]", ""] and rest == ""
    assert again.strip().splitlines() == [
        f"Error: {tmp_path / 'site'} already holds a shakegen web page. Pass --overwrite to replace it, or choose another --out."
    ]


def test_the_format_is_checked_and_savedmodel_stays_the_default(tmp_path):
    from click.testing import CliRunner

    from shakegen.cli import main

    result = CliRunner().invoke(main, ["export", "--format", "onnx", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "'onnx' is not one of 'savedmodel', 'web'" in result.output
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "--format [savedmodel|web]" in help_text and "[default: savedmodel]" in help_text
