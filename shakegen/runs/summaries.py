"""TensorBoard logs: scalars written with tf.summary under ``<run-dir>/logs/``.

Scalars are written with TensorFlow's own ``tf.summary.write`` and the metadata of
TensorBoard's scalar plugin, so training needs no TensorBoard install; viewing does
(``pip install tensorboard``, then ``tensorboard --logdir checkpoints``). The step axis
is the optimizer's global step, so a resumed run continues the same curves: on resume, the
points a stopped process wrote past the step it resumes from are first trimmed from the event
files (``trim``), so no step holds two points (TensorBoard would show either).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from shakegen import fileio

LOG_EVERY = 10  # training scalars: one point (the mean) per this many steps


class ScalarLog:
    """Writes named scalars at a global step; the CLI never sees it."""

    def __init__(self, log_dir: str | Path):
        from shakegen.model.backend import tf

        self._tf = tf
        # A suffix of our own: two writers opened within a second by one process (a resume in
        # the same Python session) would otherwise share a file name and the second would
        # overwrite the first.
        self._writer = tf.summary.create_file_writer(str(log_dir), filename_suffix=f".{uuid.uuid4().hex[:12]}")
        plugin = tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        self._metadata = tf.compat.v1.SummaryMetadata(plugin_data=plugin)

    def write(self, step: int, values: dict[str, float]) -> None:
        tf = self._tf
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=self._metadata)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def trim(log_dir: str | Path, up_to_step: int, prefix: str = "events.out.tfevents.") -> int:
    """Drop the summaries after ``up_to_step`` from every event file in ``log_dir``; return how many.

    A file is rewritten (atomically: a temporary beside it, then a rename) only when it holds
    such points; its other records (the file version) stay. A record cut short by a killed
    writer ends the file there.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return 0
    from shakegen.model.backend import tf

    dropped = 0
    for path in sorted(log_dir.glob(prefix + "*")):
        kept, removed = [], 0
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.HasField("summary") and event.step > up_to_step:
                    removed += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:  # a killed writer's last record: the rest is lost anyway
            removed += 1
        if removed:
            _rewrite_records(path, kept)
            dropped += removed
    return dropped


def _rewrite_records(path: Path, records: list[bytes]) -> None:
    from shakegen.model.backend import tf

    fileio.remove_stale_temporaries(path.parent, path.name)  # a trim killed before: this process holds the run
    with fileio.atomic_path(path) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
        for record in records:  # TFRecord framing, with its checksums
            writer.write(record)


class TrainingLog:
    """Averages training scalars over ``LOG_EVERY`` steps before writing them."""

    def __init__(self, log: ScalarLog | None):
        self.log = log
        self._losses: list[float] = []
        self._seconds = 0.0
        self._characters = 0

    def step(self, step: int, loss: float, learning_rate_of, characters: int, seconds: float) -> None:
        if self.log is None:
            return
        self._losses.append(loss)
        self._characters += characters
        self._seconds += seconds
        if len(self._losses) >= LOG_EVERY:
            self.log.write(
                step,
                {
                    "train/loss": sum(self._losses) / len(self._losses),
                    "train/learning_rate": learning_rate_of(step),
                    "train/characters_per_second": self._characters / max(self._seconds, 1e-9),
                },
            )
            self._losses, self._characters, self._seconds = [], 0, 0.0

    def validation(self, row: dict) -> None:
        if self.log is None:
            return
        self.log.write(
            int(row["step"]),
            {
                "validation/loss": row["val_loss"],
                "validation/perplexity": row["val_perplexity"],
                "validation/bits_per_character": row["val_bits_per_character"],
                "train/loss_since_last_validation": row["train_loss"],
            },
        )
        self.log.flush()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
