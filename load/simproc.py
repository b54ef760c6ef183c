"""The embedded simulator in a process of its own (``nfclease sim --port 0``).

For measurements where the server must not share a core (or a gevent hub)
with the load generator: the benchmark against ``curl``, and the test that
pyVmomi's sockets cooperate with gevent (a server in another process cannot
be scheduled by the client's hub, so overlapping calls prove the client
never blocked it). Bounded: start waits ``start_timeout`` s for the URL; stop
terminates, then kills, this process only (by its handle).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]


class SimProcess:
    """``with SimProcess(lease_timeout=3) as sim: sim.url, sim.cafile``."""

    def __init__(self, *, lease_timeout: float = 3.0, init_seconds: float | None = None,
                 delay: float | None = None, start_timeout: float = 30.0) -> None:
        self.args = ["--lease-timeout", str(lease_timeout)]
        if init_seconds is not None:
            self.args += ["--init-seconds", str(init_seconds)]
        if delay is not None:
            self.args += ["--delay", str(delay)]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.cafile = ""
        self.thumbprint = ""

    def start(self) -> "SimProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.proc = subprocess.Popen([sys.executable, "-m", "nfclease", "sim", "--port", "0", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(REPO_ROOT))
        try:
            lines = self._lines(self.proc.stdout, 2)  # type: ignore[arg-type]
        except BaseException:
            self.stop()
            raise
        self.url = lines[0].strip()
        match = re.search(r"certificate (\S+) thumbprint (\S+);", lines[1])
        if not self.url.startswith("https://") or match is None:
            self.stop()
            raise RuntimeError(f"nfclease sim printed {lines!r}")
        self.cafile, self.thumbprint = match.group(1), match.group(2)
        return self

    def _lines(self, stream: IO[bytes], count: int) -> list[str]:
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        fd = stream.fileno()
        while buffer.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError(f"nfclease sim did not start within {self.start_timeout:g} s: {buffer!r}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buffer += chunk
        return buffer.decode(errors="replace").splitlines()[:count]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> "SimProcess":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
