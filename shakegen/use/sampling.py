"""Sampling text, whatever computes it: the options, the seed, the random seed, the engine, the texts.

Nothing here imports TensorFlow: ``shakegen generate`` samples on the NumPy engine
(``engine.py``) and never pays for it. The TensorFlow sampler (``tf_sampler.py``) is used
where it pays; both draw the same counter-based noise (``noise.py``), so a random seed gives
the same text on either, except where two characters' scores are a float near-tie.

Every face samples through one function, ``TextModel.sample_blocks`` (``generation.py``), which
yields blocks of new text as they are sampled; ``TextCollector`` joins those blocks into
the texts (the only place that does), so streamed and unstreamed text are one computation.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from shakegen.data.vocab import UnknownCharactersError
from shakegen.errors import SamplingError
from shakegen.use import noise

CHUNK = 64  # characters per sampled block (and per compiled call of the TensorFlow sampler)
PRIME_WINDOW = 256  # seed characters per compiled call of the TensorFlow sampler while priming
# Below float32's smallest normal number a temperature cannot scale logits meaningfully
# (it would round to 0 or turn every gap into infinity): such temperatures are greedy.
GREEDY_BELOW = float(np.finfo(np.float32).tiny)
# The largest temperature float32 holds; above it the temperature would become inf and the
# logits all 0: uniform sampling, whatever the model says.
LARGEST_TEMPERATURE = float(np.finfo(np.float32).max)

ENGINES = ("auto", "numpy", "tensorflow")
# auto: the NumPy engine samples fewer samples than this at once, TensorFlow's compiled loop
# this many and more (its batched products win there; see benchmarks/engine_speed.py).
TENSORFLOW_FROM_SAMPLES = 8
# auto: the engine scores texts predicting up to this many characters (one stream, as
# tf_scoring.default_streams gives TensorFlow below 8,192), TensorFlow longer ones in batches.
ENGINE_EVALUATE_CHARACTERS = 8191
# Why a ban or min-p is refused on TensorFlow (``sampling_engine``): its sampler does not apply them.
NUMPY_ONLY = "ban and min-p are applied by the NumPy engine only; sample with engine 'numpy' or 'auto'."


@dataclass(frozen=True)
class SamplingOptions:
    """How each next character is chosen.

    temperature: 0 means greedy (argmax); so does any temperature below ``GREEDY_BELOW``
        (1.2e-38), which is greedy in the limit anyway. At most ``LARGEST_TEMPERATURE``
        (3.4e38, float32's largest).
    top_k: sample only among the k most likely characters.
    top_p: sample only in the nucleus, the smallest set of most likely characters whose
        probability reaches top_p; it always holds the most likely character, so a top_p
        too small for float32 (below 1.2e-38, or rounding to 0) samples greedily.
    """

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def validate(self, vocab_size: int) -> "SamplingOptions":
        """Return self, or raise SamplingError naming the bad value and what is expected."""
        temperature, top_k, top_p = self.temperature, self.top_k, self.top_p
        if not (
            isinstance(temperature, (int, float, np.integer, np.floating))
            and not isinstance(temperature, bool)
            and math.isfinite(temperature)
            and 0 <= temperature <= LARGEST_TEMPERATURE
        ):
            raise SamplingError(
                f"temperature must be a finite number, 0 (greedy) or positive up to {LARGEST_TEMPERATURE:.7g} "
                f"(float32's largest), got {temperature}."
            )
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= vocab_size
        ):
            raise SamplingError(f"top-k must be between 1 and the vocabulary size {vocab_size}, got {top_k}.")
        if top_p is not None and (
            isinstance(top_p, bool)
            or not isinstance(top_p, (int, float, np.integer, np.floating))
            or not (math.isfinite(top_p) and 0 < top_p <= 1)
        ):
            raise SamplingError(f"top-p must be a number in (0, 1], got {top_p}.")
        return self


def check_random_seed(value) -> int:
    """``value`` as an int, or SamplingError unless it is an integer from 0 to 2**32 - 1."""
    try:
        return noise.check_random_seed(value)
    except ValueError as error:
        message = str(error)
        raise SamplingError(f"{message[0].upper()}{message[1:-1]}; pick one in that range.") from None


def draw_random_seed() -> int:
    """A random seed from the whole range 0 ... 2**32 - 1, from the operating system (reported, so the
    text can be had again). The one place shakegen draws a random seed for sampling."""
    return int.from_bytes(os.urandom(4), "little") % noise.SEED_RANGE


def check_engine(engine) -> str:
    """``engine`` if it is one of ``ENGINES``, else SamplingError naming them."""
    if engine not in ENGINES:
        raise SamplingError(f"Unknown engine {engine!r}; expected one of {', '.join(ENGINES)}.")
    return engine


def sampling_engine(engine: str, num_samples: int, *, numpy_only: bool = False, refusal: str = NUMPY_ONLY) -> str:
    """The engine that samples ``num_samples`` at once: ``numpy`` or ``tensorflow`` (``auto`` decides by count).

    ``numpy_only``: the sampling needs the NumPy engine (a ban or min-p, which only it applies): ``numpy``
    whatever the count, and SamplingError(``refusal``) where ``engine`` is ``tensorflow``. The one place
    that rule is written; every face asks it.
    """
    if check_engine(engine) == "tensorflow" and numpy_only:
        raise SamplingError(refusal)
    if numpy_only:
        return "numpy"
    if engine != "auto":
        return engine
    return "tensorflow" if num_samples >= TENSORFLOW_FROM_SAMPLES else "numpy"


def scoring_engine(engine: str, predicted: int) -> str:
    """The engine that scores a text predicting ``predicted`` characters (``auto``: the engine for short ones)."""
    if check_engine(engine) != "auto":
        return engine
    return "numpy" if predicted <= ENGINE_EVALUATE_CHARACTERS else "tensorflow"


class TextCollector:
    """Joins sampled blocks (one string per sample each) into the texts, each after ``prefix``."""

    def __init__(self, num_samples: int, prefix: str = ""):
        self._pieces = [[prefix] for _ in range(num_samples)]

    def add(self, block: list[str]) -> list[str]:
        """Append one block; returns it, so a face can stream it as well."""
        for parts, text in zip(self._pieces, block, strict=True):
            parts.append(text)
        return block

    def texts(self) -> list[str]:
        return ["".join(parts) for parts in self._pieces]


def read_seed_file(path, encoding: str | None = None) -> str:
    """The text of a seed file, decoded with ``encoding`` (UTF-8 when None); cleaning is ``prepare_seed``'s.

    Raises:
        SamplingError: no such file, an unknown encoding, or bytes not valid in it.
    """
    from pathlib import Path

    path, encoding = Path(path), encoding or "utf-8"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SamplingError(
            f"Cannot read the seed file {path}: {error.strerror or error}. Pass an existing text file with --seed-file."
        ) from None
    try:
        return raw.decode(encoding)
    except LookupError:
        raise SamplingError(
            f"Unknown text encoding {encoding!r} for the seed file {path}. Pass a Python codec name such as utf-8 "
            "or latin-1 with --encoding."
        ) from None
    except UnicodeDecodeError as error:
        raise SamplingError(
            f"The seed file {path} is not valid {encoding}: byte 0x{raw[error.start]:02x} at offset {error.start} "
            "cannot be decoded. Pass its encoding with --encoding (for example --encoding latin-1)."
        ) from None


def prepare_seed(seed_text: str, info, skip_unknown: bool = False) -> tuple[str, list[str]]:
    """Clean the seed as the training text was cleaned, and deal with unknown characters.

    Returns:
        (the seed to use, the characters dropped).
    Raises:
        UnknownCharactersError: unknown characters without ``skip_unknown``.
        SamplingError: nothing left after cleaning.
    """
    _, known, unknown = info.text_as_seen(seed_text)
    if unknown and not skip_unknown:
        raise UnknownCharactersError(
            unknown,
            len(info.vocab),
            subject="Seed text",
            where=f"The checkpoint at {info.run_dir}",
            advice="remove them or pass --skip-unknown",
        )
    seed_text = known
    if not seed_text:
        raise SamplingError(
            "The seed text is empty after cleaning and dropping unknown characters; give a seed the model knows."
        )
    return seed_text, unknown
