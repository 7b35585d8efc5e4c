"""The one thread that runs the model: sample blocks, evaluation and inspection turns, beams and suggestions.

Every call into the model (the NumPy engine, or TensorFlow where it pays) goes through one
worker thread, so the model is never entered from two threads at once and the event loop
stays free (``/healthz`` answers while a long sample runs). A sample advances one block (64
characters) per call: requests that arrive together take turns block by block, each with its
own sampling generator, so they never share state, and one that is abandoned (its client
gone) simply gets no further blocks.

An evaluation takes turns too: ``TextModel.evaluate`` runs on a thread of its own that
enters the model only while the model's thread waits for it (``turns.TurnTaking``), one call
of at most ``EVALUATION_CHARACTERS_PER_TURN`` characters for its engine (one window of every
stream, or one batch of windows) per turn, and pauses in its ``progress`` callback until its
next turn. Queued sampling blocks run between its turns, so a long text slows other clients
down instead of stalling them, and an evaluation whose client has gone is stopped at its next
turn. The figure is ``TextModel.evaluate``'s own, computed by the same code.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

import shakegen
from shakegen.serve.card import model_card
from shakegen.serve.generation_plan import GenerationPlan
from shakegen.serve.limits import Limits
from shakegen.serve.turns import TurnTaking

# Characters an evaluation scores per turn of the model's thread, by the engine that scores it:
# small enough that a sampling block queued behind it waits a fraction of a second, large enough
# to keep batches efficient. TensorFlow scores 32 streams side by side; the NumPy engine one
# character after another (about 3,000 a second on the pretrained model), hence its smaller turns.
EVALUATION_CHARACTERS_PER_TURN = {"tensorflow": 4096, "numpy": 256}


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

    async def beam(self, seed: str | None, length: int, beams: int, **options) -> list[dict]:
        """``TextModel.beam_search`` on the model's thread (one turn: the search is bounded by MAX_BEAMS and
        MAX_BEAM_LENGTH). Raises SamplingError, UnknownCharactersError: bad options or seed."""
        return await self.call(self.model.beam_search, seed, length, beams, **options)

    async def suggest(self, text: str, count: int, temperature: float, random_seed: int, ban: str | None) -> dict:
        """``shakegen write``'s proposals for ``text`` (on the model's thread): next characters and words, and a
        continuation sampled with ``random_seed``. Raises SamplingError for a bad ban or temperature."""
        return await self.call(_proposals, self.model, text, count, temperature, random_seed, ban)

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

        known, left_out, pieces = _inspection(self.model, text, top_k, units, self.limits.max_inspect_characters)
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


def _proposals(model, text: str, count: int, temperature: float, random_seed: int, ban: str | None) -> dict:
    """What /v1/suggest answers for ``text``: ``shakegen write``'s next characters and words, and a continuation."""
    from shakegen.use import suggest as write

    choice = write.SamplingChoice(temperature=temperature, random_seed=random_seed)
    suggester = write.Suggester(model.engine, model.info.vocab, choice, ban=model.ban_ids(ban))
    return {
        "characters": [{"text": c, "probability": p} for c, p in suggester.next_characters(text, count)],
        "words": [{"text": w, "probability": p} for w, p in suggester.next_words(text, count)],
        "continuation": suggester.continuation(text),
        "random_seed": random_seed,
    }


def _inspection(model, text: str, top_k: int, units: list, max_characters: int):
    """``text`` checked for inspection: its known characters, those left out, and the iterator of record pieces.

    Raises:
        InspectionError: the text or a unit cannot be inspected.
    """
    from shakegen.use import inspect as inspection

    chosen = [inspection.parse_unit(unit, model.engine.num_layers, model.engine.layers[0].units) for unit in units]
    known, left_out = inspection.prepare_text(model.info, text, max_characters=max_characters)
    inspection.check_request(model.engine, top_k, chosen)
    pieces = inspection.iter_records(
        model.engine, model.info.vocab.chars, model.info.vocab.encode(known), top_k=top_k, units=chosen
    )
    return known, left_out, pieces
