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


def compare_png(curves: dict[str, list[dict]], title: str) -> bytes:
    """Validation loss of several runs against training minutes and characters seen."""
    plt = _pyplot()
    figure, (by_time, by_characters) = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
    for label, history in curves.items():
        losses = [entry["val_loss"] for entry in history]
        by_time.plot([entry["elapsed_seconds"] / 60 for entry in history], losses, marker="o", label=label)
        by_characters.plot([entry["characters_seen"] / 1e6 for entry in history], losses, marker="o", label=label)
    by_time.set_xlabel("training minutes")
    by_characters.set_xlabel("characters seen (millions)")
    by_time.set_ylabel("validation loss (nats per character)")
    for axis in (by_time, by_characters):
        axis.grid(alpha=0.3)
    by_time.legend()
    figure.suptitle(title)
    return _png(figure)
