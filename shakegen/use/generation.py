"""A run loaded to sample from: its engines, and the building blocks every face samples through.

``LoadedRun`` holds the run's NumPy engine (``engine.Engine``) and its ``RunInfo``; TensorFlow's model
and compiled sampler are built only when first needed. Its methods check the options, the seed, the
stop rule and the ban as every face checks them, choose the engine (``sampling.sampling_engine``), and
yield the blocks of new text (``sample_blocks``): the Python API's ``TextModel`` is one, and
``shakegen generate`` and ``shakegen serve`` sample through it. Nothing here imports TensorFlow until
TensorFlow samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from shakegen.errors import SamplingError
from shakegen.runs import checkpoint
from shakegen.use import engine as engines
from shakegen.use import logits, sampling, stopping


class LoadedRun:
    """A run's engine, info and saved state, loaded from ``run_dir`` (``which``: ``best`` or ``last``
    weights), with the sampling building blocks. ``engine``: ``auto``, ``numpy`` or ``tensorflow``."""

    def __init__(self, run_dir: Path, which: str, engine: str = "auto"):
        self.engine_choice = sampling.check_engine(engine)
        # float32 whatever the run was trained in: texts and figures depend only on the weights.
        self.engine, self.info, self.saved_state = engines.load(run_dir, which)
        self.run_dir, self.which = Path(run_dir), which
        self.last_random_seed: int | None = None
        self.last_engine: str | None = None  # which engine ran the last sample or evaluation
        self.last_endings: list | None = None  # how each sample of the last one ended (stopping.Ended)
        self._model = None
        self._sampler = None  # one compiled sampler serves every option value (built when first used)

    @property
    def vocabulary(self) -> str:
        """The characters the model knows, in id order."""
        return "".join(self.info.vocab.chars)

    @property
    def config(self):
        """The run's hyperparameters (a ``TrainConfig``)."""
        return self.info.config

    @property
    def model(self):
        """The run's Keras ``CharModel`` in float32 (imports TensorFlow and builds it when first asked)."""
        if self._model is None:
            from shakegen.model.backend import import_tensorflow

            import_tensorflow()

            self._model, _, _ = checkpoint.load_model(self.run_dir, self.which, precision="float32")
        return self._model

    def sampling_options(self, temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None):
        """Validated sampling options. Raises SamplingError naming the bad value."""
        return sampling.SamplingOptions(temperature, top_k, top_p).validate(len(self.info.vocab))

    def seed_text(self, seed: str, skip_unknown: bool = False) -> tuple[str, list[str]]:
        """The seed as the model sees it (cleaned as its corpus was) and the characters dropped.

        Raises:
            UnknownCharactersError: characters the model does not know, unless ``skip_unknown``.
        """
        if not isinstance(seed, str):
            raise SamplingError(f"The seed must be a string, got {type(seed).__name__}.")
        return sampling.prepare_seed(seed, self.info, skip_unknown)

    def sampling_engine(self, num_samples: int = 1, engine: str | None = None) -> str:
        """``numpy`` or ``tensorflow``: what samples ``num_samples`` at once (``engine``, else the model's choice)."""
        return sampling.sampling_engine(self.engine_choice if engine is None else engine, num_samples)

    def sample_blocks(
        self,
        seed: str,
        length: int,
        options,
        num_samples: int = 1,
        random_seed: int | None = None,
        engine: str | None = None,
        *,
        ban: str | None = None,
        min_p: float | None = None,
        stop=None,
        endings: list | None = None,
    ) -> Iterator[list[str]]:
        """Yield, as they are sampled, blocks of new text: one string per sample each time.

        The one sampling function of every face (``generate``, ``stream``, ``shakegen generate``,
        ``shakegen serve``). ``seed`` must already be as ``seed_text`` returns it. Sample i uses
        random seed ``random_seed + i`` (from 0 to 2**32 - 1, wrapping); ``None`` draws one (kept
        in ``last_random_seed``). ``engine``: ``auto``, ``numpy`` or ``tensorflow`` (None: the
        model's); which one ran is kept in ``last_engine``. Both draw the same noise.

        ``ban`` (characters never emitted) and ``min_p`` are applied by the NumPy engine only:
        ``auto`` then samples on it whatever the count, and ``tensorflow`` is refused. ``stop``
        (a ``stopping.StopRule``) ends each sample at its first stop text or last line; once the
        blocks are exhausted, ``last_endings`` (and ``endings``, a list given to fill, which concurrent
        callers use) says how each sample ended (``stopping.Ended``).
        """

        for name, value in (("length", length), ("num_samples", num_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SamplingError(f"{name} must be a positive integer, got {value!r}.")
        if random_seed is None:
            random_seed = sampling.draw_random_seed()
        random_seed = sampling.check_random_seed(random_seed)
        vocab = self.info.vocab
        banned = self.ban_ids(ban)
        logits.check_options(options.temperature, options.top_k, options.top_p, len(vocab), min_p=min_p)
        requested = self.engine_choice if engine is None else engine
        chosen = sampling.sampling_engine(requested, num_samples, numpy_only=bool(banned or min_p))
        rule = stop if stop is not None else stopping.StopRule()
        self.last_random_seed, self.last_engine = random_seed, chosen
        ids = vocab.encode(seed)
        blocks = self._id_blocks(chosen, ids, length, options, num_samples, random_seed, banned, min_p)
        stopper = stopping.Stopping(rule, num_samples)
        if endings is not None:  # filled in place as each sample ends, before the block that ends it
            endings[:] = stopper.ended
            stopper.ended = endings
        self.last_endings = stopper.ended
        for block in stopper.run([vocab.decode(row) for row in block] for block in blocks):
            if any(block):  # the last block is the text held back; when there is none it is not worth a turn
                yield block

    def _id_blocks(self, chosen, ids, length, options, num_samples, random_seed, banned, min_p):
        """Blocks of new ids, (num_samples, up to ``sampling.CHUNK``), from the engine ``chosen``."""
        if chosen == "tensorflow":
            return self.sampler().sample(ids, length, num_samples, random_seed, options)
        return self.engine.sample(
            ids,
            length,
            num_samples=num_samples,
            random_seed=random_seed,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            block=sampling.CHUNK,
            ban=banned,
            min_p=min_p,
        )

    def ban_ids(self, ban: str | None) -> list[int] | None:
        """The ids of the characters ``ban`` names (None: none). Raises SamplingError for a character the
        model does not know, or for banning all of them."""

        if ban is None or ban == "":
            return None
        if not isinstance(ban, str):
            raise SamplingError(f"ban must be a string of characters, got {type(ban).__name__}.")
        try:
            return stopping.ban_ids(ban, self.info.vocab)
        except ValueError as error:
            raise SamplingError(str(error)) from None

    @staticmethod
    def stop_rule(stop=None, keep_stop: bool = False, lines: int | None = None):
        """A ``stopping.StopRule`` from ``stop`` (a text or a list of texts, None: none), ``keep_stop`` and ``lines``.

        Raises:
            SamplingError: an empty stop text, or lines not a positive integer.
        """

        stops = () if stop is None else (stop,) if isinstance(stop, str) else tuple(stop)
        if any(not isinstance(text, str) for text in stops):
            raise SamplingError("stop must be a text or a list of texts.")
        try:
            return stopping.StopRule(stops, bool(keep_stop), lines)
        except ValueError as error:
            raise SamplingError(str(error)) from None

    @property
    def last_stop_reasons(self) -> list[dict] | None:
        """How each sample of the last ``generate`` or ``stream`` ended: {"stop_reason": "length", "stop", or
        "lines", "stop_text": the stop text or None}; a sample not ended early reached its length."""

        endings = self.last_endings
        return None if endings is None else [(ended or stopping.Ended(stopping.LENGTH)).as_dict() for ended in endings]

    def sampler(self):
        """The model's one TensorFlow ``tf_sampler.Sampler``: compiled once, it serves every option value."""
        if self._sampler is None:
            model = self.model
            from shakegen.use import tf_sampler

            self._sampler = tf_sampler.Sampler(model)
        return self._sampler
