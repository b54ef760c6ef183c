"""Signals become Terminated in the main thread; critical sections hold them, then deliver them."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Iterator

import pytest

from nfclease import lifecycle


@pytest.fixture
def installed() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in lifecycle.SIGNALS}
    assert lifecycle.install()
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(100):  # the handler runs at the next bytecode boundary of the main thread
        time.sleep(0.001)


def test_sigterm_raises_terminated_with_its_exit_code(installed: None) -> None:
    with pytest.raises(lifecycle.Terminated) as caught:
        _deliver(signal.SIGTERM)
    assert caught.value.exit_code == 143 and isinstance(caught.value, KeyboardInterrupt)
    assert lifecycle.exit_code(caught.value) == 143 and lifecycle.exit_code(KeyboardInterrupt()) == 130


def test_a_critical_section_holds_the_signal_until_it_ends(installed: None) -> None:
    finished = []
    with pytest.raises(lifecycle.Terminated):
        with lifecycle.critical():
            _deliver(signal.SIGINT)
            finished.append("body")  # not cut short
        for _ in range(100):
            time.sleep(0.001)
    assert finished == ["body"]


def test_an_insistent_operator_is_obeyed(installed: None) -> None:
    finished = []
    with pytest.raises(lifecycle.Terminated):
        with lifecycle.critical():
            for _ in range(lifecycle.PATIENCE + 1):
                _deliver(signal.SIGTERM)
            finished.append("body")
    assert finished == []


def test_a_section_ending_in_another_thread_delivers_to_the_main_thread(installed: None) -> None:
    entered, release = threading.Event(), threading.Event()

    def worker() -> None:
        with lifecycle.critical():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(10)
    _deliver(signal.SIGTERM)  # held: the worker is inside its section
    release.set()
    with pytest.raises(lifecycle.Terminated):
        thread.join(10)
        for _ in range(200):
            time.sleep(0.001)
