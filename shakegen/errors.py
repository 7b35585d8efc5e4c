"""Every error a user can cause and fix derives from ``ShakegenError``.

The command line turns a ``ShakegenError`` into a one-line message (exit 1); anything else
is a bug and keeps its traceback. Each class also derives from the built-in type a Python
caller would expect (``ValueError`` for bad values, ``RuntimeError`` for failed runs), so
``except ValueError`` keeps working in code that uses the library.
"""

from __future__ import annotations


class ShakegenError(Exception):
    """Base of every expected shakegen error: the message says what, expected, and the fix."""


class ConfigError(ShakegenError, ValueError):
    """A hyperparameter or option has a value that cannot be used."""


class CorpusError(ShakegenError, ValueError):
    """An input text cannot be read, decoded or prepared."""


class PreparedDataError(ShakegenError, FileNotFoundError):
    """No prepared corpus where one is expected, or a damaged one."""


class CheckpointError(ShakegenError, ValueError):
    """A run folder is missing, incomplete, damaged or incompatible."""


class CheckpointWriteError(ShakegenError, OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


class SamplingError(ShakegenError, ValueError):
    """A sampling option or seed cannot be used."""


class EvaluationError(ShakegenError, ValueError):
    """A text or split cannot be evaluated."""


class TrainingDiverged(ShakegenError, RuntimeError):
    """The loss became non-finite or exploded; the last good checkpoint was kept."""


class TrainingInterrupted(ShakegenError):
    """Training was interrupted (Ctrl-C, SIGTERM, SIGHUP); a checkpoint to resume from was saved."""

    def __init__(self, run_dir, state: dict, signal_name: str = "Ctrl-C"):
        self.run_dir = run_dir
        self.state = state
        self.signal_name = signal_name
        super().__init__(
            f"Training interrupted ({signal_name}) at epoch {state['epoch'] + 1}, step {state['global_step']}; "
            f"checkpoint saved in {run_dir}."
        )
