"""The one thread that runs the model, and the model's card.

Every call into TensorFlow goes through one worker thread, so TensorFlow is never entered
from two threads at once and the event loop stays free (``/healthz`` answers while a long
sample runs). A sample advances one block (64 characters) per call: requests that arrive
together take turns block by block, each with its own sampling generator, so they never
share state, and one that is abandoned (its client gone) simply gets no further blocks.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import shakegen
from shakegen import checkpoint
from shakegen.serve.limits import Limits


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


@dataclass
class Counters:
    """What ``/healthz`` reports: requests sampling now, and what sampling has done so far."""

    sampling_now: int = 0
    samples_finished: int = 0
    samples_stopped: int = 0  # stopped early: the client went away
    characters_sampled: int = 0

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
    ) -> GenerationPlan:
        """Validate a request the way ``TextModel.generate`` and ``shakegen generate`` do (no TensorFlow).

        Raises:
            SamplingError, UnknownCharactersError: bad options or seed.
        """
        options = self.model.sampling_options(temperature, top_k, top_p)
        # TextModel.generate's rule: no seed primes a newline and the text is only what follows it.
        text, dropped = ("\n", []) if seed is None else self.model.seed_text(seed, skip_unknown)
        if random_seed is None:  # drawn as the CLI draws it, and reported so the text can be had again
            random_seed = int.from_bytes(os.urandom(4), "little") >> 1
        prefix = "" if seed is None else text
        return GenerationPlan(text, prefix, length, options, num_samples, random_seed, dropped)

    async def sample(self, plan: GenerationPlan, client_gone: Callable[[], Awaitable[bool]]) -> AsyncIterator[list]:
        """Yield blocks of new text (one string per sample), as sampled, until ``plan.length``.

        Stops early, sampling nothing more, once ``client_gone()`` is true (checked between
        blocks) or when the consumer stops iterating.
        """
        blocks = self._counted(
            self.model.sample_blocks(plan.seed, plan.length, plan.options, plan.num_samples, plan.random_seed)
        )
        self.counters.sampling_now += 1
        finished = False
        try:
            while True:
                block = await self.call(next, blocks, None)
                if block is None:
                    finished = True
                    return
                yield block
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

    async def evaluate(self, text: str, protocol: str, window: int | None):
        """``TextModel.evaluate`` on a string, on the model's thread."""
        return await self.call(self.model.evaluate, text, protocol=protocol, window=window or 256)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def run_name(model) -> str:
    """The run folder's name (never its full path: a client has no business with the server's disk)."""
    return model.run_dir.name or model.run_dir.resolve().name


def model_card(model, limits: Limits) -> dict:
    """What ``GET /v1/model`` answers: the run, its architecture, how well and how long it trained."""
    config, state = model.config, model.saved_state
    last_state = state if model.which == "last" else checkpoint.last_state(model.run_dir)
    # best.npz records its own validation loss; last.npz only the best one so far.
    validation_loss = state.get("val_loss") if model.which == "best" else None
    elapsed = last_state.get("elapsed_seconds")
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
        "parent": _parent(model),
        "shakegen_version": shakegen.__version__,
        "limits": limits.to_json(),
    }


def _parent(model):
    """The run a fine-tuned run started from (its name, weights' SHA-256, validation loss), where
    the run records one; else None. Never its path: that is the server's disk."""
    for holder in (model, model.info, model.info.data):
        parent = holder.get("parent") if isinstance(holder, dict) else getattr(holder, "parent", None)
        if isinstance(parent, dict):
            return {key: value for key, value in parent.items() if key != "path"}
        if parent is not None:
            return Path(str(parent)).name
    return None
