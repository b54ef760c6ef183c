"""A lease session's transfers: device URLs, generated upload bodies, Upload/Download, the keepalive.

:class:`LeaseTransfers` is a base of :class:`nfclease.session.LeaseSession`
(it records through the session's ``_call``); everything here is importable
from :mod:`nfclease.session` too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal

from nfclease import vocabulary as V
from nfclease.callrecord import NoDeviceUrl
from nfclease.ovf import OvfDiskItem, OvfFileItem, OvfPackage
from nfclease.transfer import NfcClient, TransferResult

if TYPE_CHECKING:
    from nfclease.session import LeaseSession

UploadVariant = Literal["whole", "truncated", "garbage"]
DEFAULT_FILE_SIZE = 8192  # an nvram is about this size
GARBAGE_LIMIT = 1 << 20


def pattern_bytes(seed: str, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Deterministic, incompressible bytes for a non-disk file, generated in chunks."""
    for index, offset in enumerate(range(0, size, chunk)):
        n = min(chunk, size - offset)
        yield hashlib.shake_256(f"nfclease-file\0{seed}\0{index}".encode()).digest(n)


def garbage_bytes(seed: str, size: int) -> bytes:
    """Seeded bytes that are certainly not a VMDK (no ``KDMV`` magic), at most 1 MiB."""
    data = bytearray(hashlib.shake_256(f"nfclease-garbage\0{seed}".encode()).digest(max(1, min(size, GARBAGE_LIMIT))))
    if data[:4] == b"KDMV":
        data[0] ^= 0xFF
    return bytes(data)


