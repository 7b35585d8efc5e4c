"""Tiny runs trained inside a test, for the cases conftest's ``trained_run`` does not cover.

Training is deterministic (same corpus bytes, same settings, same weights), so each distinct
run is trained once per test process and copied for every later request: a copy holds the same
files a fresh training would write, and a test may change or damage its copy freely.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from tests.conftest import SMALL_CONFIG as TINY  # conftest's trained_run is this same run

_TRAINED: dict[tuple, Path] = {}  # (corpus bytes' SHA-256, encoding, settings) -> its folder in the cache
_CACHE: list[Path] = []  # this process's folder of trained runs, removed when the process ends


def train_tiny_run(folder: Path, text: str, *, encoding: str = "utf-8", **overrides) -> Path:
    """Prepare ``text`` (written to disk in ``encoding``) in ``folder``/data and train a tiny run on it.

    Returns the run folder, ``folder``/run; ``overrides`` change the tiny configuration.
    """
    from shakegen.config import TrainConfig
    from shakegen.data import prepare
    from shakegen.training.trainer import train

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = text.encode(encoding)
    key = (hashlib.sha256(raw).hexdigest(), encoding, tuple(sorted({**TINY, **overrides}.items())))
    if key not in _TRAINED:
        if not _CACHE:
            _CACHE.append(Path(tempfile.mkdtemp(prefix="shakegen-test-runs-")))
            atexit.register(shutil.rmtree, _CACHE[0], ignore_errors=True)
        trained = _CACHE[0] / str(len(_TRAINED))
        trained.mkdir()
        (trained / "corpus.txt").write_bytes(raw)
        prepare.prepare_corpus(trained / "corpus.txt", trained / "data", prepare.PrepareOptions(encoding=encoding))
        train(TrainConfig(**{**TINY, **overrides}), trained / "run", trained / "data")
        _TRAINED[key] = trained
    for name in ("data", "run"):
        shutil.copytree(_TRAINED[key] / name, folder / name)
    shutil.copy2(_TRAINED[key] / "corpus.txt", folder / "corpus.txt")
    return folder / "run"
