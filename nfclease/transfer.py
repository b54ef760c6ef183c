"""The NFC HTTP client: disk and file transfers to and from lease device URLs.

Built on :mod:`http.client` with the target's own :class:`ssl.SSLContext`, not
on ``requests``: this machine (and many CI images) sets
``REQUESTS_CA_BUNDLE``, which ``requests`` honours *over* ``verify=False`` and
which would silently decide what we trust. With an explicit context the
target alone decides: the simulator's CA, a pinned thumbprint, the system CAs,
or no verification when the user opted out (``insecure``).

What the client does for the protocol:

* ``*`` in a device URL's host is replaced by the host the client connected
  to (an explicit port in the device URL is kept);
* disks go up by ``POST`` with ``Content-Type: application/x-vnd.vmware-streamVmdk``,
  non-disk files by ``PUT`` with ``Overwrite: t``, always with an explicit
  ``Content-Length``; downloads are a plain ``GET``;
* bodies stream from an iterator or a file-like object and are hashed
  (SHA-1, optionally SHA-256) on the way out or in, never held whole;
* connections are kept alive and reused per host; ``Expect: 100-continue``
  is optional;
* an HTTP status >= 400 raises :class:`NfcHttpError` with the server's
  message; a transport failure raises :class:`NfcTransportError`, which says
  whether the request had been sent (if it had, whether the server acted is
  unknown: the event outcome is ``info``).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Union
from urllib.parse import urlsplit, urlunsplit

STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"
CHUNK = 256 * 1024
MAX_IDLE_PER_HOST = 4
ERROR_BODY_LIMIT = 64 * 1024

Body = Union[bytes, bytearray, memoryview, BinaryIO, Iterable[bytes], Any]
ProgressCallback = Callable[[int], None]


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


class BodyLengthError(ValueError):
    """The body yielded more or fewer bytes than the declared Content-Length."""


@dataclass(frozen=True)
class TransferResult:
    """What one transfer moved: status, byte count, digests of the bytes, wall time."""

    status: int
    bytes: int
    sha1: str
    seconds: float
    sha256: str | None = None
    message: str = ""
    # SHA-1 of the certificate the NFC host served, recorded when the device URL
    # announced an sslThumbprint (the one the model holds it against)
    thumbprint: str | None = None

    def summary(self) -> dict[str, Any]:
        """The event value: ``{status, bytes, sha1}``, plus ``sha256`` and the served
        certificate's ``thumbprint`` when known (the model checks them against the
        manifest's checksum and the deviceUrl's sslThumbprint)."""
        out: dict[str, Any] = {"status": self.status, "bytes": self.bytes, "sha1": self.sha1}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.thumbprint is not None:
            out["thumbprint"] = self.thumbprint
        return out


class Digest:
    """Running SHA-1 (and optional SHA-256) plus a byte count."""

    def __init__(self, sha256: bool = False) -> None:
        self._sha1 = hashlib.sha1()
        self._sha256 = hashlib.sha256() if sha256 else None
        self.bytes = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha1.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        self.bytes += len(data)

    @property
    def sha1(self) -> str:
        return self._sha1.hexdigest()

    @property
    def sha256(self) -> str | None:
        return self._sha256.hexdigest() if self._sha256 is not None else None


class HashingBody:
    """An upload body as a stream of chunks, hashed and counted as it is read.

    Accepts bytes, a file-like object (``read(n)``), or an iterable of byte
    chunks (a ``StreamOptimizedDisk``). The client learns the SHA-1 of exactly
    what it sent, so a manifest can be checked against it without keeping a
    copy of the data.
    """

    def __init__(self, body: Body, *, sha256: bool = False, chunk_size: int = CHUNK) -> None:
        self._body = body
        self._chunk = chunk_size
        self.digest = Digest(sha256)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks():
            if chunk:
                self.digest.update(chunk)
                yield chunk

    def _chunks(self) -> Iterator[bytes]:
        body = self._body
        if isinstance(body, (bytes, bytearray, memoryview)):
            view = memoryview(body)
            for offset in range(0, len(view), self._chunk):
                yield bytes(view[offset:offset + self._chunk])
            return
        if hasattr(body, "read"):
            while True:
                block = body.read(self._chunk)
                if not block:
                    return
                yield block
            return
        yield from body  # an iterable of chunks

    @property
    def bytes(self) -> int:
        return self.digest.bytes

    @property
    def sha1(self) -> str:
        return self.digest.sha1

    @property
    def sha256(self) -> str | None:
        return self.digest.sha256


def body_length(body: Body) -> int | None:
    """The length a body declares (bytes, ``.size``, or ``len()``), if it does."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    size = getattr(body, "size", None)
    if isinstance(size, int):
        return size
    return None


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


