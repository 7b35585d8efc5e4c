"""What one request to ``shakegen serve`` may ask for: caps set by the server's flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shakegen.config import MAX_RANDOM_SEED  # noqa: F401  (as everywhere; sample i uses (random_seed + i) mod 2**32)
from shakegen.errors import ConfigError

MAX_TEMPERATURE = 10.0  # far past where text is noise; keeps the field's range finite


@dataclass(frozen=True)
class Limits:
    """Caps on a request.

    Args:
        max_length: new characters per sample.
        max_seed_characters: characters of the seed (before cleaning).
        max_samples: samples in one request.
        max_request_bytes: bytes of a request body.
        max_evaluate_characters: characters of a text sent to /v1/evaluate (as sent, before
            cleaning). Scoring takes turns with sampling, so a long text slows other clients
            down rather than stalling them; this bounds how long one request holds its share.
        max_inspect_characters: characters of a text sent to /v1/inspect (as sent). It is
            inspected in turns too, a piece of 1,024 characters per turn.
    """

    max_length: int = 5000
    max_seed_characters: int = 10_000
    max_samples: int = 8
    max_request_bytes: int = 1_048_576
    max_evaluate_characters: int = 200_000  # the Tiny Shakespeare val split (111,540) fits
    max_inspect_characters: int = 20_000  # /v1/inspect answers ~150 bytes per character: 3 MB at most

    def validate(self) -> "Limits":
        """Return self, or raise ConfigError naming the bad cap."""
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        return self

    def to_json(self) -> dict:
        return asdict(self)
