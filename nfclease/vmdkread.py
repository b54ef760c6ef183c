"""streamOptimized VMDK streams, the reader: follows a stream sequentially (as a receiving host
must), cross-checks every marker, grain table, the directory and the footer, and raises
:class:`~nfclease.vmdkformat.VmdkError` with the stream offset of what is wrong.

:class:`StreamChecker` does the same incrementally, fed chunk by chunk (the
simulator checks uploads with it as they arrive).
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from array import array
from dataclasses import replace
from pathlib import Path
from typing import IO, BinaryIO, Iterable, Iterator

from nfclease.vmdkformat import (
    Descriptor,
    GRAIN_MARKER,
    HeaderInfo,
    MARKER_EOS,
    MARKER_FOOTER,
    MARKER_GD,
    MARKER_GT,
    MAX_PREAMBLE,
    META_MARKER,
    SECTOR_SIZE,
    VMDK_HEADER_SIZE,
    VmdkError,
    check_header,
    parse_descriptor,
    round_up,
    sectors_for,
    u32_array_from_le,
)

# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------

_READ_BLOCK = 1024 * 1024


class _Source:
    """Sequential byte source over bytes, a file object or an iterable of chunks; hashes what it reads."""

    def __init__(self, source: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._chunks: Iterator[bytes] = iter([bytes(source)])
        elif hasattr(source, "read"):
            reader = source.read  # type: ignore[union-attr]
            self._chunks = iter(lambda: reader(_READ_BLOCK) or b"", b"")
        else:
            self._chunks = iter(source)  # type: ignore[arg-type]
        self._buf = bytearray()
        self._off = 0
        self.pos = 0  # stream offset of the next unread byte
        self._hasher = hashlib.sha1()
        self._eof = False

    def _more(self) -> bool:
        if self._eof:
            return False
        for chunk in self._chunks:
            if chunk:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"stream chunks must be bytes, got {type(chunk).__name__}")
                self._hasher.update(chunk)
                if self._off:
                    del self._buf[: self._off]
                    self._off = 0
                self._buf += chunk
                return True
        self._eof = True
        return False

    def available(self) -> int:
        return len(self._buf) - self._off

    def read(self, n: int, what: str) -> bytes:
        while self.available() < n:
            if not self._more():
                raise VmdkError(f"truncated stream: {what} needs {n} bytes at offset {self.pos}, "
                                f"only {self.available()} left")  # fmt: skip
        out = bytes(memoryview(self._buf)[self._off : self._off + n])
        self._off += n
        self.pos += n
        return out

    def at_eof(self) -> bool:
        return self.available() == 0 and not self._more()

    def drain(self) -> tuple[int, int]:
        """Consume (and hash) the bytes left: ``(count, count of non-zero bytes)``."""
        total = nonzero = 0
        while True:
            rest = memoryview(self._buf)[self._off :]
            total += len(rest)
            self.pos += len(rest)
            nonzero += len(rest) - bytes(rest).count(0)
            rest.release()
            self._off = len(self._buf)
            if not self._more():
                return total, nonzero

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


class StreamDecoder:
    """Iterates ``(offset, data)`` for each grain of a streamOptimized stream, verifying as it goes.

    Grains come in stream order, trimmed to the capacity. Structure checks that
    need later data (a grain table naming each grain, the directory naming each
    table, the footer naming the directory) run when that data arrives, so a
    malformed stream raises :class:`VmdkError` at the latest when iteration
    ends: consume the iterator fully before trusting what it yielded. After a
    complete pass, :attr:`header`, :attr:`descriptor`, :attr:`footer`,
    :attr:`grains`, :attr:`stream_bytes` and :attr:`sha1` describe the stream.

    Two layouts are accepted. VMware's (and this module's writer): header
    ``gdOffset`` is ``GD_AT_END``, grain tables and the directory follow the
    grains behind markers, and a footer carries the real ``gdOffset``. And
    qemu-img's: the tables are preallocated in the metadata area before the
    first grain, the header holds their real offset, and the stream ends with
    just the end-of-stream marker; the tables are then read up front and each
    grain is checked against them when it arrives.
    """

    def __init__(self, source: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]) -> None:
        self._src = _Source(source)
        self.header: HeaderInfo | None = None
        self.descriptor: Descriptor | None = None
        self.footer: HeaderInfo | None = None
        self.grains = 0
        self.stream_bytes = 0
        self.sha1: str | None = None
        self._started = False
        self._seen = bytearray()  # one bit per grain index: duplicates, and completeness (qemu layout)
        self._unreferenced: dict[int, int] = {}  # grain marker sector -> lba, until a stream GT names it
        self._gt_span_at: dict[int, int | None] = {}  # stream GT sector -> span index (None: empty table)
        self._gd_sector: int | None = None
        self._preamble_gts: list[array | None] | None = None  # qemu layout: table per span

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        if self._started:
            raise RuntimeError("a StreamDecoder can be iterated only once")
        self._started = True
        return self._decode()

    # -- preamble --------------------------------------------------------------

    def _read_preamble(self) -> HeaderInfo:
        src = self._src
        hdr = check_header(src.read(VMDK_HEADER_SIZE, "the sparse extent header"))
        self.header = hdr
        self._seen = bytearray(-(-hdr.num_grains // 8))
        metadata_end = max(hdr.overhead, hdr.descriptor_offset + hdr.descriptor_size)
        if metadata_end * SECTOR_SIZE > MAX_PREAMBLE:
            raise VmdkError(f"metadata area of {metadata_end} sectors before the first grain is too large to "
                            f"stream (limit {MAX_PREAMBLE // SECTOR_SIZE})")  # fmt: skip
        area = b"\0" * SECTOR_SIZE + src.read((metadata_end - 1) * SECTOR_SIZE, "the metadata area up to overHead")
        raw = area[hdr.descriptor_offset * SECTOR_SIZE : (hdr.descriptor_offset + hdr.descriptor_size) * SECTOR_SIZE]
        self.descriptor = self._check_descriptor(hdr, raw)
        if not hdr.gd_at_end and hdr.gd_offset < metadata_end:
            self._preamble_gts = self._tables_in_preamble(hdr, area, metadata_end)
        return hdr

    @staticmethod
    def _check_descriptor(hdr: HeaderInfo, raw: bytes) -> Descriptor:
        try:
            text = raw.split(b"\0", 1)[0].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VmdkError(f"embedded descriptor is not UTF-8 text: {exc}") from None
        desc = parse_descriptor(text)
        if desc.create_type != "streamOptimized":
            raise VmdkError(f"descriptor createType is {desc.create_type!r}, expected 'streamOptimized'")
        if len(desc.extents) != 1 or desc.extents[0][2] != "SPARSE":
            raise VmdkError(f"descriptor must list one SPARSE extent, found {desc.extents!r}")
        if desc.extents[0][1] != hdr.capacity_sectors:
            raise VmdkError(f"descriptor extent has {desc.extents[0][1]} sectors, header capacity is "
                            f"{hdr.capacity_sectors}")  # fmt: skip
        return desc

    @staticmethod
    def _tables_in_preamble(hdr: HeaderInfo, area: bytes, end: int) -> list[array | None]:
        """The grain directory and tables a qemu-style stream keeps before its first grain."""

        def table(sector: int, count: int, what: str) -> array:
            if sector < 1 or sector + sectors_for(count * 4) > end:
                raise VmdkError(f"{what} at sector {sector} is neither at the end nor inside the metadata area "
                                f"(sectors 1..{end})")  # fmt: skip
            return u32_array_from_le(area[sector * SECTOR_SIZE : sector * SECTOR_SIZE + count * 4])

        directory = table(hdr.gd_offset, hdr.num_gts, "grain directory")
        return [table(e, hdr.num_gtes_per_gt, f"grain table {i}") if e else None for i, e in enumerate(directory)]

    # -- markers ---------------------------------------------------------------

    def _grain(self, hdr: HeaderInfo, at: int, lba: int, size: int, first: bytes) -> tuple[int, bytes]:
        gsec, gsize = hdr.grain_sectors, hdr.grain_size
        if self._gd_sector is not None:
            raise VmdkError(f"grain marker at offset {at} after the grain directory")
        max_compressed = 2 * gsize + 1024
        if size > max_compressed:
            raise VmdkError(f"grain marker at offset {at} claims {size} compressed bytes "
                            f"(at most {max_compressed} for {gsize}-byte grains)")  # fmt: skip
        if lba % gsec or lba >= hdr.capacity_sectors:
            raise VmdkError(f"grain marker at offset {at} has LBA {lba}: not a grain boundary "
                            f"below capacity {hdr.capacity_sectors} (grain {gsec} sectors)")  # fmt: skip
        g = lba // gsec
        if self._seen[g >> 3] & (1 << (g & 7)):
            raise VmdkError(f"second grain for LBA {lba} at offset {at}")
        self._seen[g >> 3] |= 1 << (g & 7)
        sector = at // SECTOR_SIZE
        if self._preamble_gts is not None:
            gt = self._preamble_gts[g // hdr.num_gtes_per_gt]
            expected = gt[g % hdr.num_gtes_per_gt] if gt is not None else 0
            if expected != sector:
                raise VmdkError(f"grain for LBA {lba} at sector {sector}, but its grain table entry says "
                                f"{expected or 'absent'}")  # fmt: skip
        else:
            self._unreferenced[sector] = lba
        record = round_up(GRAIN_MARKER.size + size, SECTOR_SIZE)
        if record > SECTOR_SIZE:
            first += self._src.read(record - SECTOR_SIZE, f"grain data for LBA {lba}")
        comp = memoryview(first)[GRAIN_MARKER.size : GRAIN_MARKER.size + size]
        offset = lba * SECTOR_SIZE
        want = min(gsize, hdr.capacity - offset)
        try:
            inflater = zlib.decompressobj()
            data = inflater.decompress(comp, gsize + 1)
        except zlib.error as exc:
            raise VmdkError(f"grain for LBA {lba} at offset {at}: bad zlib data ({exc})") from None
        if len(data) > gsize:
            raise VmdkError(f"grain for LBA {lba} at offset {at} inflates to more than {gsize} bytes")
        if not inflater.eof:
            raise VmdkError(f"grain for LBA {lba} at offset {at}: zlib stream incomplete in {size} bytes")
        if inflater.unused_data:
            raise VmdkError(f"grain for LBA {lba} at offset {at}: {len(inflater.unused_data)} bytes "
                            "after the end of the zlib stream")  # fmt: skip
        if len(data) < want:
            raise VmdkError(f"grain for LBA {lba} at offset {at} inflates to {len(data)} bytes, expected {want}")
        self.grains += 1
        return offset, data if len(data) == want else data[:want]

    def _grain_table(self, hdr: HeaderInfo, at: int, val: int) -> None:
        if self._preamble_gts is not None:
            raise VmdkError(f"grain table marker at offset {at}, but the header places the tables before the grains")
        if self._gd_sector is not None:
            raise VmdkError(f"grain table marker at offset {at} after the grain directory")
        if val != hdr.gt_sectors:
            raise VmdkError(f"grain table marker at offset {at} announces {val} sectors, expected {hdr.gt_sectors}")
        table = u32_array_from_le(self._src.read(val * SECTOR_SIZE, "a grain table"))
        gsec, per = hdr.grain_sectors, hdr.num_gtes_per_gt
        span: int | None = None
        for j, entry in enumerate(table):
            if not entry:
                continue
            lba = self._unreferenced.pop(entry, None)
            if lba is None:
                raise VmdkError(f"grain table at offset {at} entry {j} points to sector {entry}, "
                                "which is not an unclaimed grain marker before it")  # fmt: skip
            if (lba // gsec) % per != j:
                raise VmdkError(f"grain table at offset {at} entry {j} points to the grain for LBA {lba}, "
                                f"which belongs in entry {(lba // gsec) % per}")  # fmt: skip
            if span is None:
                span = lba // (gsec * per)
            elif span != lba // (gsec * per):
                raise VmdkError(f"grain table at offset {at} mixes grains of spans {span} and {lba // (gsec * per)}")
        self._gt_span_at[at // SECTOR_SIZE + 1] = span

    def _grain_directory(self, hdr: HeaderInfo, at: int, val: int) -> None:
        if self._gd_sector is not None:
            raise VmdkError(f"second grain directory marker at offset {at}")
        if self._preamble_gts is not None:
            raise VmdkError(f"grain directory marker at offset {at}, but the header places it at sector "
                            f"{hdr.gd_offset}")  # fmt: skip
        if val != hdr.gd_sectors:
            raise VmdkError(f"grain directory marker at offset {at} announces {val} sectors, "
                            f"expected {hdr.gd_sectors} for {hdr.num_gts} grain tables")  # fmt: skip
        if self._unreferenced:
            sector, lba = next(iter(self._unreferenced.items()))
            raise VmdkError(f"{len(self._unreferenced)} grain(s) not in any grain table, first: LBA {lba} "
                            f"at offset {sector * SECTOR_SIZE}")  # fmt: skip
        directory = u32_array_from_le(self._src.read(val * SECTOR_SIZE, "the grain directory"))
        claimed: set[int] = set()
        for i, entry in enumerate(directory[: hdr.num_gts]):
            if not entry:
                continue
            if entry not in self._gt_span_at:
                raise VmdkError(f"grain directory entry {i} points to sector {entry}, not a grain table")
            if entry in claimed:
                raise VmdkError(f"grain directory names the grain table at sector {entry} twice")
            if self._gt_span_at[entry] not in (None, i):
                raise VmdkError(f"grain directory entry {i} points to the grain table of span "
                                f"{self._gt_span_at[entry]}")  # fmt: skip
            claimed.add(entry)
        if any(directory[hdr.num_gts :]):
            raise VmdkError(f"grain directory has entries past its {hdr.num_gts} tables")
        orphans = sorted(s for s, span in self._gt_span_at.items() if s not in claimed and span is not None)
        if orphans:
            raise VmdkError(f"grain table at sector {orphans[0]} holds grains but the directory does not point to it")
        self._gd_sector = at // SECTOR_SIZE + 1
        if not hdr.gd_at_end and hdr.gd_offset != self._gd_sector:
            raise VmdkError(f"header gdOffset is {hdr.gd_offset}, the grain directory is at sector {self._gd_sector}")

    def _footer(self, hdr: HeaderInfo, at: int, val: int) -> None:
        if self._gd_sector is None:
            raise VmdkError(f"footer marker at offset {at} before any grain directory")
        if self.footer is not None:
            raise VmdkError(f"second footer marker at offset {at}")
        if val != 1:
            raise VmdkError(f"footer marker at offset {at} announces {val} sectors, expected 1")
        footer = check_header(self._src.read(SECTOR_SIZE, "the footer"))
        if replace(footer, gd_offset=hdr.gd_offset) != hdr:
            raise VmdkError("footer differs from the header in more than gdOffset")
        if footer.gd_offset != self._gd_sector:
            raise VmdkError(f"footer gdOffset is {footer.gd_offset}, the grain directory is at sector "
                            f"{self._gd_sector}")  # fmt: skip
        self.footer = footer

    def _end_of_stream(self, hdr: HeaderInfo, at: int, val: int) -> None:
        if val:
            raise VmdkError(f"end-of-stream marker at offset {at} has value {val}, expected 0")
        if self._preamble_gts is not None:
            for i, gt in enumerate(self._preamble_gts):
                for j, entry in enumerate(gt or ()):
                    g = i * hdr.num_gtes_per_gt + j
                    if entry and not self._seen[g >> 3] & (1 << (g & 7)):
                        raise VmdkError(f"grain table {i} entry {j} names sector {entry}, but the stream holds "
                                        f"no grain for LBA {g * hdr.grain_sectors}")  # fmt: skip
        elif self.footer is None:
            missing = "footer" if self._gd_sector is not None else "grain directory and the footer"
            raise VmdkError(f"end-of-stream marker at offset {at} before the {missing}")
        # Zero padding after the marker is harmless (qemu-img leaves some); data is not.
        trailing, nonzero = self._src.drain()
        if nonzero:
            raise VmdkError(f"{trailing} bytes of trailing data after the end-of-stream marker at offset {at}")

    # -- the loop --------------------------------------------------------------

    def _decode(self) -> Iterator[tuple[int, bytes]]:
        src = self._src
        hdr = self._read_preamble()
        handlers = {
            MARKER_GT: self._grain_table,
            MARKER_GD: self._grain_directory,
            MARKER_FOOTER: self._footer,
        }
        while True:
            at = src.pos
            if self._preamble_gts is not None and src.at_eof():
                # qemu-img omits the end-of-stream marker when no grain follows
                # the tables; every table is known, so completeness is checkable.
                self._end_of_stream(hdr, at, 0)
                self.stream_bytes = src.pos
                self.sha1 = src.hexdigest()
                return
            first = src.read(SECTOR_SIZE, "a marker")
            val, size = GRAIN_MARKER.unpack_from(first)
            if size:  # a grain: {lba, compressed size} then the data
                yield self._grain(hdr, at, val, size, first)
                continue
            mtype = struct.unpack_from("<I", first, 12)[0]  # metadata: {sectors, 0, type} then padding
            if mtype == MARKER_EOS:
                self._end_of_stream(hdr, at, val)
                self.stream_bytes = src.pos
                self.sha1 = src.hexdigest()
                return
            handler = handlers.get(mtype)
            if handler is None:
                raise VmdkError(f"unknown marker type {mtype} at offset {at}")
            handler(hdr, at, val)


def read_stream_optimized(
    source: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes],
) -> StreamDecoder:
    """Decode a streamOptimized stream from bytes, a binary file object or an iterable of chunks.

    Iterate the result for ``(offset, data)`` per grain; see :class:`StreamDecoder`.
    """
    return StreamDecoder(source)


def decode_to_file(
    source: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes],
    target: str | Path | BinaryIO,
) -> StreamDecoder:
    """Decode a stream into a flat raw image (sparse where the file system allows).

    The image is exactly the capacity long; absent grains read as zeros.
    Returns the finished decoder (header, descriptor, stream SHA-1...).
    """
    if isinstance(target, (str, Path)):
        with open(target, "wb") as f:
            return decode_to_file(source, f)
    decoder = read_stream_optimized(source)
    for offset, data in decoder:
        target.seek(offset)
        target.write(data)
    assert decoder.header is not None
    capacity = decoder.header.capacity
    end = target.seek(0, io.SEEK_END)
    if end < capacity:  # trailing absent grains: extend (io.BytesIO.truncate cannot grow)
        target.seek(capacity - 1)
        target.write(b"\0")
    elif end > capacity:
        target.truncate(capacity)
    return decoder


class StreamChecker:
    """Checks a streamOptimized stream's *structure* as it arrives, without inflating grains.

    A receiver that stores the stream as sent (the simulator does, so an export
    gives it back byte for byte) still has to refuse what an NFC server would:
    a body that is no VMDK, or one cut short. Markers make that cheap: every
    record starts on a sector boundary with either a grain marker (LBA and
    compressed size) or a metadata marker (sectors that follow, type), so the
    walk reads one sector per record and skips the rest. ``feed`` raises
    :class:`VmdkError` as soon as something is wrong; ``finish`` raises if the
    stream ended before its end-of-stream marker (a truncated upload).

    Layouts: VMware's (``gdOffset`` -1: tables, footer and the end marker
    after the grains) must end with the end marker. qemu-img's (tables inside
    ``overHead`` before the grains, no end marker) can only be checked to end
    on a record boundary, so a cut between two grains passes there.
    """

    def __init__(self) -> None:
        self._sector = bytearray()
        self._skip = 0
        self._header: HeaderInfo | None = None
        self._ended = False
        self.grains = 0
        self.received = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.received += len(view)
        position = 0
        while position < len(view):
            if self._skip:
                step = min(self._skip, len(view) - position)
                self._skip -= step
                position += step
                continue
            if self._ended:
                if bytes(view[position:]).strip(b"\0"):
                    raise VmdkError("data after the end-of-stream marker")
                return
            take = view[position:position + SECTOR_SIZE - len(self._sector)]
            self._sector += take
            position += len(take)
            if len(self._sector) == SECTOR_SIZE:
                sector, self._sector = bytes(self._sector), bytearray()
                self._record(sector)

    def _record(self, sector: bytes) -> None:
        if self._header is None:
            self._header = check_header(sector)
            self._skip = (max(self._header.overhead, 1) - 1) * SECTOR_SIZE
            return
        lba, size = GRAIN_MARKER.unpack_from(sector)
        if size:
            if lba >= self._header.capacity_sectors:
                raise VmdkError(f"grain at sector {lba} lies beyond the capacity "
                                f"({self._header.capacity_sectors} sectors)")
            if size > 2 * self._header.grain_size + 1024:
                raise VmdkError(f"grain at sector {lba} claims {size} compressed bytes, more than a "
                                f"{self._header.grain_size}-byte grain can take")
            self.grains += 1
            self._skip = round_up(GRAIN_MARKER.size + size, SECTOR_SIZE) - SECTOR_SIZE
            return
        sectors, _, kind = META_MARKER.unpack_from(sector)
        if kind == MARKER_EOS:
            self._ended = True
        elif kind in (MARKER_GT, MARKER_GD, MARKER_FOOTER):
            self._skip = sectors * SECTOR_SIZE
        else:
            raise VmdkError(f"unknown marker type {kind} at byte {self.received - SECTOR_SIZE}")

    def finish(self) -> None:
        """Raise unless the stream ended cleanly after its end-of-stream marker."""
        if self._header is None:
            raise VmdkError(f"stream of {self.received} bytes ended before its header was complete")
        if self._skip or self._sector:
            raise VmdkError(f"stream ended after {self.received} bytes in the middle of a record: "
                            "it is truncated")
        if not self._ended and self._header.gd_at_end:
            raise VmdkError(f"stream ended after {self.received} bytes without its end-of-stream "
                            "marker: it is truncated")