class NfcClient:
    """HTTP(S) client for lease device URLs, with per-host keep-alive.

    Thread-safe: a small pool of idle connections per (scheme, host, port);
    a request takes one out and puts it back once its response was read whole.

    ``device_pins``: when the target itself is trusted by a pinned thumbprint
    (no CA), a device URL's ``sslThumbprint`` -- announced over that pinned
    SOAP channel -- pins the NFC host, which on vCenter is an ESXi host with
    its own certificate. Without it, every transfer uses ``ssl_context``.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        nfc_host: str | None = None,
        *,
        timeout: float = 60.0,
        expect_continue: bool = False,
        continue_timeout: float = 1.0,
        chunk_size: int = CHUNK,
        headers: dict[str, str] | None = None,
        device_pins: bool = False,
    ) -> None:
        self.ssl_context = ssl_context
        self.device_pins = device_pins
        self._pinned: dict[str, ssl.SSLContext] = {}
        self.nfc_host = nfc_host
        self.timeout = timeout
        self.expect_continue = expect_continue
        self.continue_timeout = continue_timeout
        self.chunk_size = chunk_size
        self.headers = dict(headers or {})
        self._idle: dict[_Key, list[_Conn]] = {}
        self._lock = threading.Lock()
        self.connections_opened = 0  # for tests and benchmarks: how often keep-alive failed to help

    # -- public API ---------------------------------------------------------

    def resolve(self, url: str) -> str:
        """The URL with ``*`` replaced by the host we connected to."""
        return replace_star_host(url, self.nfc_host)

    def upload_disk(self, url: str, body: Body, length: int | None = None, *,
                    expect_continue: bool | None = None, sha256: bool = False,
                    on_bytes: ProgressCallback | None = None, thumbprint: str | None = None) -> TransferResult:
        """POST a streamOptimized VMDK stream to a disk's device URL."""
        return self._upload("POST", url, body, length, {"Content-Type": STREAM_VMDK},
                            expect_continue, sha256, on_bytes, thumbprint)

    def upload_file(self, url: str, body: Body, length: int | None = None, *,
                    expect_continue: bool | None = None, sha256: bool = False,
                    on_bytes: ProgressCallback | None = None, thumbprint: str | None = None) -> TransferResult:
        """PUT a non-disk file (nvram, iso): POST of those has drawn 405 from servers."""
        return self._upload("PUT", url, body, length,
                            {"Content-Type": "application/octet-stream", "Overwrite": "t"},
                            expect_continue, sha256, on_bytes, thumbprint)

    def download(self, url: str, *, sha256: bool = False,
                 sink: Callable[[bytes], Any] | None = None,
                 on_bytes: ProgressCallback | None = None, thumbprint: str | None = None) -> TransferResult:
        """GET a device URL, hashing while reading; ``sink`` gets each chunk if given."""
        url = self.resolve(url)
        started = time.monotonic()
        key, path = self._target(url, thumbprint)
        conn, fresh = self._checkout(key, url, thumbprint)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            self._put_headers(conn, {"Accept": "*/*"})
            conn.endheaders()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=not fresh or _sent_something(exc), url=url) from exc
        response = self._response(conn, url, key)
        digest = Digest(sha256)
        try:
            while True:
                chunk = response.read(self.chunk_size)
                if not chunk:
                    break
                digest.update(chunk)
                if sink is not None:
                    sink(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=True, url=url) from exc
        served = getattr(conn, "peer_thumbprint", None) if thumbprint else None
        self._checkin(key, conn, response)
        return TransferResult(response.status, digest.bytes, digest.sha1,
                              time.monotonic() - started, digest.sha256, response.reason, served)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def __enter__(self) -> "NfcClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------

    def _upload(self, method: str, url: str, body: Body, length: int | None,
                headers: dict[str, str], expect_continue: bool | None, sha256: bool,
                on_bytes: ProgressCallback | None, thumbprint: str | None) -> TransferResult:
        url = self.resolve(url)
        if length is None:
            length = body_length(body)
        if length is None:
            raise ValueError("an upload needs an explicit length (Content-Length)")
        expect = self.expect_continue if expect_continue is None else expect_continue
        started = time.monotonic()
        key, path = self._target(url, thumbprint)
        conn, fresh = self._checkout(key, url, thumbprint)
        hashing = HashingBody(body, sha256=sha256, chunk_size=self.chunk_size)
        all_headers = dict(headers)
        all_headers["Content-Length"] = str(length)
        if expect:
            all_headers["Expect"] = "100-continue"
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            self._put_headers(conn, all_headers)
            conn.endheaders()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=not fresh or _sent_something(exc), url=url) from exc

        if expect:
            early = self._await_continue(conn, url)
            if early is not None:  # a final answer before the body: do not send it
                return self._finish_early(conn, early, url, started, hashing)
        try:
            self._send_body(conn, hashing, length, on_bytes)
        except BodyLengthError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            # The server may have refused early and closed: its answer can still be read.
            return self._after_send_failure(conn, exc, url, started, hashing)
        response = self._response(conn, url, key)
        served = getattr(conn, "peer_thumbprint", None) if thumbprint else None
        self._drain_and_checkin(key, conn, response, url)
        return TransferResult(response.status, hashing.bytes, hashing.sha1,
                              time.monotonic() - started, hashing.sha256, response.reason, served)

    def _send_body(self, conn: _Conn, hashing: HashingBody, length: int,
                   on_bytes: ProgressCallback | None) -> None:
        sent = 0
        for chunk in hashing:
            if sent + len(chunk) > length:
                raise BodyLengthError(f"body is longer than its Content-Length {length}")
            conn.send(chunk)
            sent += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        if sent != length:
            raise BodyLengthError(f"body ended after {sent} of {length} declared bytes")

    def _await_continue(self, conn: _Conn, url: str) -> http.client.HTTPResponse | None:
        """Wait (bounded) for ``100 Continue``; return an early final response if one came.

        Reads with ``recv`` and a deadline instead of a file object, since a
        timed-out socket file refuses further reads. Silence past
        ``continue_timeout`` means: send the body anyway (RFC 9110 10.1.1).
        """
        sock = conn.sock
        assert sock is not None
        deadline = time.monotonic() + self.continue_timeout
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not buffer:
                        return None
                    deadline = time.monotonic() + self.timeout  # a reply has begun: let it finish
                    remaining = self.timeout
                sock.settimeout(remaining)
                try:
                    data = sock.recv(4096)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                if not data:
                    raise http.client.RemoteDisconnected("closed while waiting for 100 Continue")
                buffer += data
                if len(buffer) > 65536:
                    raise http.client.LineTooLong("interim response header")
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=True, url=url) from exc
        finally:
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else 0
        if status == 100:
            if rest:
                conn.pending_fp = io.BufferedReader(_PrefixedRaw(rest, sock))
            return None
        conn.pending_fp = io.BufferedReader(_PrefixedRaw(buffer, sock))
        return self._response(conn, url, None)

    def _finish_early(self, conn: _Conn, response: http.client.HTTPResponse, url: str,
                      started: float, hashing: HashingBody) -> TransferResult:
        """The server answered before the body: never reuse this connection."""
        message, _ = self._error_message(response)
        conn.close()
        if response.status >= 400:
            raise NfcHttpError(response.status, message, url)
        return TransferResult(response.status, hashing.bytes, hashing.sha1,
                              time.monotonic() - started, hashing.sha256, message)

    def _after_send_failure(self, conn: _Conn, exc: BaseException, url: str, started: float,
                            hashing: HashingBody) -> TransferResult:
        try:
            if conn.sock is not None:
                conn.sock.settimeout(min(self.timeout, 5.0))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()
            raise NfcTransportError(exc, request_sent=True, url=url) from exc
        return self._finish_early(conn, response, url, started, hashing)

    def _response(self, conn: _Conn, url: str, key: _Key | None) -> http.client.HTTPResponse:
        """Read the response head; raise NfcHttpError for a status >= 400."""
        try:
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=True, url=url) from exc
        if response.status >= 400:
            message, complete = self._error_message(response)
            # A short, fully read error body leaves the connection reusable.
            if complete and not response.will_close and key is not None:
                self._checkin(key, conn, response)
            else:
                conn.close()
            raise NfcHttpError(response.status, message, url)
        return response

    def _error_message(self, response: http.client.HTTPResponse) -> tuple[str, bool]:
        """The server's message (first 64 KiB of the body) and whether the body was read whole."""
        try:
            text = response.read(ERROR_BODY_LIMIT)
            complete = response.isclosed()  # HTTPResponse closes itself at the body's end
            if not complete:
                response.close()
        except (OSError, http.client.HTTPException):
            text, complete = b"", False
        message = text.decode("utf-8", "replace").strip()
        return message[:2000] or response.reason or f"HTTP {response.status}", complete

    def _drain_and_checkin(self, key: _Key, conn: _Conn, response: http.client.HTTPResponse,
                           url: str) -> None:
        try:
            response.read(ERROR_BODY_LIMIT)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NfcTransportError(exc, request_sent=True, url=url) from exc
        self._checkin(key, conn, response)

    def _put_headers(self, conn: _Conn, headers: dict[str, str]) -> None:
        for name, value in {**self.headers, **headers}.items():
            conn.putheader(name, value)

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


def _sent_something(exc: BaseException) -> bool:
    """Whether a failure while writing the request head may have reached the server."""
    return not isinstance(exc, (ssl.SSLCertVerificationError, ConnectionRefusedError))
