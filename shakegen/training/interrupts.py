"""Ctrl-C, SIGTERM and SIGHUP as a clean stop: the signal handlers, and blocks no signal interrupts.

Kubernetes, Slurm and spot instances send SIGTERM before killing; a closed terminal sends
SIGHUP. Either stops training as Ctrl-C does: ``train`` saves the checkpoint, then raises
``TrainingInterrupted``. A block that must change several things together (best.npz and the
state that names it) runs ``deferred``: a signal arriving inside it stops training at its end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass


@dataclass
class Received:
    name: str = "Ctrl-C"
    signalled: bool = False
    deferring: bool = False  # inside ``deferred``: a signal waits for its end
    pending: bool = False

    @contextlib.contextmanager
    def deferred(self):
        """A block no signal interrupts: one that arrives inside stops training at its end."""
        if self.deferring:
            yield
            return
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def signals_interrupt():
    """Within the block, Ctrl-C, SIGTERM and SIGHUP stop training (the checkpoint is saved).

    Yields which signal arrived, for the message, and ``deferred`` blocks.
    """
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(number, frame):
        if received.signalled:  # already stopping: let the checkpoint be written
            return
        received.name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        received.signalled = True
        if received.deferring:
            received.pending = True
            return
        raise KeyboardInterrupt

    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
