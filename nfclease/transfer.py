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

import http.client
import io
import socket
import ssl
import threading
import time
from typing import Any, Callable

from nfclease.nfcbody import (CHUNK, Body, BodyLengthError, Digest, HashingBody, ProgressCallback, TransferResult,
                              body_length)
from nfclease.nfcconn import (ConnectionPool, NfcHttpError, NfcTransportError, ThumbprintMismatch, _Conn, _Key,
                              _PrefixedRaw, make_ssl_context, normalize_thumbprint, replace_star_host, split_hostport)

__all__ = [  # the client and what its callers import from here
    "STREAM_VMDK", "CHUNK", "Body", "ProgressCallback", "BodyLengthError", "Digest", "HashingBody",
    "TransferResult", "body_length", "NfcClient", "NfcHttpError", "NfcTransportError", "ThumbprintMismatch",
    "make_ssl_context", "normalize_thumbprint", "replace_star_host", "split_hostport",
]

STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"
ERROR_BODY_LIMIT = 64 * 1024


class NfcClient(ConnectionPool):
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


def _sent_something(exc: BaseException) -> bool:
    """Whether a failure while writing the request head may have reached the server."""
    return not isinstance(exc, (ssl.SSLCertVerificationError, ConnectionRefusedError))