def _prefix(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of a chunk stream (a truncated upload)."""
    left = limit
    for chunk in chunks:
        if left <= 0:
            return
        piece = chunk[:left]
        left -= len(piece)
        yield piece


class LeaseTransfers:
    """``Upload``/``Download`` and what they need, for :class:`nfclease.session.LeaseSession`."""

    lease: Any
    kind: str | None
    info: Any
    package: OvfPackage | None
    import_items: dict[str, OvfDiskItem | OvfFileItem]
    pattern: str
    nfc: NfcClient
    uploaded: dict[str, TransferResult]
    downloaded: dict[str, TransferResult]
    _bytes_done: int
    _bytes_expected: int
    _counter_lock: threading.Lock
    moid: Any
    _fetch: Callable[..., Any]
    _call: Callable[..., Any]
    _writable: Callable[[str], None]

    def device_urls(self) -> list[Any]:
        """Device URLs from the last info seen (read once if none was seen yet)."""
        if self.info is None:
            self._fetch()
        return list(self.info.deviceUrl or []) if self.info is not None else []

    def device(self, device: int | str | Any) -> Any:
        """A DeviceUrl by index, ``key``, ``importKey``, or the object itself."""
        if not isinstance(device, (int, str)):
            return device
        urls = self.device_urls()
        if isinstance(device, int):
            if 0 <= device < len(urls):
                return urls[device]
        else:
            for url in urls:
                if device in (url.key, getattr(url, "importKey", None)):
                    return url
        raise NoDeviceUrl(f"lease {self.lease._moId} lists no device {device!r}")

    def _is_disk(self, url: Any) -> bool:
        item = self.import_items.get(getattr(url, "importKey", None) or "")
        if item is not None:
            return isinstance(item, OvfDiskItem)
        disk = getattr(url, "disk", None)
        if disk is not None:
            return bool(disk)
        return getattr(url, "fileSize", None) is None

    def upload_body(self, url: Any, variant: UploadVariant = "whole") -> tuple[Any, int]:
        """The body and its length for an upload variant to ``url``.

        whole: the disk as a streamOptimized VMDK of the session's content
        pattern (or the file's bytes); truncated: the first half of that;
        garbage: seeded bytes that are no VMDK (at most 1 MiB).
        """
        from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

        item = self.import_items.get(getattr(url, "importKey", None) or "")
        seed = f"{self.package.name if self.package else self.moid}:{url.key}"
        if self._is_disk(url):
            capacity = item.capacity if isinstance(item, OvfDiskItem) else 1 << 20
            disk = StreamOptimizedDisk(capacity, ContentPattern(self.pattern, seed), record_sha1=False)
            chunks: Iterable[bytes] = disk
            size = disk.size
        else:
            size = item.size if isinstance(item, OvfFileItem) else (getattr(url, "fileSize", None) or DEFAULT_FILE_SIZE)
            chunks = pattern_bytes(seed, size)
        if variant == "whole":
            return chunks, size
        if variant == "truncated":
            cut = max(1, size // 2) if size > 1 else 0
            return _prefix(chunks, cut), cut
        if variant == "garbage":
            data = garbage_bytes(seed, size)
            return data, len(data)
        raise ValueError(f"unknown upload variant {variant!r}")

    def expected_bytes(self) -> int:
        """What whole uploads of every device add up to (for progress percent)."""
        if not self._bytes_expected:
            self._bytes_expected = sum(self.upload_body(u)[1] for u in self.device_urls())
        return self._bytes_expected

    def transfer_percent(self) -> int:
        """Bytes moved so far as 0-100 (multiplied first: no stuck-at-0 integer division).

        Imports count against the whole uploads' size; exports against the
        disks' capacity (a compressed stream is smaller, so this never passes 100).
        """
        if self._bytes_expected <= 0 and self.info is not None:
            if self.kind == "import":
                self.expected_bytes()
            else:
                self._bytes_expected = (self.info.totalDiskCapacityInKB or 0) * 1024
        total = self._bytes_expected
        if total <= 0:
            return 0
        return max(0, min(100, self._bytes_done * 100 // total))

    def _count(self, n: int) -> None:
        with self._counter_lock:
            self._bytes_done += n

    def upload(self, device: int | str | Any = 0, variant: UploadVariant = "whole", *,
               body: Any | None = None, length: int | None = None,
               expect_continue: bool | None = None, sha256: bool = False) -> TransferResult:
        """``Upload``: POST a disk (streamVmdk) or PUT a file (Overwrite: t) to the device URL.

        ``body``/``length`` replace the generated content. Returns the
        :class:`TransferResult` (sha1, and sha256 if asked, of exactly what was sent).
        """
        self._writable("Upload")
        args: dict[str, Any] = {"device": device if isinstance(device, (int, str)) else getattr(device, "key", None),
                                "variant": variant, "size": length}

        def send() -> TransferResult:
            url = self.device(device)
            args["device"] = url.key
            payload, size = (body, length) if body is not None else self.upload_body(url, variant)
            if size is None:
                raise ValueError("an explicit body needs its length")
            args["size"] = size
            sender = self.nfc.upload_disk if self._is_disk(url) else self.nfc.upload_file
            result = sender(url.url, payload, size, expect_continue=expect_continue, sha256=sha256,
                            on_bytes=self._count,
                            thumbprint=getattr(url, "sslThumbprint", None))
            self.uploaded[url.key] = result
            return result

        return self._call(V.UPLOAD, args, send, TransferResult.summary)

    def upload_all(self, variant: UploadVariant = "whole") -> list[TransferResult]:
        """Upload every device of the lease (one ``Upload`` event each)."""
        self.expected_bytes()
        return [self.upload(url, variant) for url in self.device_urls()]

    def download(self, device: int | str | Any = 0, *, sha256: bool = False,
                 sink: Callable[[bytes], Any] | None = None) -> TransferResult:
        """``Download``: GET the device URL, hashing as it streams (never held whole)."""
        args: dict[str, Any] = {"device": device if isinstance(device, (int, str)) else getattr(device, "key", None)}

        def fetch() -> TransferResult:
            url = self.device(device)
            args["device"] = url.key
            result = self.nfc.download(url.url, sha256=sha256, sink=sink, on_bytes=self._count,
                                       thumbprint=getattr(url, "sslThumbprint", None))
            self.downloaded[url.key] = result
            return result

        return self._call(V.DOWNLOAD, args, fetch, TransferResult.summary)


class KeepAlive:
    """Progress every ``interval`` seconds in a thread, stopping for good on the first error.

    As govmomi's lease updater does: the current percent is sent even when
    unchanged (default: the session's bytes moved over bytes expected).
    Bounded by ``max_seconds``. ``error`` holds what stopped it, if anything.
    """

    def __init__(self, session: LeaseSession, interval: float = 2.0,
                 percent: int | Callable[[], int] | None = None, max_seconds: float = 3600.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.session = session
        self.interval = interval
        self.percent = percent
        self.max_seconds = max_seconds
        self.calls = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _percent(self) -> int:
        if self.percent is None:
            return self.session.transfer_percent()
        return self.percent() if callable(self.percent) else self.percent

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval):
            if time.monotonic() >= deadline:
                return
            try:
                self.session.progress(self._percent())
                self.calls += 1
            except Exception as exc:  # recorded as an event already; stop like govmomi
                self.error = exc
                return

    def start(self) -> "KeepAlive":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"keepalive-{self.session.handle}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop and wait for an in-flight Progress to finish (bounded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float) -> bool:
        """Wait (bounded) for the loop to end by itself (first error or ``max_seconds``); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "KeepAlive":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
