"""HTTP/1.1 request bodies in ``Transfer-Encoding: chunked`` (RFC 9112 section 7.1).

govmomi (govc, Terraform's and Packer's vSphere plugins) sends every SOAP body
chunked, and curl sends an upload from a pipe chunked, so the simulator must
read them. The decoder is strict: a size line is 1-16 hex digits (optionally
followed by extensions after ``;``), every chunk ends with CRLF, and the body
ends with the 0-size chunk and a blank line (trailer fields are read and
dropped). Anything else is a :class:`ChunkedBodyError` carrying the 4xx status
and a message that names what was wrong; after one the connection is closed,
since the framing of whatever follows is unknown.
"""

from __future__ import annotations

import re
import socket
from typing import Any

#: Longest chunk-size line (size, extensions, CRLF) and trailer line read.
MAX_LINE = 4096
#: Most trailer fields accepted after the last chunk.
MAX_TRAILERS = 100
_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")


class ChunkedBodyError(Exception):
    """A chunked body that cannot be read: answer ``status`` with the message, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_chunked(transfer_encoding: str) -> bool:
    """True when the last transfer coding is ``chunked`` (the only one that frames a request)."""
    codings = [c.strip().lower() for c in transfer_encoding.split(",") if c.strip()]
    return bool(codings) and codings[-1] == "chunked"


class ChunkedReader:
    """A file-like view (``readinto``, ``read``) of the decoded bytes of a chunked body.

    ``limit`` (bytes, None = unbounded) refuses a body that decodes to more
    with status 413, before reading the chunk that would cross it.
    """

    def __init__(self, rfile: Any, limit: int | None = None) -> None:
        self.rfile = rfile
        self.limit = limit
        self.received = 0   # decoded bytes so far
        self._left = 0      # bytes left in the current chunk
        self._done = False  # the final chunk and the trailers were read

    def readinto(self, view: Any) -> int:
        """Decode up to ``len(view)`` bytes into ``view``; 0 once the body has ended."""
        if self._done or not len(view):
            return 0
        try:
            if self._left == 0:
                self._next_chunk()
                if self._done:
                    return 0
            want = min(len(view), self._left)
            got = self.rfile.readinto(memoryview(view)[:want])
            if not got:
                raise self._ended("inside a chunk")
            self._left -= got
            self.received += got
            if self._left == 0:
                self._chunk_end()
            return got
        except (socket.timeout, TimeoutError):
            raise ChunkedBodyError(408, f"the client went silent inside a chunked body after {self.received} "
                                        "bytes (no final 0-size chunk); the body was discarded") from None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decoded bytes (all of the rest when negative)."""
        out = bytearray()
        buffer = bytearray(1 << 16)
        while size < 0 or len(out) < size:
            want = len(buffer) if size < 0 else min(len(buffer), size - len(out))
            got = self.readinto(memoryview(buffer)[:want])
            if not got:
                break
            out += buffer[:got]
        return bytes(out)

    def _line(self, what: str) -> bytes:
        line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ChunkedBodyError(400, f"chunked body: {what} longer than {MAX_LINE} bytes")
        if not line:
            raise self._ended(f"before the {what}")
        return line

    def _next_chunk(self) -> None:
        line = self._line("chunk-size line")
        match = _SIZE.fullmatch(line)
        if match is None:
            shown = line[:40].decode("ascii", "backslashreplace").rstrip("\r\n")
            if re.match(rb"[0-9A-Fa-f]{17}", line):
                raise ChunkedBodyError(413, f"chunked body: chunk size {shown!r}... does not fit in 64 bits")
            raise ChunkedBodyError(400, f"chunked body: bad chunk-size line {shown!r} (want hex digits, "
                                        "optional ';extensions', CRLF)")
        size = int(match.group(1), 16)
        if size == 0:
            self._read_trailers()
            self._done = True
            return
        if self.limit is not None and self.received + size > self.limit:
            raise ChunkedBodyError(413, f"chunked body exceeds the limit of {self.limit} bytes "
                                        f"(a chunk of {size} bytes after {self.received})")
        self._left = size

    def _chunk_end(self) -> None:
        line = self.rfile.readline(3)
        if line not in (b"\r\n", b"\n"):
            if not line:
                raise self._ended("before the CRLF that ends a chunk")
            raise ChunkedBodyError(400, f"chunked body: a chunk is longer than its size line said (after "
                                        f"{self.received} bytes, {line!r} where CRLF was due)")

    def _read_trailers(self) -> None:
        for _ in range(MAX_TRAILERS + 1):
            if self._line("trailer section") in (b"\r\n", b"\n"):
                return
        raise ChunkedBodyError(400, f"chunked body: more than {MAX_TRAILERS} trailer fields")

    def _ended(self, where: str) -> ChunkedBodyError:
        return ChunkedBodyError(400, f"chunked body ended {where} after {self.received} bytes: "
                                     "the final 0-size chunk is missing")
