"""HTTP/1.1 framing for the simulator's server: nothing about vSphere here.

:class:`Http1Handler` is ``BaseHTTPRequestHandler`` made strict and fast:
keep-alive with an idle timeout and a per-request one, ``Content-Length`` or
``Transfer-Encoding: chunked`` framing checked (:meth:`_content_length`),
bodies of refused requests drained or lingered over so the refusal reaches
the client, an answer written in one piece, and header blocks parsed without
``email.parser`` when they are ordinary (:func:`_parse_headers`). The server
(:mod:`nfclease.sim.server`) routes on top of it.
"""

from __future__ import annotations

import email.parser
import http.client
import logging
import re
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from nfclease.sim.chunked import ChunkedBodyError, ChunkedReader, is_chunked
from nfclease.sim.nfc import NfcError

log = logging.getLogger("nfclease.sim")

MAX_SOAP_BODY = 8 << 20  # the largest body read whole (SOAP; a drained one)
IDLE_TIMEOUT = 3600.0  # seconds a kept-alive connection may wait for its next request
LINGER_BYTES = 64 << 20  # after an early refusal, read at most this much of the refused body...
LINGER_SECONDS = 5.0     # ...for at most this long, before closing
CHUNKED = -1  # the "length" of a body framed by Transfer-Encoding: chunked


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


class Http1Handler(BaseHTTPRequestHandler):
    """The HTTP/1.1 plumbing the simulator's routes stand on."""

    protocol_version = "HTTP/1.1"
    server_version = "nfclease-sim/0.1"
    rbufsize = 1 << 16
    # headers and body go out in separate writes: with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms per SOAP call on loopback)
    disable_nagle_algorithm = True

    unread = 0  # body bytes of a refused request the client may still be sending
    answer: tuple[int, str] | None = None  # status and message of an answer sent by _error

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

    def request_timeout(self) -> float:
        """Seconds a client may stay silent inside a request (headers, body)."""
        return 120.0

    def parse_request(self) -> bool:
        self.connection.settimeout(self.request_timeout())
        return self._parse_request()

    def _parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` of Python 3.11, headers read by :func:`_parse_headers`.

        Only the header parsing differs (the stdlib calls
        ``http.client.parse_headers``, which cannot be swapped per class), so
        this keeps the stdlib's steps and messages: the request line
        (:meth:`_parse_request_line`), then the header block.
        """
        if not self._parse_request_line():
            return False
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

    def _parse_request_line(self) -> bool:
        """Method, path and version from the request line, as the stdlib parses them."""
        self.command = None  # type: ignore[assignment]  # set in case of error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
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
        return True

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
