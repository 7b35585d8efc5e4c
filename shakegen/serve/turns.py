"""Running a function one step at a time on a thread of its own, while its caller waits: how an evaluation takes turns.

``ModelWorker.evaluate`` runs ``TextModel.evaluate`` this way: the model's thread lets it run
to its next ``progress`` call, then serves queued sampling blocks, then lets it run again.
"""

from __future__ import annotations

import threading
from typing import Callable


class _Stopped(BaseException):
    """Raised inside a paused evaluation to end it (a BaseException: no ``except Exception`` swallows it)."""


class TurnTaking:
    """Run ``function(progress=...)`` one step at a time, a step being what lies between two calls of ``progress``.

    ``function`` runs on a thread of its own but only while a caller of ``turn`` waits, so two
    threads never run it and the caller's work at once: ``turn`` lets it run to its next
    ``progress`` call (or its end) and returns whether it has ended. ``stop`` ends it early by
    raising inside the paused ``progress`` call.
    """

    def __init__(self, function: Callable):
        self._function = function
        self._resume, self._paused = threading.Semaphore(0), threading.Semaphore(0)
        self._thread = threading.Thread(target=self._run, name="shakegen-evaluation", daemon=True)
        self._started = self._ended = self._stopping = False
        self._value = self._error = None

    def turn(self) -> bool:
        """Let the function run one step; True once it has ended (returned or raised)."""
        if self._ended:
            return True
        if not self._started:
            self._started = True
            self._thread.start()
        else:
            self._resume.release()
        self._paused.acquire()
        return self._ended

    def result(self):
        """The function's return value, or its exception raised again."""
        if self._error is not None:
            raise self._error
        return self._value

    def stop(self) -> None:
        """End the function where it paused and wait until it has unwound; nothing if it never started."""
        if self._started and not self._ended:
            self._stopping = True
            self._resume.release()
            self._paused.acquire()

    def _run(self) -> None:
        try:
            self._value = self._function(progress=self._pause)
        except _Stopped:
            pass
        except BaseException as error:  # handed to the caller of result()
            self._error = error
        finally:
            self._ended = True
            self._paused.release()

    def _pause(self, *progress) -> None:
        self._paused.release()
        self._resume.acquire()
        if self._stopping:
            raise _Stopped()
