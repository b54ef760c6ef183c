"""HTTPS front of the simulator: vim25 SOAP on ``/sdk``, NFC transfers on ``/nfc/``.

One HTTP/1.1 server serves both, as vCenter does on 443: keep-alive,
``Expect: 100-continue`` (answered only after the request is checked, so a
refused upload never sends its body), exact status codes with a message in
the body, and ``Content-Length`` enforced on uploads. TLS is negotiated in
the connection's own thread so a slow handshake never blocks ``accept``.
"""

from __future__ import annotations

import email.parser
import functools
import http.client
import json
import logging
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any

from pyVmomi import VmomiSupport, vmodl

from nfclease.sim.chunked import ChunkedBodyError, ChunkedReader, is_chunked
from nfclease.sim.hooks import CONTROL_PATH
from nfclease.sim.leases import Device, Lease
from nfclease.sim.nfc import NfcError
from nfclease.sim.service import Service
from nfclease.sim.soap import SoapError, decode_request, encode_fault, encode_response, prior_versions

log = logging.getLogger("nfclease.sim")

MAX_SOAP_BODY = 8 << 20
IDLE_TIMEOUT = 3600.0  # seconds a kept-alive connection may wait for its next request
LINGER_BYTES = 64 << 20  # after an early refusal, read at most this much of the refused body...
LINGER_SECONDS = 5.0     # ...for at most this long, before closing
CHUNKED = -1  # the "length" of a body framed by Transfer-Encoding: chunked
COOKIE = "vmware_soap_session"


# http.client's limits on a header block (the same numbers, the same exceptions)
_MAXLINE = 65536
_MAXHEADERS = 100
# "Name: value" in printable ASCII, one line: what every client sends. For such
# a line email's compat32 parser yields exactly (name, value stripped of leading
# blanks and the line end); anything else goes to that parser.
_SIMPLE_HEADER = re.compile(rb"[!-9;-~]+:[\t -~]*\r?\n")


