"""Servers the suite runs as child processes (the simulator, vcsim): start and stop, bounded.

Both announce themselves by printing their URL first on stdout; both must be
stopped politely, then firmly, whatever happened. One place does each, with
a deadline, so no caller can hang on a server that never starts or never
stops.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from typing import Callable


def read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float,
               failure: Callable[[str], Exception]) -> list[str]:
    """The first ``count`` lines ``proc`` prints, waiting at most ``timeout`` seconds.

    ``failure(reason)`` builds the exception raised when the lines do not come
    (the caller adds what it knows, such as the child's stderr).
    """
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while buffer.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise failure(f"printed no URL within {timeout:g} s")
            if not selector.select(min(left, 0.5)):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise failure(f"exited ({proc.wait(timeout=5)}) before printing its URL")
            buffer += chunk
    return [line.decode(errors="replace").strip() for line in buffer.split(b"\n")[:count]]


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
