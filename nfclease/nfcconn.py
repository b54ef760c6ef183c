"""NFC connections: TLS contexts and thumbprints, device URL hosts, transfer errors, a kept-alive pool.

The plumbing under :class:`nfclease.transfer.NfcClient` (see that module for
why the client is built on :mod:`http.client` with its own SSL context).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import select
import socket
import ssl
import threading
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

MAX_IDLE_PER_HOST = 4


def normalize_thumbprint(text: str) -> tuple[str, str]:
    """``(algorithm, lowercase hex)`` of a SHA-1 or SHA-256 thumbprint, colons optional."""
    digest = text.replace(":", "").replace(" ", "").strip().lower()
    if any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"thumbprint {text!r} is not hexadecimal")
    algorithm = {40: "sha1", 64: "sha256"}.get(len(digest))
    if algorithm is None:
        raise ValueError(f"thumbprint {text!r} is neither SHA-1 (40 hex) nor SHA-256 (64 hex)")
    return algorithm, digest


def _pinned_socket_class(base: type, algorithm: str, digest: str) -> type:
    """A socket class whose handshake also checks the peer certificate's digest.

    Built on the context's own socket class, so a gevent-patched ``ssl`` keeps
    cooperating; works for pyVmomi and http.client alike, as both handshake
    through the context.
    """

    def do_handshake(self: Any, *args: Any, **kwargs: Any) -> None:
        base.do_handshake(self, *args, **kwargs)
        der = self.getpeercert(binary_form=True)
        seen = hashlib.new(algorithm, der or b"").hexdigest()
        if seen != digest:
            raise ssl.SSLCertVerificationError(
                1, f"certificate {algorithm} thumbprint {seen} does not match the pinned {digest}")

    return type(f"Pinned{base.__name__}", (base,), {"do_handshake": do_handshake})


def make_ssl_context(*, cafile: str | None = None, thumbprint: str | None = None,
                     insecure: bool = False) -> ssl.SSLContext:
    """The one TLS policy for SOAP and NFC: pin, CA file, system store, or (opt-out) nothing."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure or thumbprint:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if thumbprint and not insecure:
        algorithm, digest = normalize_thumbprint(thumbprint)
        context.sslsocket_class = _pinned_socket_class(context.sslsocket_class, algorithm, digest)  # type: ignore[misc]
    return context


