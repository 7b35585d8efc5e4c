"""The row a scored run reports: its figures beside the uniform and unigram baselines, and when its
weights were reached (epoch, step and training minutes up to them).
"""

from __future__ import annotations

import math

import numpy as np

from shakegen.errors import CheckpointError
from shakegen.runs import checkpoint
from shakegen.use import evaluate
from shakegen.use.evaluate import CrossEntropy, Protocol

BINCOUNT_CHUNK = 1 << 22


def unigram_cross_entropy(counts: np.ndarray, ids: np.ndarray) -> float:
    """Mean cross-entropy (nats) of ``ids`` under the unigram distribution of ``counts``.

    Add-one smoothing keeps characters unseen in training at a finite cost. ``ids`` is
    counted in pieces, so a memory-mapped split is never copied whole.
    """
    probabilities = (np.asarray(counts, np.float64) + 1.0) / (np.sum(counts) + len(counts))
    frequencies = np.zeros(len(counts), np.int64)
    for start in range(0, len(ids), BINCOUNT_CHUNK):
        frequencies += np.bincount(np.asarray(ids[start : start + BINCOUNT_CHUNK]), minlength=len(counts))
    return float(-(frequencies * np.log(probabilities)).sum() / max(len(ids), 1))


def report(
    model,
    info,
    which: str,
    saved_state: dict,
    ids: np.ndarray,
    protocol: Protocol,
    progress=None,
    characters_per_call: int | None = None,
) -> dict:
    """The figures of a loaded run's ``model`` (TensorFlow's or the NumPy engine) on ``ids``.

    Returns:
        A dict naming the run, the protocol (``protocol``, ``window``, ``samples``,
        ``random_seed``) and giving ``characters`` (predictions counted), ``loss`` (nats per
        character), ``perplexity``, ``bits_per_character``, the uniform and unigram
        baselines, and when the weights were reached: epoch, step and training minutes up to
        them (``None`` where the run does not record it).
    """
    result = evaluate.cross_entropy(model, ids, protocol, progress=progress, characters_per_call=characters_per_call)
    return report_row(info, which, saved_state, ids, result, protocol.to_json())


def report_row(info, which: str, saved_state: dict, ids: np.ndarray, result: CrossEntropy, protocol: dict) -> dict:
    """The row ``report`` returns, for a ``result`` already computed on ``ids`` under the protocol whose
    fields are ``protocol`` (they follow ``run`` and ``which``, in their order)."""
    counts = info.data.get("train_counts")
    unigram = unigram_cross_entropy(np.asarray(counts), ids[1:]) if counts else None
    epoch, step, seconds = reached(info.run_dir, which, saved_state)
    return {
        "run": str(info.run_dir),
        "which": which,
        **protocol,
        "cell": info.config.cell,
        "parameters": info.parameters,
        "characters": result.count,
        "loss": result.loss,
        "perplexity": result.perplexity,
        "bits_per_character": result.bits_per_character,
        "uniform_perplexity": float(len(info.vocab)),
        "unigram_perplexity": math.exp(unigram) if unigram is not None else None,
        "epoch": epoch,
        "step": step,
        "training_minutes": seconds / 60 if seconds is not None else None,
    }


def reached(run_dir, which: str, saved_state: dict, last_state: dict | None = None):
    """(epoch, step, training seconds) up to the ``which`` weights whose saved state is ``saved_state``:
    the best weights' own (their history row's seconds when their state lacks them), else the run's last."""

    if which == "best":
        epoch, step = saved_state.get("epoch"), saved_state.get("step")
        return epoch, step, _seconds_at(run_dir, saved_state, step)
    last_state = checkpoint.last_state(run_dir) if last_state is None else last_state
    return last_state.get("epoch"), last_state.get("global_step"), last_state.get("elapsed_seconds")


def _seconds_at(run_dir, saved_state: dict, step) -> float | None:
    """Training seconds up to the best weights: their own state's, else history.csv's row at their step."""

    if saved_state.get("elapsed_seconds") is not None:
        return float(saved_state["elapsed_seconds"])
    if step is None:
        return None
    try:
        history = checkpoint.read_history(run_dir)
    except CheckpointError:
        return None
    reached = [row.get("elapsed_seconds") for row in history if row.get("step") == step]
    return reached[-1] if reached else None
