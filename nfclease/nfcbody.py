"""NFC bodies: what a transfer streams, hashed on the way (SHA-1, optionally SHA-256), and its result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Union

CHUNK = 256 * 1024

Body = Union[bytes, bytearray, memoryview, BinaryIO, Iterable[bytes], Any]
ProgressCallback = Callable[[int], None]


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
