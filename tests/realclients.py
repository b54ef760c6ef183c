"""Running real, unmodified clients (govc) against a target from the tests.

``build/govc`` comes from ``tools/build-govc`` (Debian's govmomi 0.24.2
source); tests skip with that reason when it is absent. Every run is bounded
in time, gets a clean environment (no GOVC_* of the user's) and verifies TLS
against the target's certificate.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
GOVC = REPO / "build" / "govc"
NO_GOVC = "no build/govc: run tools/build-govc (Debian golang-go, golang-github-kr-pretty-dev, dpkg-dev)"


@dataclass
class Endpoint:
    """Where a client connects: the SDK URL (no credentials) and the PEM to verify TLS against."""

    name: str
    url: str
    cafile: str
    username: str = "user"
    password: str = "pass"


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> "Run":
        assert self.returncode == 0, f"{' '.join(self.argv)} exited {self.returncode}:\n{self.stderr}{self.stdout}"
        return self


def govc_available() -> bool:
    return GOVC.is_file() and os.access(GOVC, os.X_OK)


def govc(endpoint: Endpoint, *args: str, home: Path, timeout: float = 120.0) -> Run:
    """``govc ARGS`` against ``endpoint``; returns the finished run (never raises on a non-zero exit)."""
    parts = urlsplit(endpoint.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVC_")}
    env.update(GOVC_URL=f"{parts.scheme}://{parts.netloc}{parts.path}", GOVC_USERNAME=endpoint.username,
               GOVC_PASSWORD=endpoint.password, GOVC_TLS_CA_CERTS=endpoint.cafile,
               GOVMOMI_HOME=str(home), HOME=str(home))
    argv = [str(GOVC), *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, cwd=home)
    return Run(argv, done.returncode, done.stdout, done.stderr)
