"""Signals end a run the way an exception does, so the ``with``/``finally`` cleanup always runs.

:func:`install` makes SIGINT, SIGTERM and SIGHUP raise :class:`Terminated`
(a :class:`KeyboardInterrupt`, so no ``except Exception`` swallows it) in
the main thread: the open targets' ``close()`` then aborts held leases and
destroys what the run created before the process exits, and the command
exits 128 + the signal number.

Two kinds of code must not be cut in the middle, and run inside
:func:`critical`: making a server-side object together with registering it
for cleanup (an ``ImportVApp`` whose lease is not yet registered would
outlive the run), and the cleanup itself. A signal arriving there is held
until the section ends, then delivered; a third signal while held is
delivered at once (an operator who insists is obeyed).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
#: signals held during a critical section before the next one is delivered at once
PATIENCE = 2


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


_lock = threading.Lock()
_depth = 0
_held: list[int] = []
_installed = False


def _handler(signum: int, _frame: object) -> None:
    with _lock:
        if _depth > 0 and len(_held) < PATIENCE:
            _held.append(signum)
            return
        _held.clear()
    if not _thrown_to_main_greenlet(Terminated(signum)):
        raise Terminated(signum)


def _thrown_to_main_greenlet(exc: BaseException) -> bool:
    """Under gevent (Locust) a signal lands in whichever greenlet runs; the run's ``finally`` is in
    the main one. Throw it there from the hub (as gevent does with KeyboardInterrupt); True if so."""
    if "gevent" not in sys.modules:
        return False
    import gevent
    import greenlet

    current = greenlet.getcurrent()
    main = current
    for _ in range(1000):
        if main.parent is None:
            break
        main = main.parent
    if current is main:
        return False
    gevent.get_hub().loop.run_callback(main.throw, exc)
    return True


def install() -> bool:
    """Route SIGINT/SIGTERM/SIGHUP to :class:`Terminated` (main thread only; False elsewhere)."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    _installed = True
    return True


def installed() -> bool:
    return _installed


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Hold signals while the body runs (any thread); deliver a held one when the last section ends."""
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            pending = _held[0] if (_depth == 0 and _held) else None
            if pending is not None:
                _held.clear()
        if pending is not None:
            signal.raise_signal(pending)  # handled in the main thread, now outside any section


def exit_code(exc: BaseException) -> int:
    """The exit status for an interrupted command: 128 + signal (130 for a plain Ctrl-C)."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


__all__ = ["PATIENCE", "SIGNALS", "Terminated", "critical", "exit_code", "install", "installed"]
