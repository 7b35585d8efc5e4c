"""The one thread that runs the model, and the model's card.

Every call into the model (the NumPy engine, or TensorFlow where it pays) goes through one
worker thread, so the model is never entered from two threads at once and the event loop
stays free (``/healthz`` answers while a long sample runs). A sample advances one block (64 characters) per call: requests that arrive
together take turns block by block, each with its own sampling generator, so they never
share state, and one that is abandoned (its client gone) simply gets no further blocks.

An evaluation takes turns too: ``TextModel.evaluate`` runs on a thread of its own that
enters the model only while the model's thread waits for it, one call of at most
``EVALUATION_CHARACTERS_PER_TURN`` characters for its engine (one window of every stream, or one batch of
windows) per turn, and pauses in its ``progress`` callback until its next turn. Queued sampling blocks run between its turns, so a long text slows other
clients down instead of stalling them, and an evaluation whose client has gone is stopped at
its next turn. The figure is ``TextModel.evaluate``'s own, computed by the same code.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import shakegen
from shakegen.runs import checkpoint
from shakegen.serve.limits import Limits

# Characters an evaluation scores per turn of the model's thread, by the engine that scores it:
# small enough that a sampling block queued behind it waits a fraction of a second, large enough
# to keep batches efficient. TensorFlow scores 32 streams side by side; the NumPy engine one
# character after another (about 3,000 a second on the pretrained model), hence its smaller turns.
EVALUATION_CHARACTERS_PER_TURN = {"tensorflow": 4096, "numpy": 256}


@dataclass(frozen=True)
class GenerationPlan:
    """A validated sampling request: the seed as the model sees it, and how to sample after it."""

    seed: str  # as TextModel.seed_text returns it
    prefix: str  # what the text starts with: the seed, or "" when none was given
    length: int
    options: object  # SamplingOptions
    num_samples: int
    random_seed: int
    dropped: list = field(default_factory=list)
    engine: str = "numpy"  # what samples it: "numpy" (the engine) or "tensorflow"
    ban: str | None = None  # characters never emitted (the engine's only, as min_p)
    min_p: float | None = None
    stop: object = None  # a stopping.StopRule, or None
    endings: list = field(default_factory=list)  # filled as each sample ends (stopping.Ended; None: by its length)


@dataclass
class Counters:
    """What ``/healthz`` reports: requests sampling now, and what sampling has done so far."""

    sampling_now: int = 0
    samples_finished: int = 0
    samples_stopped: int = 0  # stopped early: the client went away
    characters_sampled: int = 0
    evaluating_now: int = 0
    evaluations_finished: int = 0
    evaluations_stopped: int = 0  # stopped early: the client went away
    evaluation_turns: int = 0  # compiled evaluation calls run, each one turn of the model's thread

    def to_json(self) -> dict:
        return dict(self.__dict__)


class ModelWorker:
    """Owns a ``TextModel``; runs its calls one at a time on a single thread."""

    def __init__(self, model: "shakegen.TextModel", limits: Limits):
        self.model = model
        self.limits = limits
        self.counters = Counters()
        self.card = model_card(model, limits)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shakegen-model")

    async def call(self, function: Callable, *args, **kwargs):
        """``function(*args, **kwargs)`` on the model's thread, awaited from the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    def plan(
        self,
        seed: str | None,
        length: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        num_samples: int,
        random_seed: int | None,
        skip_unknown: bool,
        *,
        min_p: float | None = None,
        ban: str | None = None,
        stop: list | None = None,
        keep_stop: bool = False,
        lines: int | None = None,
    ) -> GenerationPlan:
        """Validate a request the way ``TextModel.generate`` and ``shakegen generate`` do (no TensorFlow).

        Raises:
            SamplingError, UnknownCharactersError: bad options or seed.
        """
        from shakegen.use import sampling

        options = self.model.sampling_options(temperature, top_k, top_p)
        # TextModel.generate's rule: no seed primes a newline and the text is only what follows it.
        text, dropped = ("\n", []) if seed is None else self.model.seed_text(seed, skip_unknown)
        if random_seed is None:  # drawn as the CLI draws it, and reported so the text can be had again
            random_seed = sampling.draw_random_seed()
        prefix = "" if seed is None else text
        engine = self.model.sampling_engine(num_samples)
        rule = self.model.stop_rule(stop, keep_stop, lines)
        banned = self.model.ban_ids(ban)
        from shakegen.errors import SamplingError
        from shakegen.use.logits import check_options

        check_options(options.temperature, options.top_k, options.top_p, len(self.model.vocabulary), min_p=min_p)
        if banned or min_p:  # the NumPy engine's only (TextModel.sample_blocks)
            if self.model.engine_choice == "tensorflow":
                raise SamplingError(
                    "ban and min_p are applied by the NumPy engine only, and this server samples on TensorFlow "
                    "(shakegen serve --engine); leave them out."
                )
            engine = "numpy"
        return GenerationPlan(
            text, prefix, length, options, num_samples, random_seed, dropped, engine, ban or None, min_p, rule
        )

    async def beam(self, seed: str | None, length: int, beams: int, **options) -> list[dict]:
        """``TextModel.beam_search`` on the model's thread (one turn: the search is bounded by MAX_BEAMS and
        MAX_BEAM_LENGTH). Raises SamplingError, UnknownCharactersError: bad options or seed."""
        return await self.call(self.model.beam_search, seed, length, beams, **options)

    async def suggest(self, text: str, count: int, temperature: float, random_seed: int, ban: str | None) -> dict:
        """``shakegen write``'s proposals for ``text`` (on the model's thread): next characters and words, and a
        continuation sampled with ``random_seed``. Raises SamplingError for a bad ban or temperature."""
        from shakegen.use import suggest as write

        model = self.model
        choice = write.SamplingChoice(temperature=temperature, random_seed=random_seed)

        def propose():
            suggester = write.Suggester(model.engine, model.info.vocab, choice, ban=model.ban_ids(ban))
            return {
                "characters": [{"text": c, "probability": p} for c, p in suggester.next_characters(text, count)],
                "words": [{"text": w, "probability": p} for w, p in suggester.next_words(text, count)],
                "continuation": suggester.continuation(text),
                "random_seed": random_seed,
            }

        return await self.call(propose)

    async def sample(self, plan: GenerationPlan, client_gone: Callable[[], Awaitable[bool]]) -> AsyncIterator[list]:
        """Yield blocks of new text (one string per sample), as sampled, until ``plan.length``.

        Stops early, sampling nothing more, once ``client_gone()`` is true (checked between
        blocks) or when the consumer stops iterating.
        """
        blocks = self._counted(
            self.model.sample_blocks(
                plan.seed,
                plan.length,
                plan.options,
                plan.num_samples,
                plan.random_seed,
                plan.engine,
                ban=plan.ban,
                min_p=plan.min_p,
                stop=plan.stop,
                endings=plan.endings,
            )
        )
        self.counters.sampling_now += 1
        finished, sampled = False, 0
        try:
            while True:
                block = await self.call(next, blocks, None)
                if block is None:
                    finished = True
                    return
                sampled += len(block[0])
                yield block
                if sampled >= plan.length:  # done: no further turn on the model's thread just to learn it
                    finished = True
                    return
                if await client_gone():
                    return
        finally:
            self.counters.sampling_now -= 1
            if finished:
                self.counters.samples_finished += 1
            else:
                self.counters.samples_stopped += 1
            # Queued behind any block still being sampled; never awaited, so it runs even when
            # this coroutine is being cancelled.
            self._executor.submit(blocks.close)

    def _counted(self, blocks):
        """``blocks``, counting on the model's thread every character the API samples."""
        try:
            for block in blocks:
                self.counters.characters_sampled += sum(len(text) for text in block)
                yield block
        finally:
            blocks.close()

    async def evaluate(self, text: str, protocol: str, window: int | None, client_gone: Callable[[], Awaitable[bool]]):
        """``TextModel.evaluate`` on a string, taking turns with every other request on the model's thread.

        Returns:
            The ``EvaluationReport``, or ``None`` when ``client_gone()`` became true (checked
            between turns) and the evaluation was stopped.
        Raises:
            EvaluationError, UnknownCharactersError: the text cannot be evaluated.
        """
        evaluation = TurnTaking(
            functools.partial(
                self.model.evaluate,
                text,
                protocol=protocol,
                window=window or 256,
                characters_per_call=EVALUATION_CHARACTERS_PER_TURN,
            )
        )
        self.counters.evaluating_now += 1
        finished = False
        try:
            while not await self.call(evaluation.turn):
                self.counters.evaluation_turns += 1
                if await client_gone():
                    return None
            finished = True
            return evaluation.result()
        finally:
            self.counters.evaluating_now -= 1
            if finished:
                self.counters.evaluations_finished += 1
            else:
                self.counters.evaluations_stopped += 1
            # As for a sample: queued on the model's thread, so the stopped evaluation unwinds
            # there while nothing else runs, even when this coroutine is being cancelled.
            self._executor.submit(evaluation.stop)

    async def inspect(self, text: str, top_k: int, units: list, client_gone: Callable[[], Awaitable[bool]]):
        """``TextModel.inspect``'s records, a piece of ``inspect.CHUNK`` characters per turn of the model's thread.

        Returns:
            The ``Inspection``, or ``None`` when ``client_gone()`` became true (checked between turns).
        Raises:
            InspectionError: the text or a unit cannot be inspected.
        """
        from shakegen.use import inspect as inspection

        model = self.model
        chosen = [inspection.parse_unit(unit, model.engine.num_layers, model.engine.layers[0].units) for unit in units]
        known, left_out = inspection.prepare_text(model.info, text, max_characters=self.limits.max_inspect_characters)
        inspection.check_request(model.engine, top_k, chosen)
        pieces = inspection.iter_records(
            model.engine, model.info.vocab.chars, model.info.vocab.encode(known), top_k=top_k, units=chosen
        )
        records = []
        try:
            while True:
                piece = await self.call(next, pieces, None)
                if piece is None:
                    return inspection.Inspection(known, records, left_out, None)
                records.extend(piece[0])
                if await client_gone():
                    return None
        finally:
            self._executor.submit(pieces.close)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Stopped(BaseException):
    """Raised inside a paused evaluation to end it (a BaseException: no ``except Exception`` swallows it)."""


