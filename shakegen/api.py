"""The Python API: load a run and sample or score text with it, or train one.

    import shakegen
    model = shakegen.load("checkpoints/quick")                  # a run folder; None: the latest run
    model.generate("ROMEO:", length=300, temperature=0.8, top_p=0.9, random_seed=7)    # -> str
    model.generate("ROMEO:", num_samples=3, random_seed=7)                             # -> list[str]
    for chunk in model.stream("JULIET:", length=1000): ...                             # as it is sampled
    model.evaluate("Some text to score.")                       # -> EvaluationReport
    model.inspect("ROMEO:\nBut soft!", top_k=5)                # -> per-character records (Inspection)
    shakegen.train(preset="quick", run_dir="checkpoints/mine", epochs=2)               # -> TrainResult

The command line and the server call these same functions (``cli/`` is a thin face over
them), so the API, ``shakegen generate``/``eval`` and ``shakegen serve`` give the same text and
figures for the same options. A model samples and scores on the NumPy engine (no TensorFlow)
unless TensorFlow pays: ``engine="auto"`` (the default of ``load``) picks TensorFlow for 8
samples or more at once and for texts predicting more than 8,191 characters; ``"numpy"`` and
``"tensorflow"`` force one. Both draw the same noise, so a random seed gives the same text on
either, except where two characters' scores are a float near-tie.
Bad arguments raise ``ValueError`` subclasses (``shakegen.errors``) naming the value and the fix.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from shakegen.errors import CheckpointError, EvaluationError, SamplingError
from shakegen.runs.names import DEFAULT_CHECKPOINTS, resolve_run
from shakegen.use.generation import LoadedRun


def load(run: str | os.PathLike | None = None, which: str = "best", engine: str = "auto") -> "TextModel":
    """Load a run folder's model for sampling and scoring.

    Args:
        run: a run folder written by ``shakegen train``, ``"pretrained"`` for the model that
            ships with shakegen, or ``None`` for the most recently trained run under
            ``checkpoints/`` (the pretrained model when there is none).
        which: ``"best"`` (lowest validation loss) or ``"last"`` weights.
        engine: what samples and scores: ``"auto"`` (the NumPy engine, without TensorFlow,
            except where TensorFlow pays: many samples at once, long texts to score),
            ``"numpy"`` or ``"tensorflow"``; ``generate``, ``stream`` and ``evaluate`` may override it.
    Raises:
        CheckpointError: no run there, a damaged one, or an unknown ``which``.
        SamplingError: an unknown ``engine``.
    """
    if which not in ("best", "last"):
        raise CheckpointError(f"Unknown checkpoint {which!r}; expected 'best' or 'last'.")
    from shakegen.use import sampling

    sampling.check_engine(engine)
    return TextModel(resolve_run(run), which, engine)


@dataclass(frozen=True)
class EvaluationReport:
    """Cross-entropy of a run on a text: ``loss`` in nats per character, ``perplexity`` =
    exp(loss), ``bits_per_character`` = loss / ln 2, over ``characters`` predictions, under
    ``protocol`` (``streaming``, or ``windows`` of ``window`` characters from a zero state)."""

    run: str
    which: str
    text: str  # what was evaluated: "val split", "train split", a file name or "text"
    protocol: str
    window: int | None
    samples: int | None
    random_seed: int | None
    cell: str
    parameters: int
    characters: int
    loss: float
    perplexity: float
    bits_per_character: float
    uniform_perplexity: float
    unigram_perplexity: float | None
    epoch: float | None
    step: int | None
    training_minutes: float | None  # up to these weights (the best's own, not the run's total)
    left_out_characters: int
    same_corpus: bool | None = None  # a split of the corpus the run was trained on? None: a text
    corpus_note: str | None = None  # one sentence when it is not
    engine: str | None = None  # what scored it: "numpy" (the engine) or "tensorflow"

    def to_json(self) -> dict:
        return asdict(self)


class TextModel(LoadedRun):
    """A trained run, ready to sample and score. Built by ``shakegen.load``.

    It holds the run's NumPy engine (``engine.Engine``), which samples and scores without
    TensorFlow; the TensorFlow model (``model``) is loaded only when first needed: sampling
    many samples at once, scoring a long text, or ``engine="tensorflow"``. The loading and the
    sampling building blocks (``sample_blocks`` and the checks it shares) are ``LoadedRun``'s
    (``shakegen.use.generation``); this class adds the calls a user makes.
    """

    def __repr__(self) -> str:
        config = self.info.config
        return (
            f"<shakegen.TextModel {self.run_dir} ({self.which}): {config.num_layers} × {config.cell} "
            f"GRU({config.rnn_units}), {self.info.parameters:,} parameters, {len(self.vocabulary)} characters>"
        )

    # -- sampling: generate and stream on top of LoadedRun.sample_blocks -------------------------

    def generate(
        self,
        seed: str | None = None,
        length: int = 500,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        num_samples: int | None = None,
        random_seed: int | None = None,
        skip_unknown: bool = False,
        engine: str | None = None,
        stop: str | list[str] | None = None,
        keep_stop: bool = False,
        lines: int | None = None,
        ban: str | None = None,
        min_p: float | None = None,
    ) -> str | list[str]:
        """Sample text: the seed followed by ``length`` new characters.

        Args:
            seed: text to start from; ``None`` starts after a newline and returns only the new text.
            temperature: 0 is greedy; lower is safer, higher more surprising.
            top_k, top_p: sample only among the k most likely characters, or the most likely
                ones whose probability reaches p.
            num_samples: ``None`` returns one string; a number returns a list of that many.
            random_seed: from 0 to 2**32 - 1; the same seed and options always give the same
                text (sample i uses ``random_seed + i``); ``None`` draws one, kept in ``last_random_seed``.
            skip_unknown: drop seed characters the model does not know instead of raising.
            engine: ``auto`` (the NumPy engine, TensorFlow for many samples at once), ``numpy``
                or ``tensorflow``; None: the one ``load`` was given. Kept in ``last_engine``.
            stop: a text, or a list of texts, that ends a sample where it first appears (dropped
                from the text unless ``keep_stop``); lines: end each sample after this many line ends.
                How each sample ended is in ``last_stop_reasons``.
            ban: characters never emitted (the others' probabilities renormalise).
            min_p: keep only characters at least ``min_p`` times as likely as the most likely one.
        Raises:
            SamplingError, UnknownCharactersError (both ValueError): bad options or seed.
        """
        from shakegen.use import sampling

        options = self.sampling_options(temperature, top_k, top_p)
        rule = self.stop_rule(stop, keep_stop, lines)
        prefix, seed = self._prompt(seed, skip_unknown)
        count = 1 if num_samples is None else num_samples
        texts = sampling.TextCollector(count, prefix)
        for block in self.sample_blocks(
            seed, length, options, count, random_seed, engine, ban=ban, min_p=min_p, stop=rule
        ):
            texts.add(block)
        return texts.texts()[0] if num_samples is None else texts.texts()

    def _prompt(self, seed: str | None, skip_unknown: bool) -> tuple[str, str]:
        """(what the returned text starts with, the seed to prime): no seed primes a newline, shown as nothing."""
        if seed is None:
            return "", "\n"
        seed, _ = self.seed_text(seed, skip_unknown)
        return seed, seed

    def stream(
        self,
        seed: str | None = None,
        length: int = 500,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        random_seed: int | None = None,
        skip_unknown: bool = False,
        engine: str | None = None,
        stop: str | list[str] | None = None,
        keep_stop: bool = False,
        lines: int | None = None,
        ban: str | None = None,
        min_p: float | None = None,
    ) -> Iterator[str]:
        """Like ``generate`` for one sample, yielding the text as it is sampled (the seed first)."""
        from shakegen.use import logits, sampling

        options = self.sampling_options(temperature, top_k, top_p)
        rule = self.stop_rule(stop, keep_stop, lines)  # refused before the seed is yielded, as the rest
        self.ban_ids(ban)
        logits.check_options(temperature, top_k, top_p, len(self.info.vocab), min_p=min_p)
        if random_seed is not None:  # refused before the seed is yielded
            random_seed = sampling.check_random_seed(random_seed)
        if engine is not None:
            sampling.check_engine(engine)
        prefix, seed = self._prompt(seed, skip_unknown)
        if prefix:
            yield prefix
        for block in self.sample_blocks(seed, length, options, 1, random_seed, engine, ban=ban, min_p=min_p, stop=rule):
            yield block[0]

    def beam_search(
        self,
        seed: str | None = None,
        length: int = 100,
        beams: int = 5,
        stop: str | list[str] | None = None,
        keep_stop: bool = False,
        lines: int | None = None,
        ban: str | None = None,
        skip_unknown: bool = False,
    ) -> list[dict]:
        """The ``beams`` most likely continuations of the seed, best first (``beam.beam_search``; no randomness).

        Without ``stop`` or ``lines`` every beam has ``length`` new characters and they are ranked
        by total log-probability; with them, a beam ends at its first stop text or last line and
        beams are ranked by log-probability per character.

        Returns:
            [{"text": the seed and the new text, "log_prob": the total log-probability (nats) of every
            character generated, a stop text included, "log_prob_per_character", "characters": how many
            were generated, "stop_reason", "stop_text"}].
        Raises:
            SamplingError, UnknownCharactersError (both ValueError): bad options or seed.
        """
        from shakegen.use.beam import beam_search

        rule = self.stop_rule(stop, keep_stop, lines)
        banned = self.ban_ids(ban)
        prefix, seed = self._prompt(seed, skip_unknown)
        vocab = self.info.vocab
        found = beam_search(self.engine, vocab.encode(seed), length, beams, rule=rule, decode=vocab.decode, ban=banned)
        self.last_engine = "numpy"
        return [beam.as_dict(prefix, vocab.decode) for beam in found]

    # -- scoring -------------------------------------------------------------------------------

    def evaluate(
        self,
        text: str | None = None,
        *,
        path: str | os.PathLike | None = None,
        split: str | None = None,
        data_dir: str | os.PathLike | None = "data",
        protocol: str = "streaming",
        window: int = 256,
        samples: int | None = None,
        random_seed: int = 0,
        strict: bool = False,
        encoding: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        engine: str | None = None,
        characters_per_call: int | None = None,
    ) -> EvaluationReport:
        """Cross-entropy, perplexity and bits per character on one text.

        Give exactly one of ``text`` (a string), ``path`` (a text file, read in the run's
        corpus encoding unless ``encoding``) or ``split`` (``"val"`` or ``"train"`` of the
        prepared corpus in ``data_dir``; a run trained on the embedded Tiny Shakespeare, like
        the pretrained model, needs nothing prepared: with ``data_dir=None`` or an unprepared
        one its split is cut in memory). Text is cleaned as the run's corpus was; characters
        the model does not know are left out and counted (``strict`` refuses them). A split of
        a corpus other than the run's own is scored all the same, and the report says so
        (``same_corpus`` False, ``corpus_note``), except for a run of the embedded corpus: it
        is scored on its own split, and ``corpus_note`` names the corpus passed over.

        Args:
            protocol: ``"streaming"`` (the state carried through the whole text) or
                ``"windows"`` (every ``window`` characters from a zero state, nanoGPT's way;
                ``samples`` random windows instead of all, drawn with ``random_seed``, an
                integer from 0 to 2**32 - 1).
            engine: ``auto`` (the NumPy engine for texts predicting up to 8,191 characters,
                TensorFlow in batches for longer ones), ``numpy`` or ``tensorflow``; None: the
                one ``load`` was given. The report names the one that ran.
            characters_per_call: at most about this many characters per call into the engine
                or TensorFlow (and so between two ``progress`` calls); None: their defaults; a
                mapping from engine name to a count: the count for the engine that scores.
                It does not change the figure beyond float rounding.
        Raises:
            EvaluationError: not exactly one of text, path and split; an unknown split or
                protocol; a bad window, sample count or random seed; see ``evaluation_ids``.
        """
        from shakegen.use import evaluate, report, sampling, scored_text

        scored_text.check_one_given(text, path, split)
        chosen = evaluate.Protocol(protocol, window, samples, random_seed).validate()
        evaluate.check_characters_per_call(characters_per_call)
        try:
            engine = sampling.check_engine(self.engine_choice if engine is None else engine)
        except SamplingError as error:
            raise EvaluationError(str(error)) from None
        found, what = scored_text.text_to_score(self.info, text, path, split, data_dir, strict, encoding)
        engine = sampling.scoring_engine(engine, evaluate.predicted_characters(len(found.ids), chosen))
        if isinstance(characters_per_call, dict):  # the count for the engine that scores
            characters_per_call = characters_per_call[engine]
        scorer = self.engine if engine == "numpy" else self.model
        self.last_engine = engine
        row = report.report(
            scorer, self.info, self.which, self.saved_state, found.ids, chosen, progress, characters_per_call
        )
        return EvaluationReport(
            text=what,
            left_out_characters=found.left_out,
            same_corpus=found.same_corpus,
            corpus_note=found.corpus_note,
            engine=engine,
            **row,
        )

    # -- inspection ----------------------------------------------------------------------------

    def inspect(self, text: str, *, top_k: int = 5, units=None):
        """What the model expected at each character of ``text``, as ``shakegen inspect --json``.

        Returns an ``inspect.Inspection``: ``characters`` holds one ``CharacterRecord`` per character
        (``log_prob`` in nats, ``bits``, ``rank``: 1 for the model's top guess, ``top``: the ``top_k``
        guesses as (character, probability), and ``units``: the values of the units asked for after
        reading it; the first character, which nothing predicts, has None for all but ``units``);
        ``to_json()`` gives the records as the CLI prints them. Text is cleaned as the run's corpus
        was and unknown characters are left out (``left_out``). Runs on the NumPy engine.

        Args:
            units: hidden units whose values to record, as (layer, index) pairs or "L:N" strings, both from 0.
        Raises:
            InspectionError: fewer than 2 known characters, more than 50,000, a bad top_k or unit.
        """
        from shakegen.use import inspect as inspection

        chosen = [
            inspection.parse_unit(unit, self.engine.num_layers, self.engine.layers[0].units)
            if isinstance(unit, str)
            else unit
            for unit in (units or ())
        ]
        return inspection.inspect_text(self.engine, self.info, text, top_k=top_k, units=chosen)


def train(
    preset: str = "quick",
    run_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike = "data",
    *,
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "one",
    progress=None,
    init_from: str | os.PathLike | None = None,
    **overrides,
):
    """Train a run (or resume one) and return its ``TrainResult`` (run folder, state, history).

    Args:
        preset: ``tiny``, ``quick``, ``standard`` or ``large``; ``overrides`` change any of its fields
            (``epochs=2``, ``rnn_units=256``, ``dropout=0.2``, ... — see ``TrainConfig``).
        run_dir: the run folder; default ``checkpoints/<preset>``.
        resume: continue the run in ``run_dir``; only how long and how fast to train may change.
        overwrite: start over in a ``run_dir`` that already holds a run.
        progress: called with each ``shakegen.training.events`` instance as training goes.
        init_from: fine-tune a new run from this run folder's best weights (or ``"pretrained"``),
            its vocabulary extended by the corpus's new characters (see ``shakegen.training.finetune``).
    Raises:
        ConfigError: an unknown preset or field, a bad value, or a run folder that conflicts.
        TrainingDiverged, TrainingInterrupted, CheckpointWriteError: see ``shakegen.training.trainer.train``.
    """
    from dataclasses import fields

    from shakegen.config import PRESETS, ConfigError, TrainConfig
    from shakegen.model.backend import import_tensorflow

    if preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}.")
    known = {field.name for field in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"Unknown training option(s) {', '.join(unknown)}; expected fields of TrainConfig: {', '.join(sorted(known))}."
        )
    import_tensorflow()
    from shakegen.training import trainer as training

    config = PRESETS[preset].replace(**overrides)
    changes = {name: value for name, value in overrides.items() if value is not None}
    run_dir = Path(run_dir) if run_dir is not None else DEFAULT_CHECKPOINTS / preset
    return training.train(
        config,
        run_dir,
        data_dir,
        resume=resume,
        changes=changes,
        overwrite=overwrite,
        strategy=strategy,
        progress=progress,
        init_from=init_from,
    )
