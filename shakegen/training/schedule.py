"""How long a run trains and how fast: the budget it stops at, and the learning rate along the way.

``stop_reason`` names the limit a run has reached, ``validation_due`` says when a validation
falls inside an epoch; ``schedule_steps`` counts the budget in optimizer steps, and
``learning_rate_schedule`` plans the learning rate over that many steps.
"""

from __future__ import annotations

import math

from shakegen.config import TrainConfig

LIMITS_WITHIN_EPOCHS = ("max_steps", "max_minutes", "max_characters")  # may stop a run inside an epoch


def stop_reason(config: TrainConfig, state) -> str | None:
    """The limit ``state`` (a ``TrainState``) has reached, or None while training goes on."""
    if state.epoch >= config.epochs:
        return "epochs"
    if config.max_steps and state.global_step >= config.max_steps:
        return "max_steps"
    if config.max_minutes and state.elapsed_seconds >= config.max_minutes * 60:
        return "max_minutes"
    if config.max_characters and state.characters_seen >= config.max_characters:
        return "max_characters"
    if config.patience and state.validations_since_best >= config.patience:
        return "patience"
    return None


def validation_due(config: TrainConfig, state) -> bool:
    """Whether ``--eval-every`` steps have passed since the last validation (never without it)."""
    every = config.eval_every
    return bool(every) and state.global_step - state.last_validation_step >= every


def schedule_steps(config: TrainConfig, steps_per_epoch: int) -> tuple[int, str]:
    """How many optimizer steps the learning-rate schedule spans, and which budget set it.

    The budget the run will stop at: the fewest steps among the planned epochs, ``max_steps``
    and ``max_characters`` (in steps of ``batch_size × seq_length``). ``max_minutes`` cannot
    be counted in steps, so alone it leaves the schedule to the epochs (``"epochs"``).
    """
    budgets = {"epochs": config.epochs * steps_per_epoch}
    if config.max_steps:
        budgets["max_steps"] = config.max_steps
    if config.max_characters:
        budgets["max_characters"] = character_steps(config)
    basis = min(budgets, key=lambda name: (budgets[name], name != "epochs"))
    return max(1, budgets[basis]), basis


def character_steps(config: TrainConfig) -> int:
    """The optimizer steps ``max_characters`` takes: each trains on ``batch_size × seq_length`` characters."""
    return math.ceil(config.max_characters / (config.batch_size * config.seq_length))


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate at each optimizer step: Keras's ``CosineDecay``.

    Linear warm-up from 0 to learning_rate over warmup_steps (Keras's ``warmup_target``), then
    a cosine to final_learning_rate (``alpha``, as a fraction of the peak) at the end of the
    budget (``schedule_steps``), or constant (``alpha`` 1). Past the end it stays at the final rate.
    """
    from shakegen.model.backend import keras

    total, _ = schedule_steps(config, steps_per_epoch)
    peak, warmup = config.learning_rate, config.warmup_steps
    alpha = 1.0 if config.lr_schedule == "constant" else config.final_learning_rate / peak
    decay_steps = max(1, total - warmup)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=alpha, warmup_target=peak, warmup_steps=warmup
    )