class TurnTaking:
    """Run ``function(progress=...)`` one step at a time, a step being what lies between two calls of ``progress``.

    ``function`` runs on a thread of its own but only while a caller of ``turn`` waits, so two
    threads never run it and the caller's work at once: ``turn`` lets it run to its next
    ``progress`` call (or its end) and returns whether it has ended. ``stop`` ends it early by
    raising inside the paused ``progress`` call.
    """

    def __init__(self, function: Callable):
        self._function = function
        self._resume, self._paused = threading.Semaphore(0), threading.Semaphore(0)
        self._thread = threading.Thread(target=self._run, name="shakegen-evaluation", daemon=True)
        self._started = self._ended = self._stopping = False
        self._value = self._error = None

    def turn(self) -> bool:
        """Let the function run one step; True once it has ended (returned or raised)."""
        if self._ended:
            return True
        if not self._started:
            self._started = True
            self._thread.start()
        else:
            self._resume.release()
        self._paused.acquire()
        return self._ended

    def result(self):
        """The function's return value, or its exception raised again."""
        if self._error is not None:
            raise self._error
        return self._value

    def stop(self) -> None:
        """End the function where it paused and wait until it has unwound; nothing if it never started."""
        if self._started and not self._ended:
            self._stopping = True
            self._resume.release()
            self._paused.acquire()

    def _run(self) -> None:
        try:
            self._value = self._function(progress=self._pause)
        except _Stopped:
            pass
        except BaseException as error:  # handed to the caller of result()
            self._error = error
        finally:
            self._ended = True
            self._paused.release()

    def _pause(self, *progress) -> None:
        self._paused.release()
        self._resume.acquire()
        if self._stopping:
            raise _Stopped()


