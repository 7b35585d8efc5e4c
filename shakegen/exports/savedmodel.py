"""A run as a TensorFlow SavedModel that samples and scores text with plain TensorFlow, without shakegen.

The exported module is built on the very graph functions TensorFlow's sampler compiles
(``tf_sampler.feed_seed_window``, ``tf_sampler.sample_chunk``), with the sampling options as
run-time inputs, and draws the counter-based Gumbel noise of ``shakegen.use.noise``, the noise the
NumPy engine behind ``shakegen generate`` draws: the same inputs give the same text, except
where two characters' scores are a float near-tie. Its signatures:

``generate``
    seed (string), length (int32), temperature (float32; 0 greedy), top_k (int32; 0 none),
    top_p (float32; 1 none), random_seed (int64, 0 to 2**32 - 1) -> text (string): the
    ``length`` characters sampled after the seed, the seed itself not included.
``log_prob``
    text (string) -> log_prob (float64, nats), cross_entropy (float64, nats, = -log_prob),
    characters (int64, characters predicted: all but the first), loss (float64, nats per
    character): the streaming protocol of ``shakegen eval --text`` with one stream.
``metadata``
    () -> vocabulary (string, the characters in id order), config (string, JSON).

Both text inputs are cleaned as the run's corpus was (line ends, control characters, a
leading byte-order mark, and the run's lower-casing and punctuation stripping), except for
Unicode NFC normalisation, which plain TensorFlow cannot do. A character the model does not
know, invalid UTF-8 or an option out of range fails with an InvalidArgumentError whose
message says what is wrong. ``assets/`` holds ``vocabulary.json`` and ``shakegen.json``
(the run's config.json and how it was exported). Neither holds a path of the machine that
exported it: the run, its corpus and a fine-tuned run's parent are named by their bare
file or folder names (see ``pretrained.portable_run_config``).

Everything runs in float32 with shakegen's own GRU loop (``rnn_kernel="fused"``), whatever
the run was trained in, so the SavedModel runs on any device. Greedy is decided on the float32
temperature (below ``sampling.GREEDY_BELOW``), where the command line decides on the number it
was given; the two differ only for temperatures within float32 rounding of 1.2e-38.

Here: writing the export (``export_run``) and the ``tf.Module`` it saves; the graphs themselves
are in ``graphs`` (priming, sampling, scoring) and ``graph_text`` (cleaning, characters to ids).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shakegen import fileio
from shakegen.errors import ShakegenError
from shakegen.exports import graphs
from shakegen.exports.graph_text import GraphVocabulary
from shakegen.model.backend import tf
from shakegen.runs import checkpoint, pretrained
from shakegen.use import sampling
from shakegen.version import __version__

FORMAT = "shakegen-savedmodel/1"
SIGNATURES = ("generate", "log_prob", "metadata")
VOCABULARY_ASSET = "vocabulary.json"
METADATA_ASSET = "shakegen.json"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_ENTRIES = (
    SAVED_MODEL_FILE,
    "fingerprint.pb",
    "variables",
    "assets",
    "assets.extra",
)  # what tf.saved_model.save writes


class ExportError(ShakegenError, ValueError):
    """A run cannot be exported where it was asked to go."""


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    run_dir: Path
    which: str
    vocab_size: int
    signatures: tuple[str, ...] = SIGNATURES


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, which: str = "best", *, overwrite=False):
    """Write ``run_dir``'s ``which`` weights as a SavedModel in ``out_dir``.

    The SavedModel is written into a temporary folder beside ``out_dir`` and renamed into
    place at the end, so a failure never leaves a half-written export where ``out_dir`` is.

    Args:
        overwrite: replace a SavedModel already in ``out_dir`` (a folder holding anything
            else is never replaced).
    Returns:
        ExportResult.
    Raises:
        CheckpointError: no such run, or a missing or damaged checkpoint.
        ExportError: ``out_dir`` is a file, or a folder that is not empty (without
            ``overwrite``, or not a SavedModel), or it cannot be written.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    fileio.check_export_folder(
        out_dir,
        overwrite,
        holds=lambda folder: (folder / SAVED_MODEL_FILE).is_file(),
        own=SAVED_MODEL_ENTRIES,
        thing="SavedModel",
        error=ExportError,
    )
    # float32, with shakegen's GRU loop: cuDNN's op would tie the graph to a GPU.
    model, info, _ = checkpoint.load_model(run_dir, which, precision="float32", rnn_kernel="fused")
    module = build_module(model, info, _metadata(info, which))
    try:
        staging = fileio.staging_folder(out_dir)
    except OSError as error:
        raise ExportError(_cannot_write(out_dir, error)) from None
    try:
        with tempfile.TemporaryDirectory() as scratch:
            module.attach_assets(Path(scratch))
            # The fused GRU's custom gradients are saved too (the default): without them, loading warns.
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        fileio.replace_folder(staging, out_dir)
    except OSError as error:
        raise ExportError(_cannot_write(out_dir, error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir, run_dir, which, len(info.vocab))


def _cannot_write(out_dir: Path, error: OSError) -> str:
    return (
        f"Could not write the SavedModel to {out_dir}: {error.strerror or error}. "
        "Free some space or fix the folder's permissions, or choose another --out."
    )


def _metadata(info, which: str) -> dict:
    """What ``assets/shakegen.json`` and the ``metadata`` signature say about the export."""
    return {
        "format": FORMAT,
        "shakegen_version": __version__,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": Path(info.run_dir).resolve().name,  # by name: a local path means nothing elsewhere
        "which": which,
        "sampling": {
            "chunk": sampling.CHUNK,
            "prime_window": sampling.PRIME_WINDOW,
            "noise": "gumbel(murmur3_x86_32(position, character; seed = random_seed))",
        },
        "cleaning": {
            "lowercase": bool(info.data.get("options", {}).get("lowercase", False)),
            "strip_punctuation": bool(info.data.get("options", {}).get("strip_punctuation", False)),
            "nfc": False,
        },
        "run_config": pretrained.portable_run_config(fileio.read_json(Path(info.run_dir) / checkpoint.CONFIG_FILE)),
    }


class ExportModule(tf.Module):
    """The exported object: the model's weights, and the three signatures' functions over ``graphs``."""

    def __init__(self, model, info, metadata: dict):
        super().__init__(name="shakegen")
        self._model_ref = [model]  # a list: tf.Module would track the Keras model itself
        self.model_weights = [weight.value for weight in model.weights]  # the tf.Variables the graphs read
        self._vocabulary_json = json.dumps(list(info.vocab.chars), ensure_ascii=False)
        self._metadata_json = json.dumps(metadata, ensure_ascii=False, indent=2)
        self._vocabulary = GraphVocabulary(info.vocab.chars, metadata["cleaning"])
        self.generate = tf.function(
            self._generate,
            input_signature=[
                tf.TensorSpec([], tf.string, name="seed"),
                tf.TensorSpec([], tf.int32, name="length"),
                tf.TensorSpec([], tf.float32, name="temperature"),
                tf.TensorSpec([], tf.int32, name="top_k"),
                tf.TensorSpec([], tf.float32, name="top_p"),
                tf.TensorSpec([], tf.int64, name="random_seed"),
            ],
        )
        self.log_prob = tf.function(self._log_prob, input_signature=[tf.TensorSpec([], tf.string, name="text")])
        self.metadata = tf.function(self._metadata_values, input_signature=[])

    def attach_assets(self, folder: Path) -> None:
        """Write the vocabulary and metadata files into ``folder``, to be copied into ``assets/``."""
        (folder / VOCABULARY_ASSET).write_text(self._vocabulary_json + "\n", encoding="utf-8")
        (folder / METADATA_ASSET).write_text(self._metadata_json + "\n", encoding="utf-8")
        self.vocabulary_file = tf.saved_model.Asset(str(folder / VOCABULARY_ASSET))
        self.metadata_file = tf.saved_model.Asset(str(folder / METADATA_ASSET))

    def signatures(self) -> dict:
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}

    @property
    def _model(self):
        return self._model_ref[0]

    def _generate(self, seed, length, temperature, top_k, top_p, random_seed):
        vocab_size = self._vocabulary.size
        ids = self._vocabulary.encode(seed, "Seed text")
        checks = graphs.option_checks(length, temperature, top_k, top_p, random_seed, vocab_size)
        checks.append(
            graphs.check(tf.size(ids) > 0, "The seed text is empty after cleaning; give a seed the model knows.")
        )
        with tf.control_dependencies(checks):
            logits, states = graphs.prime(self._model, ids, vocab_size)
            new_ids = graphs.draw(self._model, logits, states, length, temperature, top_k, top_p, random_seed)
        return {"text": self._vocabulary.decode(new_ids)}

    def _log_prob(self, text):
        return graphs.log_prob(self._model, self._vocabulary.encode(text, "Text"))

    def _metadata_values(self):
        vocabulary = "".join(json.loads(self._vocabulary_json))
        return {"vocabulary": tf.constant(vocabulary), "config": tf.constant(self._metadata_json)}


def build_module(model, info, metadata: dict) -> ExportModule:
    """The tf.Module ``export_run`` saves (useful on its own to call the graphs in-process)."""
    return ExportModule(model, info, metadata)
