"""streamOptimized VMDK streams, the writer: exact size up front, generated on demand, verifiable.

The suite needs such streams for any capacity without holding a disk in
memory, with a length known before the first byte is sent (``Content-Length``
and ``fileSize`` in the lease), and with content an independent decoder can
check. Hence three parts:

* :class:`ContentPattern` -- a deterministic, seekable content source for a
  virtual disk of any size (``zero``, ``sequence``, ``random``, ``sparse``);
* :class:`StreamOptimizedDisk` -- the writer: exact ``.size`` up front, chunked
  iteration or a file-like ``.open()`` usable as an HTTP request body, and the
  SHA-1 of the stream bytes;
* :func:`nfclease.vmdkread.read_stream_optimized` / :func:`~nfclease.vmdkread.decode_to_file` /
  :func:`~nfclease.vmdkformat.check_header` -- the reader (:mod:`nfclease.vmdkread`), which follows the stream sequentially (as a receiving host
  must), cross-checks every marker, grain table, the directory and the footer,
  and raises :class:`VmdkError` with the stream offset of what is wrong.

The format (constants, header, descriptor, content patterns) is
:mod:`nfclease.vmdkformat`.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from array import array
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from nfclease.vmdkformat import (
    CHUNK_SIZE,
    ContentPattern,
    GD_AT_END,
    GRAIN_MARKER,
    GRAIN_SIZE,
    GT_SECTORS,
    HeaderInfo,
    MARKER_FOOTER,
    MARKER_GD,
    MARKER_GT,
    MAX_CAPACITY,
    MAX_GRAIN_SECTORS,
    MAX_SECTOR,
    META_MARKER,
    NUM_GTES_PER_GT,
    SECTOR_SIZE,
    STREAM_FLAGS,
    ZERO_SECTOR,
    le_u32_array,
    round_up,
    sectors_for,
)

_ZLIB_STORED_HEADER = b"\x78\x01"  # deflate, 32 KiB window, "fastest"; (0x7801 % 31 == 0)
_MAX_STORED_BLOCK = 0xFFFF


# --------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------


def _stored_zlib_length(n: int) -> int:
    """Length of a zlib stream holding ``n`` bytes in deflate *stored* blocks.

    Stored blocks carry at most 65535 bytes behind a 5-byte header (final bit
    and type in one byte, then LEN and its complement), after the 2-byte zlib
    header and before the 4-byte Adler-32: the closed form that lets a level-0
    stream know its length without compressing anything.
    """
    return 2 + 5 * max(1, -(-n // _MAX_STORED_BLOCK)) + n + 4


def _stored_block_header(length: int, final: bool) -> bytes:
    return struct.pack("<BHH", 1 if final else 0, length, length ^ 0xFFFF)


def _check_parameters(capacity: int, compresslevel: int, grain_size: int, adapter_type: str, name: str) -> None:
    """Refuse a disk the format cannot hold, naming what is wrong."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
    if capacity <= 0 or capacity % SECTOR_SIZE or capacity > MAX_CAPACITY:
        raise ValueError(f"capacity must be a positive multiple of {SECTOR_SIZE} up to 64 TiB, got {capacity}")
    if not 0 <= compresslevel <= 9:
        raise ValueError(f"compresslevel must be 0..9, got {compresslevel}")
    if grain_size < 4096 or grain_size > MAX_GRAIN_SECTORS * SECTOR_SIZE or grain_size & (grain_size - 1):
        raise ValueError(f"grain_size must be a power of two from 4 KiB to 1 MiB, got {grain_size}")
    if adapter_type not in ("ide", "buslogic", "lsilogic", "legacyESX", "pvscsi", "lsisas1068"):
        raise ValueError(f"unknown adapter type {adapter_type!r}")
    if re.search(r'["\r\n\x00]', name):
        raise ValueError(f"extent name {name!r} cannot hold quotes, newlines or NULs")


