"""NFC transfers, both directions: which lease and device a URL names, uploads and pulls stored, downloads sent.

The HTTP server (:mod:`nfclease.sim.server`) only frames requests; every
decision about a lease or a device, and everything done under
``world.lock`` for a transfer, is here. Uploads (POST/PUT) and pulls
(:mod:`nfclease.sim.pull`) store through :meth:`NfcTransfers.receive`;
downloads (GET) go out through :meth:`NfcTransfers.send`. Errors are
:class:`NfcError`: an HTTP status and a message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from typing import Any, Callable

from nfclease.sim.leases import Device, Lease, LeaseManager
from nfclease.sim.world import World
from nfclease.vmdkformat import VmdkError
from nfclease.vmdkread import StreamChecker

log = logging.getLogger("nfclease.sim")

STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"


class NfcTransfers:
    """The transfer side of leases: resolve device URLs, store uploads, send downloads."""

    def __init__(self, world: World, leases: LeaseManager, config: Any) -> None:
        self.world = world
        self.leases = leases
        self.config = config

    def target(self, ticket: str, name: str, method: str, overwrite: bool, content_type: str) -> tuple[Lease, Device]:
        """The lease and device ``/nfc/<ticket>/<name>`` names, or the NfcError that refuses ``method`` on it."""
        with self.world.lock:
            lease = self.leases.lease_for(ticket)
            if lease is None:
                raise NfcError(404, "unknown or expired ticket")
            lease.advance()
            device = next((d for d in lease.devices if d.name == name), None)
            if lease.state != "ready" and not self._accepts_after_release(lease):
                raise NfcError(403 if lease.state != "initializing" else 409,
                               f"the lease is {lease.state}: transfers are accepted only while it is ready")
            if device is None:
                raise NfcError(404, f"this lease has no device {name!r}")
        if lease.kind == "export" and method in ("POST", "PUT"):
            raise NfcError(405, "this is an export lease: GET the device URL")
        if lease.kind == "import" and method in ("GET", "HEAD"):
            raise NfcError(405, "this is an import lease: upload with POST (disks) or PUT (files)")
        if method == "POST" and not device.disk:
            raise NfcError(405, f"{device.name} is not a disk: upload it with PUT and 'Overwrite: t'")
        if method == "PUT" and not device.disk and device.complete and not overwrite:
            raise NfcError(412, f"{device.name} exists: send 'Overwrite: t' to replace it")
        if device.busy:
            raise NfcError(409, f"{device.name} is being transferred by another request")
        if method == "POST" and content_type not in ("", STREAM_VMDK.lower(), "application/octet-stream"):
            raise NfcError(415, f"a disk upload has Content-Type {STREAM_VMDK}, not {content_type!r}")
        return lease, device

    @staticmethod
    def _accepts_after_release(lease: Lease) -> bool:
        """DELIBERATE DEVIATION ``transfer_after_release``: a released lease's URLs keep working."""
        return lease.state in ("done", "error") and lease.deviation("transfer_after_release")

    @staticmethod
    def served(lease: Lease, size: int, write: Callable[[bytes], Any]) -> tuple[int, Callable[[bytes], Any]]:
        """The length a GET announces and the writer it sends through: the stored file, unless
        a DELIBERATE DEVIATION cuts it short or flips a byte (the manifest keeps the stored file)."""
        if lease.deviation("download_truncated"):
            return max(0, size - 512), _cut_after(max(0, size - 512), write)
        if lease.deviation("download_corrupted"):
            return size, _flip_at(size // 2, write)
        return size, write

    def check_still_ready(self, lease: Lease) -> None:
        """After an upload: refuse (403) if the lease left ``ready`` while the bytes came in."""
        with self.world.lock:
            lease.advance()
            if lease.state != "ready" and not self._accepts_after_release(lease):
                raise NfcError(403, f"the lease became {lease.state} during the transfer; the data was discarded")

    def receive(self, lease: Lease, device: Device, body: Any, length: int | None,
                chunk_size: int = 1 << 20) -> int:
        """Store a device's bytes from ``body`` (``readinto``), then hash them; return the count.

        Used by uploads (POST/PUT) and pulls. A disk must be a streamOptimized
        VMDK: its structure is walked as it arrives (:class:`StreamChecker`),
        so garbage is refused (400) at its first sector and a truncated stream
        when it ends.

        Bodies of more than :data:`PIPELINE_MIN` bytes are written by a
        :class:`_StoreBehind` thread while this one reads (and decrypts) the
        next chunk; the stored bytes are hashed afterwards
        (:meth:`Device.hash_stored`). Chunks are read into a few buffers that
        go round, never into fresh memory: see :class:`_Store` for why fresh
        pages are dear.
        """
        device.busy, device.complete = True, False
        try:
            received = self._store_body(device, body, length, chunk_size)
            if length is not None and received < length:
                raise NfcError(400, f"{device.name}: body ended after {received} of {length} bytes")
            with self.world.lock:
                device.bytes_transferred = received
                device.hashes, device.sha1 = {}, None
                device.complete = True
                device.hash_stored(self.world.lock)
                if lease.mode == "pull" and lease.state == "ready":
                    lease.renew()
            return received
        finally:
            device.busy = False

    def _store_body(self, device: Device, body: Any, length: int | None, chunk_size: int) -> int:
        """Copy ``body`` to the device's file, checking a disk's VMDK structure on the way."""
        checker = StreamChecker() if device.disk else None
        received = 0
        delay = self.config.delay
        device.path.parent.mkdir(parents=True, exist_ok=True)
        with device.path.open("wb") as out:
            pipelined = length is None or length > PIPELINE_MIN
            store = (_StoreBehind if pipelined else _Store)(out, chunk_size)
            try:
                while length is None or received < length:
                    want = chunk_size if length is None else min(chunk_size, length - received)
                    buffer = store.buffer()
                    got = _read_into(body, buffer, want)
                    if not got:
                        store.give_back(buffer)
                        break
                    if checker is not None:
                        try:
                            checker.feed(memoryview(buffer)[:got])
                        except VmdkError as exc:
                            store.give_back(buffer)
                            raise NfcError(400, f"{device.name}: not a streamOptimized VMDK: {exc}") from None
                    store.put(buffer, got)
                    received += got
                    if delay:
                        time.sleep(delay * got / (1 << 20))
            finally:
                store.close()  # waits for what is queued; raises its write error, if any
        if checker is not None and (length is None or received >= length):
            try:
                checker.finish()
            except VmdkError as exc:
                raise NfcError(400, f"{device.name}: {exc}") from None
        return received

    def send(self, device: Device, write: Callable[[bytes], Any]) -> bool:
        """Send a device's file through ``write``, hashing it; False if the connection broke."""
        hashers = {name: hashlib.new(name) for name in {"sha1"} | set(device.wanted.values())}
        sent = 0
        device.busy = True
        delay = self.config.delay
        try:
            with device.path.open("rb") as source:
                chunk = source.read(1 << 20)
                if not chunk:
                    self._record_download(device, 0, hashers)
                while chunk:
                    following = source.read(1 << 20)
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    sent += len(chunk)
                    if not following:
                        # Record before the client can see the last byte: a GetManifest or
                        # Complete sent right after the download must find it finished.
                        self._record_download(device, sent, hashers)
                    write(chunk)
                    if delay:
                        time.sleep(delay * len(chunk) / (1 << 20))
                    chunk = following
            return True
        except OSError as exc:
            log.info("download of %s broken after %d bytes: %s", device.name, sent, exc)
            return False
        finally:
            device.busy = False

    def _record_download(self, device: Device, sent: int, hashers: dict[str, Any]) -> None:
        with self.world.lock:
            device.bytes_transferred = sent
            device.hashes = {name: h.hexdigest() for name, h in hashers.items()}
            device.sha1 = device.hashes["sha1"]
            device.complete = True
            device.busy = False

    def wait_for_hashes(self, lease: Lease) -> None:
        """Before GetManifest, outside the lock: wait until stored bytes are hashed (an exact manifest)."""
        for device in list(lease.devices):
            device.hashed.wait(MANIFEST_HASH_WAIT)
            algorithm = device.wanted.get("type")
            if algorithm:
                device.checksum(algorithm)  # asked for after the transfer: hash now, outside the lock


#: Bodies up to this size are hashed and written inline (no thread for a small file).
PIPELINE_MIN = 4 << 20
#: Longest GetManifest waits for an upload's bytes to be hashed (a 4 GiB disk takes ~3 s).
MANIFEST_HASH_WAIT = 120.0
#: Chunks read ahead of the store thread: bounds the memory an upload holds.
PIPELINE_DEPTH = 4
#: Every DROP_EVERY bytes stored, the stored bytes up to DROP_WINDOW behind are dropped from the page cache.
DROP_EVERY = 8 << 20
DROP_WINDOW = 64 << 20


class _Store:
    """Hash a chunk, write it, and keep the page cache from filling up with it.

    Writing into the page cache allocates a fresh page per 4 KiB; on a VM
    whose free memory goes back to the host that is the dearest part of an
    upload (measured on the 2-core benchmark VM: ~3 ms of system time per MiB,
    more than TLS and SHA-1 together). Asking the kernel to drop what is
    written (``POSIX_FADV_DONTNEED``, which also starts its writeback) once it
    is on disk recycles a small set of pages instead, and a 4 GiB upload no
    longer leaves 4 GiB of cache behind. The last ``DROP_WINDOW`` bytes stay
    cached. Not every platform has ``posix_fadvise``; there, nothing is dropped.
    """

    def __init__(self, out: Any, chunk_size: int) -> None:
        self.out = out
        self.written = 0
        self.dropped_at = 0
        self._buffer = bytearray(chunk_size)
        try:
            self.fd: int | None = out.fileno() if hasattr(os, "posix_fadvise") else None
        except (OSError, ValueError, AttributeError):
            self.fd = None

    def buffer(self) -> bytearray:
        """A buffer to read the next chunk into (the same one, in this synchronous store)."""
        return self._buffer

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer that was not :meth:`put` (nothing to do here)."""

    def put(self, buffer: bytearray, length: int) -> None:
        self._store(memoryview(buffer)[:length])

    def _store(self, chunk: memoryview) -> None:
        self.out.write(chunk)
        self.written += len(chunk)
        if self.fd is not None and self.written - self.dropped_at >= DROP_EVERY:
            start = max(0, self.written - DROP_WINDOW)
            self.out.flush()
            try:
                os.posix_fadvise(self.fd, start, self.written - start, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.fd = None  # a file system that cannot: keep writing, stop asking
            self.dropped_at = self.written

    def close(self) -> None:
        pass


class _StoreBehind(_Store):
    """A :class:`_Store` in its own thread, fed through a bounded queue.

    Reading a chunk from a TLS socket (decryption) and storing the previous
    one then run at the same time: SSL reads and file writes release the GIL. ``PIPELINE_DEPTH + 1``
    buffers go round between the reader and this thread, so memory stays
    bounded whatever the size and no chunk lands in fresh pages. A write error
    stops the storing (later chunks are discarded, never block the reader) and
    is raised to the reader by the next :meth:`put` or :meth:`close`.
    """

    def __init__(self, out: Any, chunk_size: int) -> None:
        super().__init__(out, chunk_size)
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.free.put(self._buffer)
        for _ in range(PIPELINE_DEPTH):
            self.free.put(bytearray(chunk_size))
        self.queue: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="nfclease-sim-store", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            buffer, length = item
            if self.error is None:
                try:
                    self._store(memoryview(buffer)[:length])
                except BaseException as exc:  # noqa: BLE001 -- handed to the reader
                    self.error = exc
            self.free.put(buffer)

    def buffer(self) -> bytearray:
        if self.error is not None:
            raise self.error
        return self.free.get()

    def give_back(self, buffer: bytearray) -> None:
        self.free.put(buffer)

    def put(self, buffer: bytearray, length: int) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((buffer, length))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _read_into(body: Any, buffer: bytearray, want: int) -> int:
    """Fill ``buffer[:want]`` from ``body``; fewer bytes only at the end of the body."""
    view = memoryview(buffer)[:want]
    got = 0
    while got < want:
        count = body.readinto(view[got:])
        if not count:
            break
        got += count
    return got


def _cut_after(limit: int, write: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    sent = 0

    def cut(chunk: bytes) -> None:
        nonlocal sent
        keep = max(0, min(len(chunk), limit - sent))
        sent += len(chunk)
        if keep:
            write(chunk[:keep])

    return cut


def _flip_at(offset: int, write: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    seen = 0

    def flip(chunk: bytes) -> None:
        nonlocal seen
        if seen <= offset < seen + len(chunk):
            data = bytearray(chunk)
            data[offset - seen] ^= 0xFF
            chunk = bytes(data)
        seen += len(chunk)
        write(chunk)

    return flip


class NfcError(Exception):
    """An NFC request answered with an HTTP error status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

