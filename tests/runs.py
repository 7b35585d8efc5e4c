"""Tiny runs trained inside a test, for the cases conftest's ``trained_run`` does not cover.

Training is deterministic (same corpus bytes, same settings, same weights), so each distinct
run is trained once per test session and copied for every later request: a copy holds the same
files a fresh training would write, and a test may change or damage its copy freely. The
trained runs live in one folder that every pytest-xdist worker of the session shares (conftest
points ``CACHE`` at it); a lock per run makes a second worker wait for the first one's training
instead of doing it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tests.conftest import SMALL_CONFIG as TINY  # conftest's trained_run is this same run

CACHE: Path | None = None  # the session's folder of trained runs (set by conftest; a temporary one otherwise)


def _cache() -> Path:
    global CACHE
    if CACHE is None:
        CACHE = Path(tempfile.mkdtemp(prefix="shakegen-test-runs-"))
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


def train_tiny_run(folder: Path, text: str, *, encoding: str = "utf-8", **overrides) -> Path:
    """Prepare ``text`` (written to disk in ``encoding``) in ``folder``/data and train a tiny run on it.

    Returns the run folder, ``folder``/run; ``overrides`` change the tiny configuration.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = text.encode(encoding)
    settings = json.dumps(sorted({**TINY, **overrides}.items()))
    key = hashlib.sha256(raw + encoding.encode() + settings.encode()).hexdigest()[:24]
    cache = _cache()
    trained = cache / key
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes: another worker may be training it
        if not (trained / "run").is_dir():
            _train(trained, raw, encoding, overrides)
    for name in ("data", "run"):
        shutil.copytree(trained / name, folder / name)
    shutil.copy2(trained / "corpus.txt", folder / "corpus.txt")
    return folder / "run"


def _train(trained: Path, raw: bytes, encoding: str, overrides: dict) -> None:
    """Train into a scratch folder, then rename it into place: a crash leaves no half-trained cache entry."""
    from shakegen.config import TrainConfig
    from shakegen.data import prepare
    from shakegen.training.trainer import train

    shutil.rmtree(trained, ignore_errors=True)
    scratch = trained.with_name(trained.name + ".training")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    (scratch / "corpus.txt").write_bytes(raw)
    prepare.prepare_corpus(scratch / "corpus.txt", scratch / "data", prepare.PrepareOptions(encoding=encoding))
    train(TrainConfig(**{**TINY, **overrides}), scratch / "run", scratch / "data")
    scratch.rename(trained)
