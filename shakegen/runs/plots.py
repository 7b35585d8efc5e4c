"""PNG plots of training curves (matplotlib, drawn off-screen); callers decide where they go."""

from __future__ import annotations

import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def loss_curves_png(history: list[dict], title: str) -> bytes:
    """Train and validation loss against epoch, one point per history row."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    axis.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    axis.plot(epochs, [row["val_loss"] for row in history], marker="o", label="validation (streaming)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _png(figure)


def compare_png(curves: dict[str, list[list[dict]]], title: str) -> bytes:
    """Validation loss of several cells against training minutes and characters seen.

    ``curves`` maps a cell to one history per seed. Against characters (the same for every
    seed at each validation) the line is the mean over seeds and the band its range; against
    minutes each seed is drawn on its own, since their clocks differ.
    """
    import numpy as np

    plt = _pyplot()
    figure, (by_time, by_characters) = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
    for label, histories in curves.items():
        points = min(len(history) for history in histories)
        losses = np.array([[row["val_loss"] for row in history[:points]] for history in histories])
        characters = np.array([row["characters_seen"] / 1e6 for row in histories[0][:points]])
        (line,) = by_characters.plot(characters, losses.mean(axis=0), marker="o", markersize=3, label=label)
        if len(histories) > 1:
            by_characters.fill_between(
                characters, losses.min(axis=0), losses.max(axis=0), alpha=0.2, color=line.get_color()
            )
        for index, history in enumerate(histories):
            by_time.plot(
                [row["elapsed_seconds"] / 60 for row in history],
                [row["val_loss"] for row in history],
                marker="o",
                markersize=3,
                color=line.get_color(),
                alpha=1.0 if len(histories) == 1 else 0.6,
                label=label if index == 0 else None,
            )
    by_time.set_xlabel("training minutes")
    by_characters.set_xlabel("characters seen (millions)")
    by_time.set_ylabel("validation loss (nats per character)")
    for axis in (by_time, by_characters):
        axis.grid(alpha=0.3)
    by_time.legend()
    figure.suptitle(title)
    return _png(figure)