def _descriptor_text(capacity: int, name: str, adapter_type: str, identity: str) -> str:
    """The embedded descriptor of a monolithic streamOptimized extent; CID and content ID derive from ``identity``."""
    sectors = capacity // SECTOR_SIZE
    ident = hashlib.sha1(identity.encode()).hexdigest()
    cid = int(ident[:8], 16)
    if cid == 0xFFFFFFFF:  # reserved: "no parent"
        cid = 0xFFFFFFFE
    heads, cyl_max = (16, 16383) if adapter_type == "ide" else (255, 65535)
    cylinders = max(1, min(sectors // (heads * 63), cyl_max))
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        'encoding="UTF-8"\n'
        f"CID={cid:08x}\n"
        "parentCID=ffffffff\n"
        'createType="streamOptimized"\n'
        "\n"
        "# Extent description\n"
        f'RW {sectors} SPARSE "{name}"\n'
        "\n"
        "# The Disk Data Base\n"
        "#DDB\n"
        "\n"
        f'ddb.adapterType = "{adapter_type}"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        f'ddb.geometry.heads = "{heads}"\n'
        'ddb.geometry.sectors = "63"\n'
        f'ddb.longContentID = "{ident[8:40]}"\n'
        'ddb.virtualHWVersion = "4"\n'
    )


class StreamOptimizedDisk:
    """A streamOptimized VMDK stream of ``pattern`` content, generated on demand.

    ``compresslevel`` 0 writes zlib streams of *stored* deflate blocks (built
    here, not by zlib, so their length is known in closed form); the stream
    length then depends only on which grains are all zero, and :attr:`size`
    is closed form for the built-in patterns (at most one
    :meth:`ContentPattern.is_zero` call per grain otherwise), no data. Levels 1-9 use :func:`zlib.compress`; their
    :attr:`size` costs one full compression pass over the disk (output
    discarded, result cached), about as long as streaming it once; a
    complete :meth:`iter_chunks` pass also records it, at no extra cost.

    Grain tables hold 32-bit sector numbers, so a stream cannot pass 2 TiB;
    a disk whose stream would is refused when sized or streamed.

    The stream is deterministic: the same arguments give the same bytes, and
    :attr:`sha1` is the SHA-1 of those bytes (recorded by the first complete
    iteration, or computed on demand).
    """

    def __init__(
        self,
        capacity: int,
        pattern: ContentPattern | str,
        compresslevel: int = 0,
        grain_size: int = GRAIN_SIZE,
        *,
        adapter_type: str = "lsilogic",
        name: str = "disk.vmdk",
        record_sha1: bool = True,
    ) -> None:
        _check_parameters(capacity, compresslevel, grain_size, adapter_type, name)
        self.capacity = capacity
        self.pattern = pattern if isinstance(pattern, ContentPattern) else ContentPattern(pattern)
        self.compresslevel = compresslevel
        self.grain_size = grain_size
        self.adapter_type = adapter_type
        self.name = name
        self._grain_sectors = grain_size // SECTOR_SIZE
        self.num_grains = -(-capacity // grain_size)
        self.num_gts = -(-self.num_grains // NUM_GTES_PER_GT)
        self.descriptor = self._make_descriptor()
        desc_bytes = self.descriptor.encode()
        self._descriptor_sectors = sectors_for(len(desc_bytes))
        self._descriptor_block = desc_bytes.ljust(self._descriptor_sectors * SECTOR_SIZE, b"\0")
        # First grain grain-aligned, as VMware's writers do (overHead 128).
        self._overhead = round_up(1 + self._descriptor_sectors, self._grain_sectors)
        self._size: int | None = None
        self._sha1: str | None = None
        # A sender that hashes what it sends anyway (the NFC client) turns this
        # off: a second SHA-1 pass costs half of generating the stream.
        self.record_sha1 = record_sha1
        # Level 0: every full grain has the same record layout; precompute it.
        clen = _stored_zlib_length(grain_size)
        self._l0_clen = clen
        self._l0_record = round_up(GRAIN_MARKER.size + clen, SECTOR_SIZE)
        self._l0_pad = bytes(self._l0_record - GRAIN_MARKER.size - clen)
        bounds = list(range(0, grain_size, _MAX_STORED_BLOCK)) + [grain_size]
        self._l0_slices = list(zip(bounds, bounds[1:]))
        self._l0_block_headers = [
            _stored_block_header(hi - lo, i == len(self._l0_slices) - 1) for i, (lo, hi) in enumerate(self._l0_slices)
        ]

    def __repr__(self) -> str:
        return (f"StreamOptimizedDisk(capacity={self.capacity}, pattern={self.pattern!r}, "
                f"compresslevel={self.compresslevel}, grain_size={self.grain_size})")  # fmt: skip

    # -- metadata ------------------------------------------------------------

    def _make_descriptor(self) -> str:
        identity = f"{self.pattern.spec}|{self.pattern.seed}|{self.capacity}|{self.compresslevel}|{self.grain_size}"
        return _descriptor_text(self.capacity, self.name, self.adapter_type, identity)

    def header(self, gd_offset: int = GD_AT_END) -> HeaderInfo:
        """The header; the stream's first sector has ``GD_AT_END``, the footer the real offset."""
        return HeaderInfo(
            version=3, flags=STREAM_FLAGS, capacity_sectors=self.capacity // SECTOR_SIZE,
            grain_sectors=self._grain_sectors, descriptor_offset=1,
            descriptor_size=self._descriptor_sectors, num_gtes_per_gt=NUM_GTES_PER_GT, rgd_offset=0,
            gd_offset=gd_offset, overhead=self._overhead,
        )  # fmt: skip

    def _grain_length(self, index: int) -> int:
        return min(self.grain_size, self.capacity - index * self.grain_size)

    def _grain_data(self, index: int) -> bytes:
        """Grain content, zero padded to a full grain.

        A capacity that is not a multiple of the grain size leaves a partial
        last grain; it is compressed as a whole grain with zeros past the end,
        which every reader accepts (qemu and VMware inflate into a
        grain-sized buffer), while a short grain upsets readers that expect
        full ones.
        """
        n = self._grain_length(index)
        if n == self.grain_size:
            return self.pattern.grain(index, self.grain_size)
        return self.pattern.read(index * self.grain_size, n) + bytes(self.grain_size - n)

    def _span_grains(self, gt: int) -> Sequence[int]:
        """Indexes of the non-zero grains of grain-table span ``gt``, in order.

        A ``range`` (closed form, no per-grain work) for the built-in patterns
        at 64 KiB grains, so sizing or streaming a mostly empty disk of
        terabytes does not visit every empty grain; otherwise one
        :meth:`ContentPattern.is_zero` call per grain.
        """
        first = gt * NUM_GTES_PER_GT
        last = min(first + NUM_GTES_PER_GT, self.num_grains)
        pat = self.pattern
        if pat.name == "zero":
            return range(0)
        if pat.name in ("sequence", "random"):
            return range(first, last)
        if pat.name == "sparse" and self.grain_size == pat.BLOCK_SIZE:
            assert pat.every is not None
            return range(first + (-first) % pat.every, last, pat.every)
        return [g for g in range(first, last) if not pat.is_zero(g * self.grain_size, self._grain_length(g))]

    def _level0_counts(self) -> tuple[int, int]:
        """``(non-zero grains, grain tables written)``: O(1) for the built-in patterns at 64 KiB grains."""
        pat, n, per = self.pattern, self.num_grains, NUM_GTES_PER_GT
        if pat.name == "zero":
            return 0, 0
        if pat.name in ("sequence", "random"):
            return n, self.num_gts
        if pat.name == "sparse" and self.grain_size == pat.BLOCK_SIZE:
            every = pat.every
            assert every is not None
            grains = len(range(0, n, every))
            if every > per:  # data grains are more than a span apart: one table each
                return grains, grains
            last = self._span_grains(self.num_gts - 1)  # every full span holds one; the last may not
            return grains, self.num_gts - 1 + (1 if last else 0)
        grains = tables = 0
        for gt in range(self.num_gts):
            count = len(self._span_grains(gt))
            grains += count
            tables += 1 if count else 0
        return grains, tables

    @property
    def size(self) -> int:
        """Exact length of the stream in bytes, known before producing it (see the class doc for cost)."""
        if self._size is None:
            total = self._overhead * SECTOR_SIZE
            if self.compresslevel == 0:
                grains, tables = self._level0_counts()
                total += grains * self._l0_record
            else:
                tables = 0
                for gt in range(self.num_gts):
                    span = self._span_grains(gt)
                    tables += 1 if span else 0
                    for g in span:
                        clen = len(zlib.compress(self._grain_data(g), self.compresslevel))
                        total += round_up(GRAIN_MARKER.size + clen, SECTOR_SIZE)
            total += tables * (1 + GT_SECTORS) * SECTOR_SIZE  # marker + table, per span with data
            gd_sectors = sectors_for(self.num_gts * 4)
            total += (1 + gd_sectors + 2 + 1) * SECTOR_SIZE  # GD marker + GD, footer marker + footer, EOS
            if total // SECTOR_SIZE > MAX_SECTOR:
                raise ValueError(f"a {total}-byte stream is beyond what 32-bit grain table entries address")
            self._size = total
        return self._size

    # -- the stream ----------------------------------------------------------

    @staticmethod
    def _check_addressable(sector: int) -> None:
        if sector > MAX_SECTOR:
            raise ValueError(f"stream passes sector {MAX_SECTOR}, the last a 32-bit grain table entry addresses")

    def _pieces(self) -> Iterator[bytes | memoryview]:
        """The stream as consecutive pieces (headers, grain slices, padding), no joins."""
        yield self.header().pack()
        yield self._descriptor_block
        pad = self._overhead - 1 - self._descriptor_sectors
        if pad:
            yield bytes(pad * SECTOR_SIZE)
        sector = self._overhead
        gd = array("I", bytes(4 * self.num_gts))
        gsec = self._grain_sectors
        level = self.compresslevel
        marker = GRAIN_MARKER.pack
        for gt_index in range(self.num_gts):
            grains = self._span_grains(gt_index)
            if not grains:
                continue  # no table for an empty span: its directory entry stays 0
            gt = array("I", bytes(4 * NUM_GTES_PER_GT))
            first = gt_index * NUM_GTES_PER_GT
            for g in grains:
                self._check_addressable(sector)
                gt[g - first] = sector
                data = self._grain_data(g)
                if level == 0:
                    view = memoryview(data)
                    headers = self._l0_block_headers
                    yield marker(g * gsec, self._l0_clen) + _ZLIB_STORED_HEADER + headers[0]
                    for i, (lo, hi) in enumerate(self._l0_slices):
                        if i:
                            yield headers[i]
                        yield view[lo:hi]
                    yield zlib.adler32(data).to_bytes(4, "big") + self._l0_pad
                    sector += self._l0_record // SECTOR_SIZE
                else:
                    comp = zlib.compress(data, level)
                    record = round_up(GRAIN_MARKER.size + len(comp), SECTOR_SIZE)
                    yield marker(g * gsec, len(comp))
                    yield comp
                    yield bytes(record - GRAIN_MARKER.size - len(comp))
                    sector += record // SECTOR_SIZE
            self._check_addressable(sector + 1)
            yield META_MARKER.pack(GT_SECTORS, 0, MARKER_GT).ljust(SECTOR_SIZE, b"\0")
            gd[gt_index] = sector + 1
            yield le_u32_array(gt)
            sector += 1 + GT_SECTORS
        gd_sectors = sectors_for(self.num_gts * 4)
        yield META_MARKER.pack(gd_sectors, 0, MARKER_GD).ljust(SECTOR_SIZE, b"\0")
        gd_offset = sector + 1
        yield le_u32_array(gd).ljust(gd_sectors * SECTOR_SIZE, b"\0")
        sector += 1 + gd_sectors
        yield META_MARKER.pack(1, 0, MARKER_FOOTER).ljust(SECTOR_SIZE, b"\0")
        yield self.header(gd_offset).pack()
        yield ZERO_SECTOR  # end-of-stream marker: {val 0, size 0, type 0}

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The stream as ``chunk_size`` chunks (the last may be shorter).

        Memory stays around two chunks whatever the capacity. A complete pass
        records :attr:`sha1` as a by-product when it is not known yet.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        hasher = hashlib.sha1() if self._sha1 is None and self.record_sha1 else None
        produced = 0
        # Pieces are gathered by reference and joined once per chunk: each byte
        # is copied exactly once here (a growing bytearray would copy it again
        # on every reallocation, which halved the throughput).
        parts: list[bytes | memoryview] = []
        have = 0
        for piece in self._pieces():
            parts.append(piece)
            have += len(piece)
            while have >= chunk_size:
                last = memoryview(parts[-1])
                cut = len(last) - (have - chunk_size)
                parts[-1] = last[:cut]
                chunk = b"".join(parts)
                parts = [last[cut:]] if cut < len(last) else []
                have -= chunk_size
                if hasher is not None:
                    hasher.update(chunk)
                produced += chunk_size
                yield chunk
        if have:
            chunk = b"".join(parts)
            if hasher is not None:
                hasher.update(chunk)
            produced += len(chunk)
            yield chunk
        if self._size is None:
            self._size = produced  # a level > 0 pass that was never sized: now it is, for free
        elif produced != self._size:  # a bug here would corrupt every transfer: never let it pass silently
            raise AssertionError(f"stream produced {produced} bytes but size promised {self._size}")
        if hasher is not None:
            self._sha1 = hasher.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_chunks()

    def open(self, chunk_size: int = CHUNK_SIZE) -> DiskStream:
        """A fresh read-only file object over the stream (an HTTP request body)."""
        return DiskStream(self, chunk_size)

    def write_to(self, target: str | Path | BinaryIO) -> int:
        """Write the whole stream to a path or binary file; returns the byte count."""
        if isinstance(target, (str, Path)):
            with open(target, "wb") as f:
                return self.write_to(f)
        n = 0
        for chunk in self.iter_chunks():
            target.write(chunk)
            n += len(chunk)
        return n

    @property
    def sha1(self) -> str:
        """Hex SHA-1 of the stream bytes (an NFC manifest entry); one streaming pass if not yet known."""
        if self._sha1 is None:
            hasher = hashlib.sha1()
            for chunk in self.iter_chunks():
                hasher.update(chunk)
            self._sha1 = hasher.hexdigest()
        return self._sha1

    @property
    def content_sha1(self) -> str:
        """Hex SHA-1 of the virtual disk content (the flat image a reader decodes)."""
        return self.pattern.sha1(self.capacity)


def stream_sha1(disk: StreamOptimizedDisk) -> str:
    """Hex SHA-1 of ``disk``'s stream bytes."""
    return disk.sha1


class DiskStream(io.RawIOBase):
    """File-like view of a :class:`StreamOptimizedDisk` stream.

    ``len()`` and ``tell()`` give ``requests`` a ``Content-Length``; ``read(n)``
    returns exactly ``n`` bytes until the end. Seeking backwards restarts the
    generator and seeking forwards discards bytes: both cost generation time,
    not memory (a retry rewinds to 0, which is cheap).
    """

    def __init__(self, disk: StreamOptimizedDisk, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._disk = disk
        self._chunk_size = chunk_size
        self._restart()

    def _restart(self) -> None:
        self._it: Iterator[bytes] | None = self._disk.iter_chunks(self._chunk_size)
        self._cur = b""
        self._cur_pos = 0
        self._pos = 0

    def __len__(self) -> int:
        return self._disk.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def _fill(self) -> bool:
        while self._cur_pos >= len(self._cur):
            if self._it is None:
                return False
            nxt = next(self._it, None)
            if nxt is None:
                self._it = None
                return False
            self._cur, self._cur_pos = nxt, 0
        return True

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        if size is None or size < 0:
            return self.readall()
        parts = []
        while size > 0 and self._fill():
            if self._cur_pos == 0 and len(self._cur) <= size:
                piece = self._cur
            else:
                piece = self._cur[self._cur_pos : self._cur_pos + size]
            self._cur_pos += len(piece)
            self._pos += len(piece)
            size -= len(piece)
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(max(0, self._disk.size - self._pos))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._fill():
            n = min(len(view) - done, len(self._cur) - self._cur_pos)
            view[done : done + n] = self._cur[self._cur_pos : self._cur_pos + n]
            self._cur_pos += n
            self._pos += n
            done += n
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._disk.size
        elif whence != io.SEEK_SET:
            raise ValueError(f"bad whence {whence}")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset < self._pos:
            self._close_iter()
            self._restart()
        while self._pos < offset and self._fill():
            n = min(offset - self._pos, len(self._cur) - self._cur_pos)
            self._cur_pos += n
            self._pos += n
        if offset > self._pos:  # past the end, as files allow
            self._pos = offset
        return self._pos

    def _close_iter(self) -> None:
        if self._it is not None:
            close = getattr(self._it, "close", None)
            if close:
                close()
            self._it = None

    def close(self) -> None:
        self._close_iter()
        super().close()