def run_name(model) -> str:
    """The run folder's name (never its full path: a client has no business with the server's disk)."""
    return model.run_dir.name or model.run_dir.resolve().name


def model_card(model, limits: Limits) -> dict:
    """What ``GET /v1/model`` answers: the run, its architecture, how well and how long it trained
    (up to the weights served, as ``shakegen eval`` reports it), and which engine serves it."""
    from shakegen.use import report, sampling

    config, state = model.config, model.saved_state
    last_state = state if model.which == "last" else checkpoint.last_state(model.run_dir)
    # best.npz records its own validation loss; last.npz only the best one so far.
    validation_loss = state.get("val_loss") if model.which == "best" else None
    _, _, elapsed = report.reached(model.run_dir, model.which, state, last_state)
    return {
        "run": run_name(model),
        "which": model.which,
        "cell": config.cell,
        "num_layers": config.num_layers,
        "rnn_units": config.rnn_units,
        "embedding_dim": config.embedding_dim,
        "parameters": model.info.parameters,
        "vocabulary": model.vocabulary,
        "vocabulary_size": len(model.vocabulary),
        "validation_loss": validation_loss,
        "validation_perplexity": math.exp(validation_loss) if validation_loss is not None else None,
        "best_validation_loss": last_state.get("best_val_loss", validation_loss),
        "epoch": state.get("epoch"),
        "step": state.get("step", state.get("global_step")),
        "training_minutes": elapsed / 60 if elapsed is not None else None,
        "training_precision": config.precision,
        "engine": model.engine_choice,  # auto, numpy or tensorflow (shakegen serve --engine)
        "generate_engine": model.sampling_engine(1),  # what samples a single request
        "tensorflow_from_samples": sampling.TENSORFLOW_FROM_SAMPLES if model.engine_choice == "auto" else None,
        "evaluate_engine": model.engine_choice
        if model.engine_choice != "auto"
        else f"numpy up to {sampling.ENGINE_EVALUATE_CHARACTERS:,} predicted characters, else tensorflow",
        "parent": _parent(model),
        "shakegen_version": shakegen.__version__,
        "limits": limits.to_json(),
    }


PARENT_FIELDS = ("run", "sha256", "val_loss", "step", "vocab_size")  # never a path: that is the server's disk


def _parent(model):
    """The run a fine-tuned run started from (its folder's bare name, weights' SHA-256, validation
    loss, step, vocabulary size), where the run records one; else None. The run is recorded as
    the user typed it (perhaps an absolute path): only its last part is shown."""
    for holder in (model, model.info, model.info.data):
        parent = holder.get("parent") if isinstance(holder, dict) else getattr(holder, "parent", None)
        if isinstance(parent, dict):
            shown = {key: parent[key] for key in PARENT_FIELDS if key in parent}
            if shown.get("run") is not None:
                shown["run"] = bare_name(str(shown["run"]))
            return shown
        if parent is not None:
            return bare_name(str(parent))
    return None


def bare_name(run: str) -> str:
    """The last part of a run's name as typed (``/home/me/runs/base/`` -> ``base``; ``pretrained`` stays)."""
    parts = [part for part in run.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    return parts[-1] if parts else run
