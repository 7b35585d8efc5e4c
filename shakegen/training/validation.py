"""Validation during training: the streaming score, the history row, best.npz, and the state they commit.

Persist, then commit: the history row is written first, then best.npz and the run's state
change together in a block no signal interrupts. An interrupt before the commit leaves the
state as it was, so last.npz never records a best that best.npz does not hold, and the
validation is simply done again on resume (rows past the last committed one are dropped then).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from shakegen.runs import checkpoint
from shakegen.use import evaluate

_now = time.monotonic  # the clock of CURVES_SECONDS
# curves.png is redrawn by a validation this long after the last drawing (or the start), and at the end.
CURVES_SECONDS = 30.0


@contextlib.contextmanager
def averaged_weights(model, optimizer, ema_decay: float | None):
    """The model holds the moving average of its weights inside (with --ema-decay), its own after."""
    if not ema_decay:
        yield
        return
    variables = model.trainable_variables
    raw = [variable.numpy() for variable in variables]
    optimizer.finalize_variable_values(variables)  # Keras: assign the averages
    try:
        yield
    finally:
        for variable, value in zip(variables, raw, strict=True):
            variable.assign(value)


class Validation:
    """Scores the model on the validation split, keeps the history and the best weights of one run.

    Args:
        guard: the run's ``ExplosionGuard``: a validation loss past it stops the run, saving nothing.
        learning_rate: the rate at an optimizer step, for the history row.
        chief: only the chief writes history.csv and best.npz.
    """

    def __init__(self, model, val_ids, guard, learning_rate, run_dir: Path, chief: bool):
        self.model, self.val_ids, self.guard, self.learning_rate = model, val_ids, guard, learning_rate
        self.run_dir, self.chief = run_dir, chief
        self.history: list[dict] = []
        self._curves = (_now(), -1)  # when this process last drew curves.png (or started), and how many rows

    def validate(self, state, epoch_steps: int, finished_epoch: bool, signals) -> tuple[dict, bool]:
        """Score the model, then persist the history row (and best.npz), then commit them to ``state``.

        Returns the row and whether it improved on the best. ``signals``: the run's ``Received``.
        """

        validation = evaluate.streaming_cross_entropy(self.model, self.val_ids)  # not counted as training time
        self.guard.check_validation(validation.loss, state.global_step)
        into_epoch = (state.global_step - state.epoch_start_step) / max(epoch_steps, 1)
        row = {
            "epoch": state.epoch + (1 if finished_epoch else into_epoch),
            "step": state.global_step,
            "train_loss": state.train_loss,
            "val_loss": validation.loss,
            "val_perplexity": validation.perplexity,
            "val_bits_per_character": validation.bits_per_character,
            "learning_rate": self.learning_rate(state.global_step),
            "epoch_seconds": state.elapsed_seconds - (self.history[-1]["elapsed_seconds"] if self.history else 0.0),
            "elapsed_seconds": state.elapsed_seconds,
            "characters_seen": state.characters_seen,
        }
        improved = state.best_val_loss is None or validation.loss < state.best_val_loss
        if self.chief:
            rows = [*self.history, row]
            checkpoint.write_history(self.run_dir, rows)  # before last.npz: see checkpoint.py
            if _now() - self._curves[0] >= CURVES_SECONDS:
                self._draw_curves(rows)
        with signals.deferred():  # best.npz and the state it matches change together
            if self.chief and improved:
                best = {"epoch": row["epoch"], "step": state.global_step, "val_loss": validation.loss}
                checkpoint.save(checkpoint.checkpoint_path(self.run_dir, "best"), self.model, best)
            self.history.append(row)
            self._commit(state, row, improved, finished_epoch)
        return row, improved

    def _draw_curves(self, rows: list[dict]) -> None:
        checkpoint.write_curves(self.run_dir, rows)
        self._curves = (_now(), len(rows))

    def finish_curves(self) -> None:
        """At the run's end: curves.png shows every row (a plot costs more than a frequent validation)."""
        if self.chief and self.history and self._curves[1] != len(self.history):
            self._draw_curves(self.history)

    @staticmethod
    def _commit(state, row: dict, improved: bool, finished_epoch: bool) -> None:
        """The validation's mark on the run's state: the best, patience's count, a new epoch."""
        if improved:
            state.best_val_loss, state.best_epoch, state.validations_since_best = row["val_loss"], row["epoch"], 0
        else:
            state.validations_since_best += 1
        state.last_validation_step = state.global_step
        state.train_nll_sum, state.train_count = 0.0, 0
        if finished_epoch:
            state.epoch += 1
            state.epoch_start_step = state.global_step

    def best_windowed_loss(self) -> float | None:
        """The best weights scored as nanoGPT scores (windows of 256 from a zero state), for the summary.

        The streaming figure (history.csv) picks the best checkpoint; this one is for comparing
        with other tools, which measure that way.
        """

        best = checkpoint.checkpoint_path(self.run_dir, "best")
        if not self.chief or not best.is_file():
            return None
        from shakegen.model import inference  # puts off TensorFlow: importing training must not load it

        # Scored on the float32 model the validations scored with (its compiled scoring is
        # traced already), holding the best weights for the while.
        scorer = inference.float32_model(self.model)
        current = [variable.numpy() for variable in scorer.weights]
        checkpoint.load(best, scorer)
        try:
            return evaluate.windowed_cross_entropy(scorer, self.val_ids, window=evaluate.EVAL_WINDOW).loss
        finally:
            for variable, value in zip(scorer.weights, current, strict=True):
                variable.assign(value)
