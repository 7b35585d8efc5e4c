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
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen import fileio
from shakegen.errors import ShakegenError
from shakegen.model.backend import tf
from shakegen.runs import checkpoint, pretrained
from shakegen.use import noise, sampling, tf_sampler
from shakegen.version import __version__

FORMAT = "shakegen-savedmodel/1"
SIGNATURES = ("generate", "log_prob", "metadata")
VOCABULARY_ASSET = "vocabulary.json"
METADATA_ASSET = "shakegen.json"
SAVED_MODEL_FILE = "saved_model.pb"
SCORE_WINDOW = 512  # characters per step of log_prob's loop (evaluate's streaming window); not the figure


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


def clean_text_graph(text, *, lowercase: bool = False, strip_punctuation: bool = False):
    """``corpus.clean_text`` in TensorFlow ops, without its final NFC normalisation.

    Line ends become ``\\n``, control characters other than ``\\n`` and ``\\t`` go, then the
    run's lower-casing and punctuation stripping, then leading byte-order marks.
    """
    text = tf.strings.regex_replace(text, "\r\n?", "\n")
    text = tf.strings.regex_replace(text, r"[\x00-\x08\x0b-\x1f\x{7f}-\x{9f}]", "")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if strip_punctuation:
        text = tf.strings.regex_replace(text, r"\pP", "")
    return tf.strings.regex_replace(text, r"^\x{feff}+", "")


