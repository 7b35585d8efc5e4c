"""Importing TensorFlow quietly: its C++ start-up chatter is not for the user's terminal."""

from __future__ import annotations

import contextlib
import os
import sys


def import_tensorflow():
    """Import and return tensorflow with its start-up log lines silenced."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet_stderr_fd():
        import tensorflow

    return tensorflow


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Send file descriptor 2 to /dev/null for the duration (C++ writes straight to it)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """Import and return keras (after TensorFlow, quietly)."""
    import_tensorflow()
    import keras

    return keras


def __getattr__(name: str):
    """``from shakegen.model.backend import tf, keras``: the one place shakegen imports them, on first use."""
    if name == "tf":
        return import_tensorflow()
    if name == "keras":
        return import_keras()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