def _parse_headers(fp: Any, message_class: type) -> http.client.HTTPMessage:
    """``http.client.parse_headers`` without ``email.parser`` for ordinary header blocks.

    The email parser took ~50 us of a ~250 us SOAP call (server side) for the
    seven lines pyvmomi sends; this takes ~18 us for them. A block
    with anything unusual (folded lines, non-ASCII, bare CRs, no blank line
    before EOF) is parsed by the email parser exactly as the stdlib does.
    """
    lines = []
    while True:
        line = fp.readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAXHEADERS:
            raise http.client.HTTPException(f"got more than {_MAXHEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    fields = lines[:-1]
    if lines[-1] and all(_SIMPLE_HEADER.fullmatch(field) for field in fields):
        message = message_class()
        for field in fields:
            name, _, value = field.decode("ascii").partition(":")
            message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
        return message
    return email.parser.Parser(_class=message_class).parsestr(b"".join(lines).decode("iso-8859-1"))


# Per-call header parsing that is a pure function of the header's text, cached
# (bounded: LRU, short values only). SimpleCookie alone cost ~17 us of a ~200 us
# SOAP call, the version scan ~6 us.
@functools.lru_cache(maxsize=1024)
def _cookie_session(raw: str) -> str | None:
    """The ``vmware_soap_session`` value of a Cookie header, or None."""
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value.strip('"') if morsel else None


@functools.lru_cache(maxsize=64)
def _client_version(action: str, server_version: str) -> str:
    """pyVmomi's name of the version a SOAPAction (``urn:vim25/6.7``) names, capped at ours."""
    if action.startswith("urn:vim25/"):
        wanted = action.split("/", 1)[1]
        for name, vid in VmomiSupport.versionIdMap.items():
            if vid == wanted and VmomiSupport.serviceNsMap.get(name) == "vim25":
                if VmomiSupport.IsChildVersion(server_version, name):
                    return name
    return server_version


class SimHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP server that wraps each accepted socket in TLS in its own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], service: Service, context: ssl.SSLContext | None,
                 version: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.service = service
        self.tls = context
        self.version = version
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, NfcRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its connection is routine under load: log it, no traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            log.info("connection from %s ended: %r", client_address, exc)
        else:
            log.error("request from %s failed:\n%s", client_address, traceback.format_exc())

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection, tracked in :attr:`connections` as the socket actually served.

        After the TLS handshake the raw socket no longer owns its descriptor:
        the set must hold the TLS socket, or the entry is never removed and
        :meth:`close_connections` cannot end the connection.
        """
        conn = request
        with self.connections_lock:
            self.connections.add(conn)
        try:
            if self.tls is not None:
                conn.settimeout(30)
                try:
                    wrapped = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address, exc)
                    return
                with self.connections_lock:
                    self.connections.discard(conn)
                    self.connections.add(wrapped)
                conn = wrapped
                conn.settimeout(None)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(conn)

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class NfcRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nfclease-sim/0.1"
    rbufsize = 1 << 16
    # headers and body go out in separate writes: with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms per SOAP call on loopback)
    disable_nagle_algorithm = True
    server: SimHTTPServer

    unread = 0  # body bytes of a refused request the client may still be sending
    status_sent: int | None = None  # the status of the answer sent, if any
    answer: tuple[int, str] | None = None  # status and message of an answer sent by _error
    body: Any = None  # what an upload read its body from (it counts the bytes)

    def handle_one_request(self) -> None:
        self.unread = 0
        # Waiting for the next request on a kept-alive connection may be long
        # (pyvmomi itself drops connections idle for 900 s); inside a request,
        # a client silent for request_timeout is gone, and its thread is freed.
        self.connection.settimeout(IDLE_TIMEOUT)
        super().handle_one_request()
        if self.unread:
            self._linger(self.unread)

    def _linger(self, remaining: int) -> None:
        """Lingering close (RFC 9112 9.6): drop what the client still sends of a refused body.

        Closing with unread data makes the kernel reset the connection, and the
        reset can destroy the refusal (413, 404...) before the client reads it:
        the client then sees a dropped connection instead of the answer.
        """
        self.close_connection = True
        remaining = min(remaining, LINGER_BYTES)
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            self.wfile.flush()
            self.connection.settimeout(1.0)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    # quiet: the simulator reports through its own logger
    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # send_response logs every request: format only if shown
            log.debug("%s - %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Status line, headers and body in one write: one TLS record and one
        # segment, so the client has the whole answer after one read (two
        # writes cost a second SSL_write and sendmsg per SOAP call and could
        # wake the client twice).
        buffer = getattr(self, "_headers_buffer", None)
        if buffer is None or self.request_version == "HTTP/0.9":
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        buffer.append(b"\r\n")
        if self.command != "HEAD":
            buffer.append(body)
        self.flush_headers()

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.answer = (status, message)
        self._send(status, (message + "\n").encode(), headers=headers)

    def parse_request(self) -> bool:
        self.connection.settimeout(self.server.service.config.request_timeout)
        return self._parse_request()

    def _parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` of Python 3.11, headers read by :func:`_parse_headers`.

        Only the header parsing differs (the stdlib calls
        ``http.client.parse_headers``, which cannot be swapped per class).
        """
        self.command = None  # type: ignore[assignment]  # set in case of error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1")
        requestline = requestline.rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if len(words) == 0:
            return False

        if len(words) >= 3:  # Enough to determine protocol version
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                version_number = base_version_number.split(".")
                if len(version_number) != 2:
                    raise ValueError
                if any(not component.isdigit() for component in version_number):
                    raise ValueError("non digit in http version")
                if any(len(component) > 10 for component in version_number):
                    raise ValueError("unreasonable length http version")
                major, minor = int(version_number[0]), int(version_number[1])
            except (ValueError, IndexError):
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad request version (%r)" % version)
                return False
            if (major, minor) >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if (major, minor) >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                                "Invalid HTTP version (%s)" % base_version_number)
                return False
            self.request_version = version

        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request syntax (%r)" % requestline)
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad HTTP/0.9 request type (%r)" % command)
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):  # gh-87389: never an absolute URI without scheme
            self.path = "/" + self.path.lstrip("/")

        try:
            self.headers = _parse_headers(self.rfile, self.MessageClass)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False

        conntype = self.headers.get("Connection", "")
        if conntype.lower() == "close":
            self.close_connection = True
        elif conntype.lower() == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (expect.lower() == "100-continue" and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"):
            if not self.handle_expect_100():
                return False
        return True

    def handle_expect_100(self) -> bool:
        """Check an upload before inviting its body; refuse early with the real status."""
        if self.path.startswith("/nfc/"):
            try:
                self._nfc_target(self.command)
                self._content_length(required=True)
            except NfcError as exc:
                self.close_connection = True
                self._error(exc.status, str(exc))
                return False
            if self.server.service.config.deviates("expect_continue_final_first"):
                self.close_connection = True  # DELIBERATE DEVIATION: 200 before the body, which is never read
                self._error(200, "received")
                return False
        return super().handle_expect_100()

    def _content_length(self, required: bool) -> int | None:
        """The body's framing: its Content-Length, :data:`CHUNKED`, or None (no body).

        ``Transfer-Encoding: chunked`` is read as govmomi and curl send it;
        any other transfer coding, or one beside a Content-Length (RFC 9112
        6.3: a smuggling risk), is refused.
        """
        coding = self.headers.get("Transfer-Encoding")
        raw = self.headers.get("Content-Length")
        if coding is not None:
            if not is_chunked(coding):
                raise NfcError(400, f"Transfer-Encoding {coding!r} is not accepted; send chunked or Content-Length")
            if raw is not None:
                raise NfcError(400, "both Transfer-Encoding and Content-Length: send one of them")
            if self.request_version < "HTTP/1.1":
                raise NfcError(400, f"Transfer-Encoding in an {self.request_version} request")
            return CHUNKED
        if raw is None:
            if required:
                raise NfcError(411, "Content-Length (or Transfer-Encoding: chunked) is required")
            return None
        try:
            length = int(raw)
        except ValueError:
            raise NfcError(400, f"Content-Length {raw!r} is not a number") from None
        if length < 0:
            raise NfcError(400, f"Content-Length {length} is negative")
        return length

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:
        self._drain_or_close()  # a body on GET/HEAD is legal; unread, it would be parsed as the next request
        path = self.path.split("?", 1)[0]
        if path in ("/sdk/vimServiceVersions.xml", "/sdk/vimServiceVersions.xml/"):
            self._send(200, self._service_versions(), "text/xml; charset=utf-8")
        elif path.startswith("/nfc/"):
            self._nfc(self._nfc_download)
        elif path == CONTROL_PATH:
            self._control()
        elif path in ("/", "/sdk", "/sdk/"):
            self._error(200 if path == "/" else 405,
                        "nfclease simulator: SOAP is POST /sdk; transfers are under /nfc/",
                        headers={"Allow": "POST"} if path != "/" else None)
        else:
            self._error(404, f"no such resource: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/sdk", "/sdk/"):
            self._soap()
        elif path.startswith("/nfc/"):
            self._nfc(self._nfc_upload)
        elif path == CONTROL_PATH:
            self._control()
        else:
            self._drain_or_close()
            self._error(404, f"no such resource: {path}")

    def do_PUT(self) -> None:
        if self.path.startswith("/nfc/"):
            self._nfc(self._nfc_upload)
        elif self.path.split("?", 1)[0] == CONTROL_PATH:
            self._control()
        else:
            self._drain_or_close()
            self._error(405, "PUT is for non-disk files under /nfc/", headers={"Allow": "GET, POST"})

    def _unsupported(self) -> None:
        self._drain_or_close()
        self._error(405, f"method {self.command} is not supported", headers={"Allow": "GET, HEAD, POST, PUT"})

    do_DELETE = do_PATCH = do_OPTIONS = _unsupported

    def end_headers(self) -> None:
        # a connection the server will close must say so, or the client reuses it and
        # its next request meets a closed socket (e.g. a download after a bad framing header)
        if self.close_connection and not any(line.lower().startswith(b"connection:")
                                              for line in getattr(self, "_headers_buffer", [])):
            self.send_header("Connection", "close")
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers an unknown method (501) without reading its body,
        # which then desynchronised the keep-alive connection: drain or close first
        if code == HTTPStatus.NOT_IMPLEMENTED and getattr(self, "headers", None) is not None:
            self._drain_or_close()
        super().send_error(code, message, explain)

    def _drain_or_close(self) -> None:
        """Keep the connection usable: read a small body, or close after a big one."""
        try:
            length = self._content_length(required=False) or 0
        except NfcError:
            self.close_connection = True
            return
        if length == CHUNKED:
            try:
                ChunkedReader(self.rfile, limit=MAX_SOAP_BODY).read()
            except (ChunkedBodyError, OSError) as exc:
                self.close_connection = True
                if getattr(exc, "status", None) == 413:
                    self.unread = LINGER_BYTES
        elif length <= MAX_SOAP_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True
            self.unread = length

    def _control(self) -> None:
        """``/nfclease/scenario``: switch the client scenario without SOAP (loopback only, as the server)."""
        try:
            length = self._content_length(required=False) or 0
        except NfcError as exc:
            self.close_connection = True
            self._error(exc.status, str(exc))
            return
        body = self.rfile.read(length) if 0 <= length <= 4096 else b""
        if not 0 <= length <= 4096:  # chunked or big: not a scenario name
            self.close_connection = True
        status, answer = self.server.service.leases.hooks.control(self.command, body)
        self._send(status, (json.dumps(answer, indent=1) + "\n").encode(), "application/json")

    # ------------------------------------------------------------------ SOAP
    def _service_versions(self) -> bytes:
        version = self.server.version
        current = VmomiSupport.versionIdMap[version]
        prior = "".join(f"<version>{v}</version>" for v in prior_versions(version))
        return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<namespaces version="1.0"><namespace>'
                f"<name>urn:vim25</name><version>{current}</version>"
                f"<priorVersions>{prior}</priorVersions></namespace></namespaces>\n").encode()

    def _soap_version(self) -> str:
        """The version the client speaks (SOAPAction ``urn:vim25/6.7``), capped at ours."""
        action = (self.headers.get("SOAPAction") or "").strip('"')
        if len(action) <= 64:  # every call of a client sends the same one: look it up once
            return _client_version(action, self.server.version)
        return _client_version.__wrapped__(action, self.server.version)

    def _soap(self) -> None:
        version = self._soap_version()
        try:
            length = self._content_length(required=True)
        except NfcError as exc:
            self.close_connection = True
            self._soap_fault(vmodl.fault.InvalidRequest(), str(exc), version, status=exc.status)
            return
        if length == CHUNKED:
            try:
                body = ChunkedReader(self.rfile, limit=MAX_SOAP_BODY).read()
            except ChunkedBodyError as exc:
                self._refuse_chunked(exc, functools.partial(self._soap_fault, vmodl.fault.InvalidRequest(),
                                                            version=version))
                return
        elif length > MAX_SOAP_BODY:
            self.close_connection = True
            self._soap_fault(vmodl.fault.InvalidRequest(),
                             f"request body of {length} bytes exceeds the limit of {MAX_SOAP_BODY}",
                             version, status=413)
            self.unread = length
            return
        else:
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return
        delay = self.server.service.config.delay
        if delay:
            time.sleep(delay / 1000)
        session_key = self._session_cookie()
        hooks = self.server.service.leases.hooks
        request = None
        started = time.monotonic()
        try:
            request = decode_request(body, version)
            time.sleep(hooks.soap_pause(request.method))
            result, result_type, new_session = self.server.service.dispatch(request, session_key)
            payload = encode_response(request.method, result, result_type, version)
        except SoapError as exc:
            if request is not None:
                hooks.soap_done(request.method, request.this, request.args, session_key, None, exc.fault,
                                str(exc), started, time.monotonic())
            message = str(exc)
            if request is not None and request.method.startswith("HttpNfcLease") and \
                    self.server.service.config.deviates("fault_message_missing"):
                message = exc.fault.msg = ""  # DELIBERATE DEVIATION: a fault without a message
            self._soap_fault(exc.fault, message, version)
            return
        except Exception as exc:  # a bug in the simulator: report it as a fault, keep serving
            log.error("SOAP handler failed:\n%s", traceback.format_exc())
            self._soap_fault(vmodl.fault.SystemError(reason=repr(exc)),
                             f"internal error in the simulator: {exc!r}", version)
            return
        hooks.soap_done(request.method, request.this, request.args, session_key, result, None, None, started,
                        time.monotonic())
        headers = {}
        if new_session is not None:
            headers["Set-Cookie"] = f'{COOKIE}="{new_session.key}"; Path=/; HttpOnly; Secure'
        self._send(200, payload, "text/xml; charset=utf-8", headers)

    def _soap_fault(self, fault: Any, message: str, version: str, status: int = 500) -> None:
        self._send(status, encode_fault(fault, message, version), "text/xml; charset=utf-8")

    def _refuse_chunked(self, exc: ChunkedBodyError, answer: Any) -> None:
        """Answer a chunked body that cannot be read (``answer(message, status=...)``), then close.

        What follows a broken chunk is not a request; an oversized body is
        drained a while first (lingering close) so the refusal is read.
        """
        self.close_connection = True
        if exc.status == 413:
            self.unread = LINGER_BYTES
        try:
            answer(str(exc), status=exc.status)
        except OSError:
            pass  # the client is gone (e.g. it closed inside the body): nobody to tell

    def _session_cookie(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        if len(raw) <= 512:  # a session sends the same header on every call: parse it once
            return _cookie_session(raw)
        return _cookie_session.__wrapped__(raw)

    # ------------------------------------------------------------------ NFC
    def _nfc_target(self, method: str) -> tuple[Lease, Device]:
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) != 4 or not parts[2] or not parts[3]:
            raise NfcError(404, "NFC URLs look like /nfc/<ticket>/<file>")
        overwrite = (self.headers.get("Overwrite") or "").lower() == "t"
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        return self.server.service.nfc.target(parts[2], parts[3], method, overwrite, content_type)

    def _nfc_upload(self) -> None:
        try:
            lease, device = self._nfc_target(self.command)
            length = self._content_length(required=True)
        except NfcError as exc:
            self._drain_or_close()
            self._error(exc.status, str(exc))
            return
        existed = device.complete
        nfc = self.server.service.nfc
        hooks = self.server.service.leases.hooks
        fault = hooks.upload_fault(lease, device)
        if fault in ("500", "503"):  # a client scenario: the upload is refused before its body
            self._drain_or_close()
            self._error(int(fault), f"injected by the simulator: upload refused with {fault}",
                        headers={"Retry-After": "1"} if fault == "503" else None)
            return
        body = self.rfile if length != CHUNKED else ChunkedReader(self.rfile)
        self.body = hooks.upload_body(lease, device, body, None if length == CHUNKED else length, fault)
        try:
            received = nfc.receive(lease, device, self.body, None if length == CHUNKED else length)
        except ChunkedBodyError as exc:
            log.info("chunked upload of %s refused: %s", device.name, exc)
            self._refuse_chunked(exc, lambda message, status: self._error(status, message))
            return
        except NfcError as exc:
            self.close_connection = True
            self._error(exc.status, str(exc))
            return
        except OSError as exc:
            self.close_connection = True
            log.info("upload of %s broken: %s", device.name, exc)
            return
        try:
            nfc.check_still_ready(lease)
        except NfcError as exc:
            self._error(exc.status, str(exc))
            return
        status = 201 if (self.command == "PUT" and not existed) else 200
        if lease.deviation("upload_status_204"):
            self._send(204, b"")  # DELIBERATE DEVIATION: no 200/201 for a stored upload
            return
        self._error(status, f"received {received} bytes for {device.name}")

    def _nfc(self, action: Any) -> None:
        """Run an NFC request and tell the hooks how it ended (the recorder writes it down)."""
        self.answer, self.body, self.status_sent = None, None, None
        started = time.monotonic()
        try:
            action()
        finally:
            self._nfc_done(started)

    def _nfc_done(self, started: float) -> None:
        parts = self.path.split("?", 1)[0].split("/")
        service = self.server.service
        with service.world.lock:
            lease = service.leases.lease_for(parts[2]) if len(parts) == 4 else None
            device = next((d for d in lease.devices if d.name == parts[3]), None) if lease else None
        if lease is None or device is None:
            return
        status, message = self.answer or (self.status_sent, None)
        call = "Download" if self.command in ("GET", "HEAD") else "Upload"
        headers = {"method": self.command, "contentType": self.headers.get("Content-Type"),
                   "contentLength": self.headers.get("Content-Length"),
                   "transferEncoding": self.headers.get("Transfer-Encoding"),
                   "overwrite": self.headers.get("Overwrite")}
        moved = getattr(self.body, "count", None)
        if moved is None and call == "Download" and status == 200:
            moved = device.bytes_transferred
        value = {"bytes": moved, "injected": getattr(self.body, "kind", "") or ""}
        service.leases.hooks.transfer_done(lease, device, call, headers, status, value, message, started,
                                           time.monotonic())

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status_sent = code
        super().send_response(code, message)

    def _nfc_download(self) -> None:
        try:
            lease, device = self._nfc_target(self.command)
        except NfcError as exc:
            self._error(exc.status, str(exc))
            return
        try:
            size = device.path.stat().st_size
        except OSError:
            self._error(404, f"{device.name} has no content")
            return
        size, write = self.server.service.nfc.served(lease, size, self.wfile.write)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not self.server.service.nfc.send(device, write):
            self.close_connection = True
