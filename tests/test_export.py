"""The SavedModel export, served in a process where shakegen cannot be imported.

The exported graphs are compared with the command line's own output for the same inputs:
``generate`` with ``shakegen generate --json`` (the NumPy engine: character for character, but
for a float near-tie, which the reference detects), ``log_prob`` with ``shakegen eval --text``;
and both with independent computations: every generated character is the one a float64 NumPy
forward pass and the random seed's counter noise (the plain-Python hash) give
(``tests.reference``), and ``log_prob`` is a NumPy forward pass's.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.data.corpus import clean_text
from shakegen.exports import graph_text
from shakegen.exports import savedmodel as export
from shakegen.runs import checkpoint
from shakegen.use import sampling
from tests.reference import log_softmax, model_logits, model_weights, run_weights, sampling_gaps_for
from tests.runs import train_tiny_run

# Makes `import shakegen` fail in the serving process, however shakegen is installed.
BLOCK_SHAKEGEN = """
import importlib.abc
import sys


class BlockShakegen(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "shakegen" or name.startswith("shakegen."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


sys.meta_path.insert(0, BlockShakegen())
"""

# Reads {"exports": {name: folder}, "cases": [...], "score_text": str, "bad": {...}} on stdin and
# prints what each SavedModel gives, as JSON. Plain TensorFlow only.
SERVE = (
    BLOCK_SHAKEGEN
    + """
import json

try:
    import shakegen  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("shakegen is importable here: this check would prove nothing")

import tensorflow as tf

request = json.load(sys.stdin)


def arguments(case):
    return dict(
        seed=tf.constant(case["seed"]),
        length=tf.constant(case["length"], tf.int32),
        temperature=tf.constant(case["temperature"], tf.float32),
        top_k=tf.constant(case["top_k"], tf.int32),
        top_p=tf.constant(case["top_p"], tf.float32),
        random_seed=tf.constant(case["random_seed"], tf.int64),
    )


results = {}
for name, folder in request["exports"].items():
    loaded = tf.saved_model.load(folder)
    generate = loaded.signatures["generate"]
    texts = [generate(**arguments(case))["text"].numpy().decode("utf-8") for case in request["cases"][name]]
    first = request["cases"][name][0]
    by_function = loaded.generate(**arguments(first))["text"].numpy().decode("utf-8")
    scores = {key: value.numpy().item() for key, value in loaded.signatures["log_prob"](text=tf.constant(request["score_text"])).items()}
    errors = {}
    for label, case in request["bad"].items():
        try:
            if "text" in case:
                loaded.signatures["log_prob"](text=tf.constant(case["text"]))
            else:
                generate(**arguments({**first, **case}))
            errors[label] = None
        except tf.errors.InvalidArgumentError as error:
            errors[label] = error.message
    metadata = {key: value.numpy().decode("utf-8") for key, value in loaded.signatures["metadata"]().items()}
    results[name] = dict(
        texts=texts, by_function=by_function, scores=scores, errors=errors, metadata=metadata,
        signatures=sorted(loaded.signatures),
    )
print(json.dumps(results))
"""
)


def case(seed, length, temperature, top_k=0, top_p=1.0, random_seed=0):
    return dict(seed=seed, length=length, temperature=temperature, top_k=top_k, top_p=top_p, random_seed=random_seed)


def float32_cases(small_text):
    return [
        case("First Citizen:\nBefore", 90, 0.0),  # greedy
        case("ROMEO:", 150, 0.8, top_k=5, random_seed=3),  # three chunks, the last cut short
        case("First Citizen:\r\nWe", 70, 1.0, top_p=0.9, random_seed=7),  # a seed the CLI cleans
        case("All:\nSpeak", 65, 0.7, top_k=10, top_p=0.8, random_seed=2**31 + 5),  # seed beyond int32
        case("Citizen", 30, 1.3, random_seed=2**32 - 1),  # the largest seed
        case(small_text[1000:1600], 40, 0.9, top_k=8, random_seed=1),  # primed in three windows
        case("MENENIUS:\nWhat", 2000, 0.0),  # greedy, long: the engine's text is the SavedModel's
    ]


BFLOAT16_CASES = [case("ROMEO:", 80, 0.0), case("First", 100, 0.75, top_p=0.95, random_seed=11)]

BAD = {
    "unknown": {"seed": "ROMEO€é€"},
    "empty seed": {"seed": "\x01"},  # only a control character: nothing left after cleaning
    "length": {"length": 0},
    "negative temperature": {"temperature": -1.0},
    "nan temperature": {"temperature": float("nan")},
    "top_k": {"top_k": 1000},
    "top_p zero": {"top_p": 0.0},
    "top_p above one": {"top_p": 1.5},
    "negative random seed": {"random_seed": -3},
    "random seed beyond 32 bits": {"random_seed": 2**32},
    "short text": {"text": "A"},
    "unknown in text": {"text": "First Citizen: €"},
}


def _cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_text):
    """A float32 run and a mixed_bfloat16 one of another shape (two layers of the classic cell)."""
    return {
        "float32": train_tiny_run(tmp_path_factory.mktemp("float32"), small_text),
        "bfloat16": train_tiny_run(
            tmp_path_factory.mktemp("bfloat16"), small_text, precision="mixed_bfloat16", cell="classic", num_layers=2
        ),
    }


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """Each run exported by the command line."""
    folders = {}
    for name, run in runs.items():
        folders[name] = tmp_path_factory.mktemp("exports") / name
        result = _cli("export", "--checkpoint", run, "--out", folders[name])
        assert result.exit_code == 0, result.output
        assert str(folders[name]) in result.stderr and "generate" in result.stderr
    return folders


@pytest.fixture(scope="module")
def score_text(small_text):
    return small_text[2000:5000]  # one stream for eval (fewer than 8,192 predictions), six windows of 512


@pytest.fixture(scope="module")
def served(exported, small_text, score_text, tmp_path_factory):
    """What each SavedModel gives, computed in a fresh process where `import shakegen` fails."""
    request = {
        "exports": {name: str(folder) for name, folder in exported.items()},
        "cases": {"float32": float32_cases(small_text), "bfloat16": BFLOAT16_CASES},
        "score_text": score_text,
        "bad": BAD,
    }
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", SERVE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("elsewhere"),
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _cli_continuation(run, options) -> str:
    """What `shakegen generate --json` prints for ``options``, minus the (cleaned) seed."""
    args = ["generate", "--checkpoint", run, "--seed", options["seed"], "--length", options["length"]]
    args += ["--temperature", options["temperature"], f"--random-seed={options['random_seed']}", "--json"]
    if options["top_k"]:
        args += ["--top-k", options["top_k"]]
    if options["top_p"] < 1:
        args += ["--top-p", options["top_p"]]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    [text] = json.loads(result.stdout)["texts"]
    seed = clean_text(options["seed"])
    assert text.startswith(seed)
    return text[len(seed) :]


def assert_equal_but_for_a_near_tie(run, options, text, other):
    """``text`` and ``other`` both follow the reference, and are equal, or first differ where the
    reference's two best scores are within float rounding (a near-tie either side may take)."""
    gaps, other_gaps = _gaps(run, options, text), _gaps(run, options, other)
    assert gaps.max() < 1e-4 and other_gaps.max() < 1e-4
    if text != other:
        first = next(i for i, (a, b) in enumerate(zip(text, other, strict=True)) if a != b)
        assert 0 < max(gaps[first], other_gaps[first]) < 1e-4, first


@pytest.mark.parametrize("index", range(7))
def test_generate_equals_the_cli(runs, served, small_text, index):
    options = float32_cases(small_text)[index]
    text = served["float32"]["texts"][index]
    assert len(text) == options["length"]
    assert_equal_but_for_a_near_tie(runs["float32"], options, text, _cli_continuation(runs["float32"], options))


def _gaps(run, options, text):
    """How far each generated character falls below the reference's choice (0: its own; see reference.sampling_gaps)."""
    info = checkpoint.read_run(run)
    weights = run_weights(run / checkpoint.BEST_FILE, info.config.cell)  # straight from the file
    seed_ids, ids = info.vocab.encode(clean_text(options["seed"])), info.vocab.encode(text)
    keys = ("temperature", "top_k", "top_p", "random_seed")
    return sampling_gaps_for(weights, seed_ids, ids, len(info.vocab), **{key: options[key] for key in keys})


@pytest.mark.parametrize("index", range(7))
def test_generated_text_follows_the_reference_probabilities_and_noise(runs, served, small_text, index):
    """Independent of the sampler: float64 NumPy probabilities, the options' definitions, and the
    counter noise of the random seed (MurmurHash3 in plain Python).
    Only a float near-tie may pick another character than the reference's best."""
    options = float32_cases(small_text)[index]
    gaps = _gaps(runs["float32"], options, served["float32"]["texts"][index])
    assert gaps.max() < 1e-4 and np.count_nonzero(gaps) <= 1


@pytest.mark.parametrize("index", range(len(BFLOAT16_CASES)))
def test_bfloat16_run_follows_the_reference_in_float32(runs, served, index):
    gaps = _gaps(runs["bfloat16"], BFLOAT16_CASES[index], served["bfloat16"]["texts"][index])
    assert gaps.max() < 1e-4 and np.count_nonzero(gaps) <= 1


def test_exported_files_name_no_path_of_this_machine(runs, served, exported):
    """The run, its corpus and (for a fine-tuned run) its parent are named by bare names."""
    run = runs["float32"]
    stored = json.loads(served["float32"]["metadata"]["config"])
    assert stored["run"] == run.name and stored["run_config"]["data"]["source"] == "corpus.txt"
    where = str(run.parent.resolve())
    for path in [*(exported["float32"] / "assets").iterdir(), exported["float32"] / export.SAVED_MODEL_FILE]:
        assert where.encode() not in path.read_bytes(), path.name
    assert where not in served["float32"]["metadata"]["config"]


@pytest.mark.parametrize("index", range(len(BFLOAT16_CASES)))
def test_bfloat16_run_generates_as_the_cli_in_float32(runs, served, index):
    options = BFLOAT16_CASES[index]
    text = served["bfloat16"]["texts"][index]
    assert_equal_but_for_a_near_tie(runs["bfloat16"], options, text, _cli_continuation(runs["bfloat16"], options))


def test_samples_depend_on_the_options(served, small_text):
    """The cases are not degenerate: every sampled text differs from the others and from greedy."""
    cases = float32_cases(small_text)
    texts = [text for text, options in zip(served["float32"]["texts"], cases, strict=True) if options["temperature"]]
    lengths = [options["length"] for options in cases]
    prefixes = {text[: min(lengths)] for text in [served["float32"]["texts"][0], *texts]}
    assert len(prefixes) == len(texts) + 1
    assert served["float32"]["by_function"] == served["float32"]["texts"][0]  # the module's function, as the signature


def test_log_prob_equals_eval_and_a_numpy_forward_pass(runs, served, score_text, tmp_path):
    scores = served["float32"]["scores"]
    path = tmp_path / "score.txt"
    path.write_text(score_text, encoding="utf-8")
    result = _cli("eval", "--checkpoint", runs["float32"], "--text", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert scores["characters"] == report["characters"] == len(score_text) - 1
    assert scores["loss"] == pytest.approx(report["loss"], rel=1e-5)
    assert scores["cross_entropy"] == pytest.approx(report["loss"] * report["characters"], rel=1e-5)
    assert scores["log_prob"] == -scores["cross_entropy"]

    model, info, _ = checkpoint.load_model(runs["float32"], "best")
    ids = info.vocab.encode(score_text)
    logits, _ = model_logits(model_weights(model), ids[None, :-1])
    expected = -log_softmax(logits[0])[np.arange(len(ids) - 1), ids[1:]].sum()
    assert scores["cross_entropy"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "label, message",
    [
        ("unknown", "Seed text has characters the model does not know"),
        ("empty seed", "seed text is empty"),
        ("length", "length must be a positive number"),
        ("negative temperature", "temperature must be a finite number"),
        ("nan temperature", "temperature must be a finite number"),
        ("top_k", "top_k must be between 1 and the vocabulary size"),
        ("top_p zero", "top_p must be a number in (0, 1]"),
        ("top_p above one", "top_p must be a number in (0, 1]"),
        ("negative random seed", "random_seed must be an integer from 0 to 4294967295"),
        ("random seed beyond 32 bits", "random_seed must be an integer from 0 to 4294967295"),
        ("short text", "at least 2 characters"),
        ("unknown in text", "Text has characters the model does not know"),
    ],
)
def test_bad_inputs_fail_with_a_clear_message(served, label, message):
    error = served["float32"]["errors"][label]
    assert error is not None, f"{label}: no error"
    assert message in error
    if label == "unknown":
        assert "€é" in error  # each unknown character once, in order


def test_vocabulary_and_config_are_stored(runs, served, exported):
    info = checkpoint.read_run(runs["float32"])
    metadata = served["float32"]["metadata"]
    assert metadata["vocabulary"] == "".join(info.vocab.chars)
    stored = json.loads(metadata["config"])
    assert stored["which"] == "best" and stored["format"] == export.FORMAT
    assert stored["run_config"]["config"] == info.config.to_json()
    assert stored["sampling"]["chunk"] == sampling.CHUNK and stored["sampling"]["prime_window"] == sampling.PRIME_WINDOW
    assert "murmur3" in stored["sampling"]["noise"]
    assets = exported["float32"] / "assets"
    assert json.loads((assets / export.VOCABULARY_ASSET).read_text(encoding="utf-8")) == list(info.vocab.chars)
    assert json.loads((assets / export.METADATA_ASSET).read_text(encoding="utf-8")) == stored
    assert served["float32"]["signatures"] == ["generate", "log_prob", "metadata"]


@pytest.mark.parametrize(
    "text",
    [
        "a\r\nb\rc\n\r\nd",
        "\ufeff\ufeffBOM at the start, \ufeff kept inside\x00\x07\x1b\x7f\x85\x9f\tend",
        "Déjà vu, naïve FAÇADE! ¿Qué? «Ça» — 'quoted' (brackets) [x] {y} ΣΑΣ ǅ",
    ],
)
@pytest.mark.parametrize("lowercase, strip_punctuation", [(False, False), (True, False), (False, True), (True, True)])
def test_graph_cleaning_equals_the_corpus_cleaning(text, lowercase, strip_punctuation):
    options = dict(lowercase=lowercase, strip_punctuation=strip_punctuation)
    cleaned = graph_text.clean_text_graph(tf.constant(text), **options).numpy().decode("utf-8")
    assert cleaned == clean_text(text, **options)


def test_cli_errors_are_one_line(runs, exported, tmp_path):
    missing = _cli("export", "--checkpoint", tmp_path / "nope", "--out", tmp_path / "out")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert not (tmp_path / "out").exists()

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):  # a folder that is not a SavedModel is never replaced
        refused = _cli("export", "--checkpoint", runs["float32"], "--out", occupied, *extra)
        assert refused.exit_code == 1 and "not empty" in refused.output
    assert (occupied / "notes.txt").read_text() == "mine"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in _cli("export", "--checkpoint", runs["float32"], "--out", a_file).output

    again = _cli("export", "--checkpoint", runs["float32"], "--out", exported["float32"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    for result in (missing, refused, again):
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert _cli("export", "--checkpoint", runs["float32"]).exit_code == 2  # --out is required


def test_overwrite_replaces_a_savedmodel_atomically(runs, exported, tmp_path, monkeypatch):
    out = tmp_path / "model"
    shutil.copytree(exported["float32"], out)  # a SavedModel of the best weights, as the command line wrote it
    assert json.loads((out / "assets" / export.METADATA_ASSET).read_text())["which"] == "best"

    real_save = tf.saved_model.save

    def failing_save(module, folder, **options):
        real_save(module, folder, **options)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(export.ExportError, match="No space left on device"):
        export.export_run(runs["float32"], out, "last", overwrite=True)
    assert json.loads((out / "assets" / export.METADATA_ASSET).read_text())["which"] == "best"  # untouched
    monkeypatch.setattr(tf.saved_model, "save", real_save)

    result = export.export_run(runs["float32"], out, "last", overwrite=True)
    assert result.out_dir == out and json.loads((out / "assets" / export.METADATA_ASSET).read_text())["which"] == "last"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
    assert sorted(path.name for path in out.iterdir()) == sorted(export.SAVED_MODEL_ENTRIES[:4])  # what it writes

    (out / "README.txt").write_text("mine")  # the user's note beside the model: --overwrite never deletes it
    with pytest.raises(export.ExportError, match="also README.txt, which the export did not write"):
        export.export_run(runs["float32"], out, "best", overwrite=True)
    assert (out / "README.txt").read_text() == "mine"


def test_errors_are_shakegen_errors():
    from shakegen.errors import ShakegenError

    assert issubclass(export.ExportError, ShakegenError) and issubclass(export.ExportError, ValueError)


def test_the_cli_the_api_the_server_and_the_savedmodel_give_one_text(runs, served, small_text, tmp_path):
    """The four faces, for every case (greedy, top-k, top-p, both, random seeds past 2**31 and the
    largest, a seed primed in windows, 2,000 greedy characters): one text, or texts that first
    differ only at a near-tie the float64 reference detects (the engine and TensorFlow round
    their last bits differently). The CLI, the API and the server share the NumPy engine."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    import shakegen
    from tests.test_serve import Server

    run = runs["float32"]
    model = shakegen.load(run)
    server = Server(run, tmp_path, "--max-seed-characters", "1000")
    try:
        for index, options in enumerate(float32_cases(small_text)):
            seed = clean_text(options["seed"])
            chosen = dict(
                length=options["length"],
                temperature=options["temperature"],
                top_k=options["top_k"] or None,
                top_p=options["top_p"] if options["top_p"] < 1 else None,
                random_seed=options["random_seed"],
            )
            api = model.generate(options["seed"], **chosen)[len(seed) :]
            answer = server.post("/v1/generate", {"seed": options["seed"], **chosen})
            assert answer.status_code == 200, answer.text
            assert answer.json()["engine"] == "numpy"
            served_text = answer.json()["text"][len(seed) :]
            cli = _cli_continuation(run, options)
            assert api == served_text == cli, index  # one engine, one path
            assert_equal_but_for_a_near_tie(run, options, served["float32"]["texts"][index], api)
    finally:
        server.stop()