class ExportModule(tf.Module):
    """The exported object: the model's weights and the three signatures' functions."""

    def __init__(self, model, info, metadata: dict):
        super().__init__(name="shakegen")
        self._model_ref = [model]  # a list: tf.Module would track the Keras model itself
        self.model_weights = [weight.value for weight in model.weights]  # the tf.Variables the graphs read
        self._vocabulary_json = json.dumps(list(info.vocab.chars), ensure_ascii=False)
        self._metadata_json = json.dumps(metadata, ensure_ascii=False, indent=2)
        self._codepoints = np.array([ord(char) for char in info.vocab.chars], np.int32)  # in id order
        # A fine-tuned run's ids are not in code point order: search a sorted copy, then map back.
        self._search_order = np.argsort(self._codepoints, kind="stable").astype(np.int32)
        cleaning = metadata["cleaning"]
        self._cleaning = {"lowercase": cleaning["lowercase"], "strip_punctuation": cleaning["strip_punctuation"]}
        self._vocab_size = len(info.vocab)
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

    # -- text in and out ----------------------------------------------------------------------

    def _encode(self, text, subject: str):
        """Ids (n,) int32 of ``text`` cleaned as the run's corpus was; fails on unknown characters."""
        cleaned = clean_text_graph(text, **self._cleaning)
        codepoints = tf.strings.unicode_decode(cleaned, "UTF-8", errors="strict")  # (n,) int32
        order = tf.constant(self._search_order)
        table = tf.constant(self._codepoints[self._search_order])  # sorted
        found = tf.minimum(tf.searchsorted(table, codepoints, out_type=tf.int32), self._vocab_size - 1)
        known = tf.equal(tf.gather(table, found), codepoints)
        ids = tf.gather(order, found)
        unknown, _ = tf.unique(tf.boolean_mask(codepoints, tf.logical_not(known)))
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            [
                f"{subject} has characters the model does not know:",
                tf.strings.unicode_encode(unknown, "UTF-8"),
                f"The model knows {self._vocab_size} characters (see the metadata signature); remove them.",
            ],
            summarize=1,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def _decode(self, ids):
        return tf.strings.unicode_encode(tf.gather(tf.constant(self._codepoints), ids), "UTF-8")

    # -- generate -----------------------------------------------------------------------------

    def _check_options(self, length, temperature, top_k, top_p) -> list:
        vocab = self._vocab_size
        return [
            _check(length > 0, "length must be a positive number of characters; got", length),
            _check(
                tf.logical_and(tf.math.is_finite(temperature), temperature >= 0),
                "temperature must be a finite number, 0 (greedy) or positive; got",
                temperature,
            ),
            _check(
                tf.logical_and(top_k >= 0, top_k <= vocab),
                f"top_k must be between 1 and the vocabulary size {vocab}, or 0 for none; got",
                top_k,
            ),
            _check(tf.logical_and(top_p > 0, top_p <= 1), "top_p must be a number in (0, 1], 1 for none; got", top_p),
        ]

    @staticmethod
    def _check_random_seed(random_seed):
        in_range = tf.logical_and(random_seed >= 0, random_seed < noise.SEED_RANGE)
        return _check(in_range, f"random_seed must be an integer from 0 to {noise.SEED_RANGE - 1}; got", random_seed)

    def _generate(self, seed, length, temperature, top_k, top_p, random_seed):
        ids = self._encode(seed, "Seed text")
        checks = [*self._check_options(length, temperature, top_k, top_p), self._check_random_seed(random_seed)]
        checks.append(_check(tf.size(ids) > 0, "The seed text is empty after cleaning; give a seed the model knows."))
        with tf.control_dependencies(checks):
            logits, states = self._prime(ids)
            new_ids = self._draw(logits, states, length, temperature, top_k, top_p, random_seed)
        return {"text": self._decode(new_ids)}

    def _zero_states(self, batch: int) -> list:
        return [tf.zeros((batch, layer.units), tf.float32) for layer in self._model.rnn_layers]

    def _prime(self, ids):
        """``Sampler.prime``: the seed at batch 1 in windows of ``PRIME_WINDOW``, carrying the state."""
        window = sampling.PRIME_WINDOW
        windows = (tf.size(ids) + window - 1) // window

        def body(index, logits, states):
            piece = ids[index * window : (index + 1) * window][tf.newaxis, :]  # (1, time)
            logits, states = tf_sampler.feed_seed_window(self._model, piece, states)
            return index + 1, logits, states

        initial = (tf.constant(0), tf.zeros((1, self._vocab_size), tf.float32), self._zero_states(1))
        _, logits, states = tf.while_loop(lambda index, *_: index < windows, body, initial)
        return logits, states

    def _draw(self, logits, states, length, temperature, top_k, top_p, random_seed):
        """``Sampler.sample`` for one sample: chunks of ``CHUNK`` characters, then the first ``length``."""
        row_keys = tf.reshape(random_seed, (1,))  # (1,) int64, checked to be from 0 to 2**32 - 1: sample 0's key
        chunks = (length + sampling.CHUNK - 1) // sampling.CHUNK

        def body(index, logits, states, pieces):
            ids, logits, states = tf_sampler.sample_chunk(
                self._model, logits, states, row_keys, index, temperature, top_k, top_p
            )
            return index + 1, logits, states, pieces.write(index, ids[0])

        pieces = tf.TensorArray(tf.int32, size=chunks)
        _, _, _, pieces = tf.while_loop(
            lambda index, *_: index < chunks, body, (tf.constant(0), logits, states, pieces)
        )
        return tf.reshape(pieces.stack(), (-1,))[:length]

    # -- log_prob -----------------------------------------------------------------------------

    def _log_prob(self, text):
        """``evaluate.streaming_cross_entropy`` with one stream: the state carried through the text."""
        ids = self._encode(text, "Text")
        predicted = tf.size(ids) - 1
        enough = _check(predicted > 0, "Need a text of at least 2 characters to score; got", tf.size(ids))
        windows = (predicted + SCORE_WINDOW - 1) // SCORE_WINDOW

        def body(index, total, states):
            start = index * SCORE_WINDOW
            stop = tf.minimum(start + SCORE_WINDOW, predicted)
            inputs, targets = ids[start:stop][tf.newaxis, :], ids[start + 1 : stop + 1][tf.newaxis, :]  # (1, time)
            logits, states = self._model(inputs, states=states, training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            return index + 1, total + tf.reduce_sum(tf.cast(nll, tf.float64)), states

        with tf.control_dependencies([enough]):
            initial = (tf.constant(0), tf.constant(0.0, tf.float64), self._zero_states(1))
            _, total, _ = tf.while_loop(lambda index, *_: index < windows, body, initial)
        characters = tf.cast(predicted, tf.int64)
        return {
            "log_prob": -total,
            "cross_entropy": total,
            "characters": characters,
            "loss": total / tf.cast(characters, tf.float64),
        }

    # -- metadata -----------------------------------------------------------------------------

    def _metadata_values(self):
        vocabulary = "".join(json.loads(self._vocabulary_json))
        return {"vocabulary": tf.constant(vocabulary), "config": tf.constant(self._metadata_json)}


def _check(condition, message: str, *values):
    """An assertion op whose error message is ``message`` followed by ``values``."""
    return tf.debugging.Assert(condition, [message, *values], summarize=1)


def build_module(model, info, metadata: dict) -> ExportModule:
    """The tf.Module ``export_run`` saves (useful on its own to call the graphs in-process)."""
    return ExportModule(model, info, metadata)
