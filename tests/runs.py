"""Tiny runs trained inside a test, for the cases conftest's ``trained_run`` does not cover."""

from __future__ import annotations

from pathlib import Path

TINY = dict(
    embedding_dim=8, rnn_units=16, seq_length=16, batch_size=8, epochs=2, learning_rate=1e-2, final_learning_rate=1e-3
)


def train_tiny_run(folder: Path, text: str, *, encoding: str = "utf-8", **overrides) -> Path:
    """Prepare ``text`` (written to disk in ``encoding``) in ``folder``/data and train a tiny run on it.

    Returns the run folder, ``folder``/run; ``overrides`` change the tiny configuration.
    """
    from shakegen.config import TrainConfig
    from shakegen.data import prepare
    from shakegen.training.trainer import train

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "corpus.txt"
    source.write_bytes(text.encode(encoding))
    prepare.prepare_corpus(source, folder / "data", prepare.PrepareOptions(encoding=encoding))
    train(TrainConfig(**{**TINY, **overrides}), folder / "run", folder / "data")
    return folder / "run"
