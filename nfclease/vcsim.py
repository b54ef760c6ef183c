"""govmomi's vCenter simulator (vcsim) as a peer target.

``tools/build-vcsim`` builds ``build/vcsim`` from ``tools/vcsim/main.go``
against Debian's govmomi source. This module finds that binary and runs it on
loopback for the length of a ``with`` block::

    from nfclease.vcsim import find_vcsim, run_vcsim

    if find_vcsim() is not None:
        with run_vcsim() as vc:
            vc.url          # https://127.0.0.1:PORT/sdk
            vc.cafile       # PEM of the served (self-signed) certificate
            vc.thumbprint   # SHA-1 of it, colon-separated upper hex
            vc.ssl_context()  # verifies TLS against cafile

What vcsim does differently from vCenter around HttpNfcLease is recorded in
``tools/vcsim/NOTES.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Iterator
from urllib.parse import urlsplit

from nfclease import child

__all__ = ["VcsimError", "VcsimProcess", "find_vcsim", "run_vcsim", "thumbprint_of"]

ENV_VAR = "NFCLEASE_VCSIM"
REPO = Path(__file__).resolve().parent.parent

# vcsim accepts any non-empty user/password pair unless started with
# -username/-password; this pair is what govc and govmomi's tests use.
DEFAULT_USERNAME = "user"
DEFAULT_PASSWORD = "pass"


class VcsimError(RuntimeError):
    """vcsim could not be started (the message carries its stderr)."""


def find_vcsim() -> Path | None:
    """The vcsim binary: ``$NFCLEASE_VCSIM`` if set, else ``build/vcsim``.

    ``build/vcsim`` is looked for beside this package's checkout, then in the
    current directory. Returns None when no executable file is there (also
    when ``$NFCLEASE_VCSIM`` names a missing file: it is never second-guessed).
    """
    env = os.environ.get(ENV_VAR)
    candidates = [Path(env)] if env else [REPO / "build" / "vcsim", Path.cwd() / "build" / "vcsim"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def thumbprint_of(der: bytes) -> str:
    """SHA-1 of a DER certificate as vSphere writes it: ``AB:CD:...`` (upper hex)."""
    digest = hashlib.sha1(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class VcsimProcess:
    """A vcsim process on loopback, started on ``__enter__``, stopped on ``__exit__``.

    ``port=0`` takes a free port; the URL is read from the first line the
    binary prints once it completes a TLS handshake, waiting at most
    ``start_timeout`` seconds. ``username``/``password`` (both or neither)
    make it accept exactly that pair; otherwise any non-empty pair logs in.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        found = Path(binary) if binary is not None else find_vcsim()
        if found is None:
            raise VcsimError(f"no vcsim binary: run tools/build-vcsim or set ${ENV_VAR}")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"vcsim is only served on loopback, not {host!r}")
        self.binary = found
        self.host = host
        self.requested_port = port
        self.username = username if username is not None else DEFAULT_USERNAME
        self.password = password if password is not None else DEFAULT_PASSWORD
        self._credentials = username is not None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._stderr: IO[bytes] | None = None
        self._url: str | None = None
        self._thumbprint: str | None = None
        self._drainer: threading.Thread | None = None

    # -- what a client needs -------------------------------------------------

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT/sdk`` (no credentials in it)."""
        if self._url is None:
            raise VcsimError("vcsim is not running")
        return self._url

    @property
    def pid(self) -> int:
        """The vcsim process id (benchmarks read its RSS from /proc)."""
        if self._proc is None:
            raise RuntimeError("vcsim is not running")
        return self._proc.pid

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    @property
    def cafile(self) -> Path | None:
        """The served certificate as PEM (written by ``-cert-out``), or None."""
        if self._dir is None:
            return None
        path = self._dir / "vcsim.pem"
        return path if path.is_file() and path.stat().st_size > 0 else None

    @property
    def thumbprint(self) -> str:
        """SHA-1 thumbprint of the served certificate, colon-separated upper hex."""
        if self._thumbprint is None:
            cafile = self.cafile
            if cafile is not None:
                pem = cafile.read_text()
            else:  # not written: ask the server (no verification is involved)
                pem = ssl.get_server_certificate((self.host, self.port), timeout=10)
            self._thumbprint = thumbprint_of(ssl.PEM_cert_to_DER_cert(pem))
        return self._thumbprint

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies vcsim's certificate (and host name)."""
        cafile = self.cafile
        if cafile is None:
            raise VcsimError("vcsim wrote no certificate to verify against")
        return ssl.create_default_context(cafile=str(cafile))

    def stderr_text(self) -> str:
        """What vcsim logged so far (it logs each NFC transfer and HTTP error)."""
        if self._dir is None:
            return ""
        path = self._dir / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> VcsimProcess:
        if self._proc is not None:
            raise VcsimError("vcsim already started")
        self._dir = Path(tempfile.mkdtemp(prefix="nfclease-vcsim-"))
        listen = f"[{self.host}]:{self.requested_port}" if ":" in self.host else f"{self.host}:{self.requested_port}"
        argv = [str(self.binary), "-listen", listen, "-cert-out", str(self._dir / "vcsim.pem")]
        if self._credentials:
            argv += ["-username", self.username, "-password", self.password]
        self._stderr = open(self._dir / "stderr.log", "wb")
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, cwd=self._dir
            )
            line = self._first_line(self._proc)
        except BaseException:
            self.stop()
            raise
        if not line.startswith("https://"):
            self.stop()
            raise VcsimError(f"vcsim printed {line!r} instead of its URL; stderr:\n{self.stderr_text()}")
        self._url = line
        # Nothing else goes to stdout, but never let a full pipe block it.
        self._drainer = threading.Thread(target=_drain, args=(self._proc.stdout,), daemon=True)
        self._drainer.start()
        return self

    def _first_line(self, proc: subprocess.Popen[bytes]) -> str:
        return child.read_lines(proc, 1, self.start_timeout,
                                lambda reason: VcsimError(f"vcsim {reason}; stderr:\n{self.stderr_text()}"))[0]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; removes the temp files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            child.stop(proc, timeout=self.stop_timeout)
            if self._drainer is not None:  # it sees EOF now that the process is gone
                self._drainer.join(timeout=self.stop_timeout)
                self._drainer = None
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._url = None

    def __enter__(self) -> VcsimProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _drain(stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        while stream.read(4096):
            pass


@contextlib.contextmanager
def run_vcsim(
    binary: str | os.PathLike[str] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    start_timeout: float = 30.0,
) -> Iterator[VcsimProcess]:
    """``with run_vcsim() as vc:`` -- a :class:`VcsimProcess` on 127.0.0.1, a free port."""
    with VcsimProcess(binary, username=username, password=password, start_timeout=start_timeout) as vc:
        yield vc
