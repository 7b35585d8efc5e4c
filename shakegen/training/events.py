"""Progress events: what training and comparison report while they run, one small class each.

The library never prints; it calls ``progress(event)`` with one of these, and the command
line (``cli.train_display.TrainDisplay``) renders them. A new kind of event is a new class here, so a
misspelt one fails where it is written instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Preparing:
    """Nothing was prepared, so training prepares ``which`` corpus into ``data_dir`` first."""

    which: str
    data_dir: str


@dataclass(frozen=True)
class Notice:
    """A warning worth a line (for instance: the prepared data differs from the run's)."""

    message: str


@dataclass(frozen=True)
class FineTuning:
    """A new run starts from ``base``'s best weights; its vocabulary grew by ``added``."""

    base: str  # the base's run folder
    base_val_loss: float | None  # the base's best validation loss, on its own corpus
    base_characters: int  # characters the base knows: they keep ids 0 .. base_characters - 1
    added: tuple[str, ...]  # characters new to the base, appended in this order
    unused: int  # characters the base knows that this corpus lacks (kept all the same)


@dataclass(frozen=True)
class Started:
    """Training is about to take its first step (of a new run or a resumed one)."""

    layers: list  # (name, kind, parameters) per layer
    parameters: int
    steps_per_epoch: int
    config: Any  # TrainConfig
    resumed: bool
    state: Any  # TrainState
    run_dir: str
    replicas: int
    val_characters: int  # characters of the validation split that validation scores
    val_split_characters: int  # characters in the whole validation split


@dataclass(frozen=True)
class Schedule:
    """How long the learning-rate schedule is: ``steps`` optimizer steps, set by the ``basis`` budget.

    ``basis`` is ``epochs``, ``max_steps`` or ``max_characters``; ``minutes_budget``: a
    ``max_minutes`` budget is set too, which cannot be counted in steps.
    """

    steps: int
    basis: str
    lr_schedule: str  # cosine or constant
    minutes_budget: bool


@dataclass(frozen=True)
class Stepped:
    """One optimizer step finished."""

    epoch: int  # 1-based epoch the step belongs to
    step: int  # steps done in this epoch
    steps: int  # steps in this epoch
    loss: float
    perplexity: float  # of the training loss since the last validation
    characters_per_second: float


@dataclass(frozen=True)
class Validating:
    """Streaming validation starts."""


@dataclass(frozen=True)
class Validated:
    """Validation finished; ``row`` is the history.csv row just written."""

    row: dict
    improved: bool
    wall_seconds: float


@dataclass(frozen=True)
class Checkpointed:
    """last.npz was written inside an epoch (``--checkpoint-minutes``)."""

    step: int
    path: str


@dataclass(frozen=True)
class Finished:
    """Training stopped for ``reason`` (epochs, max_steps, max_minutes, patience)."""

    reason: str
    state: Any  # TrainState


@dataclass(frozen=True)
class CellStarted:
    """``compare`` moves on to ``cell``; ``skipped`` when its run had already finished."""

    cell: str
    skipped: bool


Event = (
    Preparing
    | Notice
    | FineTuning
    | Started
    | Schedule
    | Stepped
    | Validating
    | Validated
    | Checkpointed
    | Finished
    | CellStarted
)
Progress = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A progress callback that drops every event."""
