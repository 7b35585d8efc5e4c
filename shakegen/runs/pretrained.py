"""The pretrained model that ships inside the package: where it is, its card, and what its files may name.

The bundle is a run folder like any other (``config.json``, ``best.npz``, ``history.csv``) whose
weights are stored in float16 to keep the package small and whose files name no path of the
machine that built it (``portable_run_config``), plus ``pretrained.json`` (its card):
the command that trained it, the date and processor of the build, the training minutes at the
best epoch, and its validation loss on the embedded corpus under both protocols, evaluated from
the float16 weights as they ship (float32 arithmetic). ``shakegen generate``, ``eval``,
``export`` and ``serve`` fall back to it when no run exists under ``checkpoints/``;
``--checkpoint pretrained`` (``shakegen.load("pretrained")``) names it anywhere.

Build it from a finished run (see README.md, "The pretrained model"):

    python -m shakegen.runs.pretrained RUN_DIR --command "shakegen train ..."
"""

from __future__ import annotations

import json
from pathlib import Path

from shakegen.errors import CheckpointError
from shakegen.runs import checkpoint

BUNDLE_DIR = Path(__file__).parents[1] / "pretrained_model"
CARD_FILE = "pretrained.json"
MAX_BYTES = 10 * 1024 * 1024
STORAGE_TOLERANCE = 0.002  # nats per character float16 storage may move the validation loss by


def available(bundle_dir: Path | None = None) -> bool:
    """Whether a pretrained model ships (in ``bundle_dir``, default ``BUNDLE_DIR``)."""
    bundle_dir = BUNDLE_DIR if bundle_dir is None else bundle_dir
    return (bundle_dir / checkpoint.CONFIG_FILE).is_file() and (bundle_dir / checkpoint.BEST_FILE).is_file()


def card(bundle_dir: Path | None = None) -> dict:
    """What ``pretrained.json`` records: command, date, processor and validation figures."""
    path = (BUNDLE_DIR if bundle_dir is None else bundle_dir) / CARD_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"The pretrained model's card {path} is missing or damaged ({error}).") from None


def portable_run_config(raw: dict) -> dict:
    """A copy of a run's config.json (as read) naming no path of this machine.

    ``data.source`` becomes the corpus's bare file name, a fine-tuned run's ``parent.run``
    its bare folder name (``"pretrained"`` stays), and ``parent.path`` goes; everything else
    (the parent's SHA-256 included) is kept as it is.
    """
    values = json.loads(json.dumps(raw))  # a deep copy
    data = values.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        data["source"] = _bare_name(data["source"])
    parent = values.get("parent")
    if isinstance(parent, dict):
        parent.pop("path", None)
        if isinstance(parent.get("run"), str):
            parent["run"] = _bare_name(parent["run"])
    return values


def _bare_name(path: str) -> str:
    """The last part of a path written on any system (``/`` or ``\\``), trailing separators ignored."""
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    return parts[-1] if parts else path
