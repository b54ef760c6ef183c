"""The embedded simulator in a process of its own (``python -m nfclease.sim.process CONFIG-JSON``).

For measurements where the server must not share a core, a GIL or a gevent
hub with the client: benchmarks against vcsim and curl (RSS is read from
``/proc/<pid>``), Locust runs, and the test that pyVmomi's sockets cooperate
with gevent. Bounded: ``start`` waits ``start_timeout`` s for the two lines
the simulator prints first (URL, certificate); ``stop`` terminates, then
kills, this child only. On Linux the child also dies with its parent.
The child prints what ``nfclease sim`` prints (URL, then certificate and
thumbprint), from any :class:`~nfclease.sim.SimConfig`. Started through
:func:`nfclease.launcher.start` (``where="process"``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from nfclease import child
from nfclease.sim import SimConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    """Child side of Popen: SIGTERM when the parent goes away (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class SimProcess:
    """``with SimProcess(lease_timeout=3) as sim: sim.url, sim.cafile, sim.pid``."""

    name = "ours"

    def __init__(self, *, config: SimConfig | None = None, lease_timeout: float = 300.0,
                 init_seconds: float | None = None, delay: float | None = None,
                 start_timeout: float = 60.0) -> None:
        if config is None:
            config = SimConfig(lease_timeout=lease_timeout)
            if init_seconds is not None:
                config.init_seconds = init_seconds
            if delay is not None:
                config.delay = delay
        self.config = config
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.cafile = ""
        self.thumbprint = ""
        self.port = 0
        self._log = tempfile.TemporaryFile()

    def start(self) -> "SimProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        fields = {**dataclasses.asdict(self.config), "host": "127.0.0.1", "port": 0}
        argv = [sys.executable, "-m", "nfclease.sim.process", json.dumps(fields)]
        self.proc = subprocess.Popen(argv, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._log,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        lines = self._read_lines(2)
        match = re.search(r"certificate (\S+) thumbprint (\S+);", lines[1])
        if not lines[0].startswith("https://") or match is None:
            raise RuntimeError(f"the simulator printed {lines!r} instead of its URL: {self.stderr()}")
        self.url = lines[0]
        self.cafile, self.thumbprint = match.group(1), match.group(2)
        self.port = urlsplit(self.url).port or 443
        return self

    def _read_lines(self, count: int) -> list[str]:
        assert self.proc is not None
        return child.read_lines(self.proc, count, self.start_timeout,
                                lambda reason: RuntimeError(f"the simulator {reason}: {self.stderr()}"))

    def stderr(self) -> str:
        """The last few KB the simulator wrote to stderr (for error messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the simulator process is not running")
        return self.proc.pid

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the simulator's generated certificate."""
        return ssl.create_default_context(cafile=self.cafile)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            child.stop(proc, timeout=20)
            if proc.stdout is not None:
                proc.stdout.close()
        self._log.close()

    def __enter__(self) -> "SimProcess":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve(fields: dict[str, object]) -> None:
    """The child: run a simulator with ``fields`` until SIGTERM/SIGINT, announcing it as ``nfclease sim`` does."""
    import threading

    from nfclease.sim import Simulator

    config = SimConfig(**fields)  # type: ignore[arg-type]
    if isinstance(config.deviations, list):
        config.deviations = tuple(config.deviations)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Simulator(config) as sim:
        print(sim.url, flush=True)
        print(f"# certificate {sim.cafile} thumbprint {sim.thumbprint}; lease timeout {config.lease_timeout:g} s",
              flush=True)
        stop.wait()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