class NfcHttpError(Exception):
    """The NFC server answered with an HTTP status >= 400 (the fault ``http.<status>``)."""

    def __init__(self, status: int, message: str, url: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.url = url


class NfcTransportError(Exception):
    """The connection failed (the fault ``net.<cause>``).

    ``request_sent`` is False when nothing reached the server (connect or TLS
    failed): the server certainly did not act. When True, whether it acted is
    unknown, which is why events record such a failure as ``info``.
    """

    def __init__(self, cause: BaseException, *, request_sent: bool, url: str = "") -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.request_sent = request_sent
        self.url = url

    @property
    def fault(self) -> str:
        return f"net.{type(self.cause).__name__}"


class ThumbprintMismatch(NfcTransportError):
    """The device URL's sslThumbprint is not the certificate its host served: refused before
    any byte was sent (the fault ``client.ThumbprintMismatch``; the lease is untouched)."""

    @property
    def fault(self) -> str:
        return "client.ThumbprintMismatch"


def replace_star_host(url: str, nfc_host: str | None) -> str:
    """Put the connected host in place of ``*`` (ESXi style), keeping an explicit port.

    ``https://*/nfc/x`` -> ``https://<nfc_host>/nfc/x`` (nfc_host carries the
    port we connected to); ``https://*:8443/x`` -> ``https://<host>:8443/x``.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    if not (hostport == "*" or hostport.startswith("*:")):
        return url
    if not nfc_host:
        raise ValueError(f"device URL {url!r} has host '*' and no NFC host is known")
    if hostport == "*":
        new = nfc_host
    else:
        host, _ = split_hostport(nfc_host, 443)
        new = f"{_bracket(host)}{hostport[1:]}"
    if userinfo:
        new = f"{userinfo}@{new}"
    return urlunsplit((parts.scheme, new, parts.path, parts.query, parts.fragment))


def split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6][:port]`` into host (no brackets) and port."""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else default_port
        return host, port
    if hostport.count(":") == 1:
        host, port_text = hostport.split(":")
        return host, int(port_text) if port_text else default_port
    return hostport, default_port


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _PrefixedRaw(io.RawIOBase):
    """Bytes already read from a socket, then the socket: lets a response
    parser start after we consumed an interim (100) or early final reply."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._prefix = memoryview(prefix)
        # A socket file holds a reference: the socket stays open for this
        # reader even after the connection object lets go of it.
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _ReplaySock:
    """A stand-in socket whose ``makefile`` returns a prepared reader."""

    def __init__(self, fp: io.BufferedReader) -> None:
        self._fp = fp

    def makefile(self, *_args: Any, **_kwargs: Any) -> io.BufferedReader:
        return self._fp


class _ConnectionMixin:
    """Lets one response be parsed from a prepared reader (see _PrefixedRaw)."""

    pending_fp: io.BufferedReader | None = None

    def response_class(self, sock: Any, debuglevel: int = 0, method: str | None = None,
                       url: str | None = None) -> http.client.HTTPResponse:  # type: ignore[override]
        fp, self.pending_fp = self.pending_fp, None
        source = _ReplaySock(fp) if fp is not None else sock
        return http.client.HTTPResponse(source, debuglevel, method=method, url=url)


class _HTTPSConnection(_ConnectionMixin, http.client.HTTPSConnection):
    pass


class _HTTPConnection(_ConnectionMixin, http.client.HTTPConnection):
    pass


_Conn = Union[_HTTPSConnection, _HTTPConnection]
_Key = tuple[str, str, int, str]  # scheme, host, port, pinned thumbprint ("" = the client's context)


def _still_open(conn: _Conn) -> bool:
    """Whether an idle kept-alive connection can take another request.

    A readable idle socket means EOF or stray bytes; with TLS it can also be
    a session ticket, which a non-blocking read consumes without data.
    """
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable = select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False
    pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
    if not readable and not pending:
        return True
    old = sock.gettimeout()
    try:
        sock.settimeout(0)
        sock.recv(1)
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    except OSError:
        return False
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass
    return False  # EOF or unexpected bytes: not reusable


class ConnectionPool:
    """Kept-alive connections per (scheme, host, port, pin), checked out for one request each.

    The state lives on the client (:class:`nfclease.transfer.NfcClient` sets it up):
    ``ssl_context``, ``device_pins``, ``timeout``, ``_idle``, ``_lock``, ``_pinned``,
    ``connections_opened``.
    """

    ssl_context: ssl.SSLContext | None
    device_pins: bool
    timeout: float
    connections_opened: int
    _idle: dict[_Key, list[_Conn]]
    _lock: threading.Lock
    _pinned: dict[str, ssl.SSLContext]

    def _target(self, url: str, thumbprint: str | None = None) -> tuple[_Key, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http"):
            raise ValueError(f"not an http(s) URL: {url!r}")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        pin = thumbprint if (self.device_pins and thumbprint and parts.scheme == "https") else ""
        return (parts.scheme, host, port, pin), path

    def _checkout(self, key: _Key, url: str, thumbprint: str | None = None) -> tuple[_Conn, bool]:
        """An idle live connection to the host, or a new connected one (``fresh``).

        A device URL's ``sslThumbprint`` is checked against the certificate
        served even when a CA verified it (unless TLS verification was opted
        out of): a lease naming another certificate than the one its NFC host
        serves is refused before any byte is sent.
        """
        conn, fresh = self._connection(key, url)
        if thumbprint and not key[3] and self.ssl_context is not None \
                and self.ssl_context.verify_mode != ssl.CERT_NONE and not _serves(conn, thumbprint):
            conn.close()
            mismatch = ssl.SSLCertVerificationError(
                1, f"the certificate served at {url.split('/nfc/')[0]} does not have the lease's sslThumbprint "
                   f"{thumbprint}")
            raise ThumbprintMismatch(mismatch, request_sent=False, url=url)
        return conn, fresh

    def _connection(self, key: _Key, url: str) -> tuple[_Conn, bool]:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                conn = idle.pop()
                if _still_open(conn):
                    return conn, False
                conn.close()
        scheme, host, port, pin = key
        conn: _Conn
        if scheme == "https":
            context = self._pinned_context(pin) if pin else self.ssl_context
            conn = _HTTPSConnection(host, port, timeout=self.timeout, context=context)
        else:
            conn = _HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=False, url=url) from exc
        conn.peer_thumbprint = _served_thumbprint(conn)
        self.connections_opened += 1
        return conn, True

    def _pinned_context(self, thumbprint: str) -> ssl.SSLContext:
        with self._lock:
            context = self._pinned.get(thumbprint)
            if context is None:
                context = self._pinned[thumbprint] = make_ssl_context(thumbprint=thumbprint)
            return context

    def _checkin(self, key: _Key, conn: _Conn, response: http.client.HTTPResponse) -> None:
        if response.will_close or not response.isclosed() or conn.sock is None:
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()


def _serves(conn: Any, thumbprint: str) -> bool:
    """Does the connection's peer certificate have this SHA-1 or SHA-256 thumbprint?"""
    try:
        algorithm, digest = normalize_thumbprint(thumbprint)
    except ValueError:
        return False
    sock = getattr(conn, "sock", None)
    der = sock.getpeercert(binary_form=True) if hasattr(sock, "getpeercert") else None
    return bool(der) and hashlib.new(algorithm, der).hexdigest() == digest


def _served_thumbprint(conn: Any) -> str | None:
    """SHA-1 of the certificate the peer served, ``AB:CD:..`` as vSphere writes it (None for http)."""
    sock = getattr(conn, "sock", None)
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        der = getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None
    if not der:
        return None
    digest = hashlib.sha1(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
