"""The divergence guard: a run whose loss is non-finite, or has exploded, stops before anything bad is saved."""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

from shakegen.config import TrainConfig
from shakegen.errors import TrainingDiverged

EXPLOSION_FACTOR = 3.0  # char-rnn's rule: the loss passed three times its first value
EXPLOSION_WINDOW = 8  # steps averaged before comparing with the threshold


class ExplosionGuard:
    """Stops a run whose loss is non-finite, or has clearly exploded while staying finite.

    Exploded: the mean training loss over the last ``EXPLOSION_WINDOW`` steps is above both
    ``EXPLOSION_FACTOR`` times the first loss of this process (the run's start or its resume)
    and ln(vocabulary), the loss of a uniform guess. A validation loss above the same
    threshold counts too. Either way nothing from the bad span is saved.
    """

    def __init__(self, vocab_size: int, run_dir: Path, config: TrainConfig):
        self.uniform_loss = math.log(vocab_size)
        self.run_dir, self.config = run_dir, config
        self.first_loss: float | None = None
        self.recent: deque[float] = deque(maxlen=EXPLOSION_WINDOW)

    @property
    def threshold(self) -> float:
        first = self.uniform_loss if self.first_loss is None else self.first_loss
        return max(EXPLOSION_FACTOR * first, self.uniform_loss)

    def check_step(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            self._stop(f"The training loss became {loss} at step {step}")
        if self.first_loss is None:
            self.first_loss = loss
        self.recent.append(loss)
        mean = sum(self.recent) / len(self.recent)
        if mean > self.threshold:
            self._stop(
                f"The training loss exploded: {mean:.4g} (mean of the last {len(self.recent)} steps) at step {step}, "
                f"above {self.threshold:.4g} ({EXPLOSION_FACTOR:g} × the first loss {self.first_loss:.4g} and above "
                f"ln {math.exp(self.uniform_loss):.0f}, a uniform guess)"
            )

    def check_validation(self, loss: float, step: int) -> None:
        if not math.isfinite(loss) or loss > self.threshold:
            self._stop(f"The validation loss became {loss:.4g} at step {step} (limit {self.threshold:.4g})")

    def _stop(self, what: str):
        clip = f"--clip-norm (now {self.config.clip_norm:g})" if self.config.clip_norm else "--clip-norm 1"
        raise TrainingDiverged(
            f"{what}; stopped. The last good checkpoint in {self.run_dir} is kept. "
            f"Lower --learning-rate (now {self.config.learning_rate:g}) or set {clip}, then --resume."
        )
