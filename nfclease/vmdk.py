"""streamOptimized VMDK streams: a deterministic writer and a verifying reader.

An NFC import lease takes each disk as a *streamOptimized* sparse extent (the
format inside an OVA): a sparse extent header, the embedded text descriptor,
then deflate-compressed grains each preceded by a marker (LBA + size), grain
tables and the grain directory written *after* the grains they describe (a
stream cannot seek back), a footer repeating the header with the real grain
directory offset, and an end-of-stream marker. Every metadata structure is
sector (512-byte) aligned, so offsets are counted in sectors.

The suite needs such streams for any capacity without holding a disk in
memory, with a length known before the first byte is sent (``Content-Length``
and ``fileSize`` in the lease), and with content an independent decoder can
check. Hence three parts:

* :class:`ContentPattern` -- a deterministic, seekable content source for a
  virtual disk of any size (``zero``, ``sequence``, ``random``, ``sparse``);
* :class:`StreamOptimizedDisk` -- the writer: exact ``.size`` up front, chunked
  iteration or a file-like ``.open()`` usable as an HTTP request body, and the
  SHA-1 of the stream bytes;
* :func:`read_stream_optimized` / :func:`decode_to_file` / :func:`check_header`
  -- the reader, which follows the stream sequentially (as a receiving host
  must), cross-checks every marker, grain table, the directory and the footer,
  and raises :class:`VmdkError` with the stream offset of what is wrong.

Layout of a stream produced here (sizes in 512-byte sectors)::

    0            sparse extent header, gdOffset = GD_AT_END (-1)
    1..d         embedded descriptor, NUL padded
    ..overHead   zero padding, so the first grain starts grain-aligned (128)
    grain        12-byte marker {lba: u64, size: u32} + zlib data, padded
    ...          (all-zero grains are omitted: that is what "sparse" means)
    GT marker    {val: 4, size: 0, type: 1} then 512 u32 entries (4 sectors),
                 after the last grain of each 512-grain span with any data;
                 a span without data has no grain table (directory entry 0)
    GD marker    {val: n, size: 0, type: 2} then one u32 per span
    footer       marker {val: 1, type: 3} then the header with the real gdOffset
    EOS          one zero sector
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, BinaryIO, Iterable, Iterator, Sequence

__all__ = [
    "CHUNK_SIZE",
    "GD_AT_END",
    "GRAIN_SIZE",
    "PATTERNS",
    "SECTOR_SIZE",
    "VMDK_HEADER_SIZE",
    "ContentPattern",
    "Descriptor",
    "DiskStream",
    "HeaderInfo",
    "StreamDecoder",
    "StreamOptimizedDisk",
    "VmdkError",
    "check_header",
    "decode_to_file",
    "parse_descriptor",
    "read_stream_optimized",
    "stream_sha1",
]

SECTOR_SIZE = 512
#: A sparse extent header occupies exactly the first sector of the stream.
VMDK_HEADER_SIZE = 512
#: VMware's default (and, for streamOptimized, universal) grain: 128 sectors.
GRAIN_SIZE = 64 * 1024
#: Default chunk size of :meth:`StreamOptimizedDisk.iter_chunks`.
CHUNK_SIZE = 1024 * 1024
#: ``gdOffset`` value meaning "the grain directory is at the end; read the footer".
GD_AT_END = 0xFFFF_FFFF_FFFF_FFFF

MAGIC = b"KDMV"  # uint32 0x564d444b ("VMDK") stored little-endian
FLAG_VALID_NEWLINE = 0x1
FLAG_REDUNDANT_GT = 0x2
FLAG_ZEROED_GTE = 0x4
FLAG_COMPRESSED = 0x10000
FLAG_MARKERS = 0x20000
#: What VMware writes in a streamOptimized header.
STREAM_FLAGS = FLAG_VALID_NEWLINE | FLAG_COMPRESSED | FLAG_MARKERS
COMPRESSION_DEFLATE = 1
NUM_GTES_PER_GT = 512

MARKER_EOS = 0
MARKER_GT = 1
MARKER_GD = 2
MARKER_FOOTER = 3

#: Upper bounds that keep the reader's memory bounded on hostile input.
MAX_CAPACITY = 64 * 1024**4  # vSphere's largest virtual disk is 62 TB
MAX_GRAIN_SECTORS = 2048  # 1 MiB grains
MAX_DESCRIPTOR_SECTORS = 2048
MAX_OVERHEAD_SECTORS = 1 << 20
MAX_PREAMBLE = 64 * 1024 * 1024  # metadata area (header, descriptor, qemu-style tables) the reader buffers

# magic, version, flags, capacity, grainSize, descriptorOffset, descriptorSize,
# numGTEsPerGT, rgdOffset, gdOffset, overHead, uncleanShutdown, the four
# newline-detection characters, compressAlgorithm; then 433 bytes of padding.
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sHx432x")
assert _HEADER.size == VMDK_HEADER_SIZE
_NEWLINE_CHARS = b"\n \r\n"
_GRAIN_MARKER = struct.Struct("<QI")  # lba, compressed size; data follows at byte 12
_META_MARKER = struct.Struct("<QII")  # sectors that follow, size 0, type
_GT_SECTORS = NUM_GTES_PER_GT * 4 // SECTOR_SIZE
_U64 = struct.Struct("<Q")
_ZLIB_STORED_HEADER = b"\x78\x01"  # deflate, 32 KiB window, "fastest"; (0x7801 % 31 == 0)
_MAX_STORED_BLOCK = 0xFFFF
_ZERO_SECTOR = bytes(SECTOR_SIZE)
_MAX_SECTOR = 0xFFFF_FFFF  # grain table and directory entries are u32 sector numbers: a stream ends below 2 TiB


class VmdkError(ValueError):
    """A stream or header that is not a valid streamOptimized VMDK."""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _sectors(nbytes: int) -> int:
    return -(-nbytes // SECTOR_SIZE)


def _le_u32_array(values: array) -> bytes:
    """``array('I')`` as little-endian bytes (the format is little-endian everywhere)."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _u32_array_from_le(data: bytes) -> array:
    values = array("I")
    assert values.itemsize == 4
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


# --------------------------------------------------------------------------
# Content patterns
# --------------------------------------------------------------------------

PATTERNS = ("zero", "sequence", "random", "sparse")


class ContentPattern:
    """Deterministic content of a virtual disk of any size, readable at any offset.

    Content is defined per 64 KiB block (:attr:`BLOCK_SIZE`), generated on
    demand, so a pattern is a few hundred bytes of state whatever the disk's
    capacity. The same ``(name, seed)`` gives the same bytes in every process
    and Python version (only SHA-3/SHAKE and ``struct`` are involved), so two
    ends of a transfer can agree on expected content without exchanging it.

    * ``zero``: all zero; a streamOptimized disk of it holds no grain at all.
    * ``sequence``: each sector starts with its LBA (u64 little-endian) and a
      24-byte label naming the seed, then a seed-derived filler identical in
      every sector; compresses well, and a misplaced sector names itself.
    * ``random``: one SHAKE-256 block of 64 KiB per seed, varied per block by
      a byte rotation and the block index XORed into its first 8 bytes: as
      incompressible as random data, at the cost of a slice, not a hash.
    * ``sparse`` (``"sparse:N"``, default N = 16): block ``i`` holds
      ``sequence`` content when ``i % N == 0`` and zeros otherwise.
    """

    BLOCK_SIZE = 64 * 1024

    def __init__(self, name: str, seed: int | str = 0, *, every: int | None = None) -> None:
        base, _, arg = name.partition(":")
        if base not in PATTERNS:
            raise ValueError(f"unknown content pattern {name!r} (known: {', '.join(PATTERNS)})")
        if arg and base != "sparse":
            raise ValueError(f"pattern {base!r} takes no parameter (got {name!r})")
        if base == "sparse":
            if arg:
                if every is not None:
                    raise ValueError("give the sparse interval either in the name or as every=, not both")
                try:
                    every = int(arg)
                except ValueError:
                    raise ValueError(f"bad sparse interval in {name!r}") from None
            every = 16 if every is None else every
            if every < 1:
                raise ValueError(f"sparse interval must be >= 1, got {every}")
        elif every is not None:
            raise ValueError(f"every= only applies to the sparse pattern, not {base!r}")
        self.name = base
        self.seed = seed
        self.every = every
        label = str(seed)
        self._label = label
        self._zero_block = bytes(self.BLOCK_SIZE)
        if base in ("sequence", "sparse"):
            tag = f"nfclease seed={label}".encode()[:24].ljust(24, b" ")
            filler = hashlib.shake_256(b"nfclease-sequence-filler\0" + label.encode()).digest(64)
            # Printable-ish filler: deterministic, compressible, never all zero.
            filler = bytes(0x20 + (b % 0x5F) for b in filler)
            tail = tag + (filler * 8)[: SECTOR_SIZE - 8 - 24]
            self._sequence_template = (bytes(8) + tail) * (self.BLOCK_SIZE // SECTOR_SIZE)
        if base == "random":
            block = hashlib.shake_256(b"nfclease-random\0" + label.encode()).digest(self.BLOCK_SIZE)
            # is_zero() claims no 512-byte window of a random block is zero; make
            # that a checked fact rather than a probability (it never triggers).
            if bytes(64) in block + block[:64]:
                raise AssertionError("random base block has a zero run; pick another seed")
            self._random_twice = block + block  # a rotation is then one slice

    @property
    def spec(self) -> str:
        """The name as the constructor accepts it (``sparse:16``)."""
        return f"sparse:{self.every}" if self.name == "sparse" else self.name

    def __repr__(self) -> str:
        return f"ContentPattern({self.spec!r}, seed={self.seed!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContentPattern):
            return NotImplemented
        return (self.spec, self._label) == (other.spec, other._label)

    def __hash__(self) -> int:
        return hash((self.spec, self._label))

    # -- blocks ----------------------------------------------------------------

    def _sequence_block(self, index: int) -> bytes:
        per = self.BLOCK_SIZE // SECTOR_SIZE
        lbas = array("Q", range(index * per, (index + 1) * per))
        if sys.byteorder == "big":
            lbas.byteswap()
        raw = lbas.tobytes()
        block = bytearray(self._sequence_template)
        # Eight strided slice assignments stamp all 128 LBAs: byte k of every
        # sector at once, instead of a Python-level loop over sectors.
        for k in range(8):
            block[k::SECTOR_SIZE] = raw[k::8]
        return bytes(block)

    def _random_block(self, index: int) -> bytes:
        # Knuth's multiplicative hash spreads consecutive indexes over rotations.
        rot = ((index * 2654435761) >> 3) % self.BLOCK_SIZE
        window = memoryview(self._random_twice)[rot : rot + self.BLOCK_SIZE]
        head = (int.from_bytes(window[:8], "little") ^ index) & 0xFFFF_FFFF_FFFF_FFFF
        return head.to_bytes(8, "little") + window[8:]

    def block(self, index: int) -> bytes:
        """The 64 KiB block ``index`` (bytes ``index * 64 KiB`` onwards)."""
        if index < 0:
            raise ValueError(f"negative block index {index}")
        if self.name == "zero":
            return self._zero_block
        if self.name == "random":
            return self._random_block(index)
        if self.name == "sparse" and index % self.every:  # type: ignore[operator]
            return self._zero_block
        return self._sequence_block(index)

    def grain(self, index: int, size: int = GRAIN_SIZE) -> bytes:
        """Grain ``index`` of ``size`` bytes; a single block when ``size`` is 64 KiB."""
        if size == self.BLOCK_SIZE:
            return self.block(index)
        return self.read(index * size, size)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; only the blocks overlapping the range are made."""
        if offset < 0 or length < 0:
            raise ValueError(f"bad range offset={offset} length={length}")
        if length == 0:
            return b""
        if self.name == "zero":
            return bytes(length)
        bs = self.BLOCK_SIZE
        first, last = offset // bs, (offset + length - 1) // bs
        if first == last:
            start = offset - first * bs
            blk = self.block(first)
            return blk if length == bs else blk[start : start + length]
        parts = []
        for index in range(first, last + 1):
            blk = self.block(index)
            lo = max(offset, index * bs) - index * bs
            hi = min(offset + length, (index + 1) * bs) - index * bs
            parts.append(blk if (lo, hi) == (0, bs) else memoryview(blk)[lo:hi])
        return b"".join(parts)

    def iter_read(self, offset: int, length: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The range as chunks of at most ``chunk_size`` bytes (bounded memory)."""
        end = offset + length
        while offset < end:
            n = min(chunk_size, end - offset)
            yield self.read(offset, n)
            offset += n

    def is_zero(self, offset: int, length: int) -> bool:
        """Whether the range is all zero, decided without generating it.

        The writer omits all-zero grains and sizes its stream from this answer,
        so it must be exact. For sector-aligned ranges it is closed form: a
        ``sequence`` sector always carries its label, a ``random`` block has
        no 64-byte zero run (checked at construction), and ``sparse`` is zero
        exactly outside its data blocks. Other ranges are generated and looked at.
        """
        if length <= 0 or self.name == "zero":
            return True
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            return self.read(offset, length).count(0) == length
        if self.name != "sparse":
            return False
        assert self.every is not None
        first, last = offset // self.BLOCK_SIZE, (offset + length - 1) // self.BLOCK_SIZE
        return first + (-first) % self.every > last  # the first data block at or after `first`

    def sha1(self, capacity: int) -> str:
        """Hex SHA-1 of the first ``capacity`` bytes (what a flat raw image hashes to)."""
        h = hashlib.sha1()
        for chunk in self.iter_read(0, capacity):
            h.update(chunk)
        return h.hexdigest()


# --------------------------------------------------------------------------
# Header and descriptor
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderInfo:
    """A decoded sparse extent header. Offsets and sizes are in 512-byte sectors, as stored."""

    version: int
    flags: int
    capacity_sectors: int
    grain_sectors: int
    descriptor_offset: int
    descriptor_size: int
    num_gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    unclean_shutdown: int = 0
    compress_algorithm: int = COMPRESSION_DEFLATE
    newline_chars: bytes = _NEWLINE_CHARS

    @property
    def capacity(self) -> int:
        """Virtual disk size in bytes."""
        return self.capacity_sectors * SECTOR_SIZE

    @property
    def grain_size(self) -> int:
        return self.grain_sectors * SECTOR_SIZE

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    @property
    def has_markers(self) -> bool:
        return bool(self.flags & FLAG_MARKERS)

    @property
    def gd_at_end(self) -> bool:
        return self.gd_offset == GD_AT_END

    @property
    def num_grains(self) -> int:
        return -(-self.capacity_sectors // self.grain_sectors)

    @property
    def num_gts(self) -> int:
        """Grain directory entries: one per span of ``numGTEsPerGT`` grains."""
        return -(-self.num_grains // self.num_gtes_per_gt)

    @property
    def gd_sectors(self) -> int:
        return _sectors(self.num_gts * 4)

    @property
    def gt_sectors(self) -> int:
        return _sectors(self.num_gtes_per_gt * 4)

    def pack(self) -> bytes:
        """The 512-byte on-disk form."""
        return _HEADER.pack(
            MAGIC, self.version, self.flags, self.capacity_sectors, self.grain_sectors,
            self.descriptor_offset, self.descriptor_size, self.num_gtes_per_gt, self.rgd_offset,
            self.gd_offset, self.overhead, self.unclean_shutdown, self.newline_chars,
            self.compress_algorithm,
        )  # fmt: skip


def check_header(data: bytes, *, stream_optimized: bool = True) -> HeaderInfo:
    """Decode and validate the first sector of a sparse extent.

    Cheap enough to run on the first 512 bytes of an upload before accepting
    the rest (the simulator answers HTTP 400 to a :class:`VmdkError`). With
    ``stream_optimized`` (the default) the header must also describe a
    streamOptimized extent: compressed grains, markers, an embedded descriptor.
    """
    data = bytes(data[:VMDK_HEADER_SIZE])
    if len(data) < VMDK_HEADER_SIZE:
        raise VmdkError(f"truncated header: {len(data)} bytes, a sparse extent header is {VMDK_HEADER_SIZE}")
    (magic, version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead,
     unclean, newline, algo) = _HEADER.unpack(data)  # fmt: skip
    if magic != MAGIC:
        raise VmdkError(f"bad magic {magic!r}: not a VMDK sparse extent (expected {MAGIC!r})")
    if version not in (1, 2, 3):
        raise VmdkError(f"unsupported sparse extent version {version} (expected 1, 2 or 3)")
    if flags & FLAG_VALID_NEWLINE and newline != _NEWLINE_CHARS:
        raise VmdkError(f"newline detection bytes are {newline!r}, expected {_NEWLINE_CHARS!r}: "
                        "the file went through a text-mode transfer")  # fmt: skip
    if grain < 8 or grain > MAX_GRAIN_SECTORS or grain & (grain - 1):
        raise VmdkError(f"bad grainSize {grain} sectors (a power of two from 8 to {MAX_GRAIN_SECTORS})")
    if gtes != NUM_GTES_PER_GT:
        raise VmdkError(f"bad numGTEsPerGT {gtes} (expected {NUM_GTES_PER_GT})")
    if capacity == 0 or capacity * SECTOR_SIZE > MAX_CAPACITY:
        raise VmdkError(f"bad capacity {capacity} sectors (1 sector to {MAX_CAPACITY // 1024**4} TiB)")
    if flags & FLAG_COMPRESSED and algo != COMPRESSION_DEFLATE:
        raise VmdkError(f"unknown compressAlgorithm {algo} (only 1, deflate, is defined)")
    if desc_size > MAX_DESCRIPTOR_SECTORS:
        raise VmdkError(f"descriptorSize {desc_size} sectors is implausibly large (max {MAX_DESCRIPTOR_SECTORS})")
    if overhead > MAX_OVERHEAD_SECTORS:
        raise VmdkError(f"overHead {overhead} sectors is implausibly large (max {MAX_OVERHEAD_SECTORS})")
    if desc_size and (desc_off < 1 or desc_off + desc_size > overhead):
        raise VmdkError(f"descriptor at sectors {desc_off}+{desc_size} lies outside the metadata area "
                        f"(sectors 1..{overhead})")  # fmt: skip
    if gd == 0 and stream_optimized:
        raise VmdkError("gdOffset 0: no grain directory (expected GD_AT_END, -1, or its sector)")
    if stream_optimized:
        missing = [n for f, n in ((FLAG_COMPRESSED, "compressed grains 0x10000"), (FLAG_MARKERS, "markers 0x20000"))
                   if not flags & f]  # fmt: skip
        if missing:
            raise VmdkError(f"flags {flags:#x} lack {' and '.join(missing)}: not a streamOptimized extent")
        if desc_size == 0:
            raise VmdkError("no embedded descriptor (descriptorSize 0): not a streamOptimized extent")
    return HeaderInfo(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead,
                      unclean_shutdown=unclean, compress_algorithm=algo, newline_chars=newline)  # fmt: skip


@dataclass
class Descriptor:
    """The embedded text descriptor: ``key=value`` settings and extent lines."""

    text: str
    fields: dict[str, str] = field(default_factory=dict)
    #: ``(access, sectors, type, filename)`` per extent line.
    extents: list[tuple[str, int, str, str]] = field(default_factory=list)

    @property
    def create_type(self) -> str | None:
        return self.fields.get("createType")


_EXTENT_LINE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)")?')


def parse_descriptor(text: str) -> Descriptor:
    """Parse descriptor text (``#`` comments, ``key = "value"`` lines, extent lines)."""
    desc = Descriptor(text)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _EXTENT_LINE.match(line)
        if m:
            desc.extents.append((m[1], int(m[2]), m[3], m[4] or ""))
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise VmdkError(f"descriptor line is neither a setting nor an extent: {line[:80]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        desc.fields[key.strip()] = value
    return desc


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
        self._descriptor_sectors = _sectors(len(desc_bytes))
        self._descriptor_block = desc_bytes.ljust(self._descriptor_sectors * SECTOR_SIZE, b"\0")
        # First grain grain-aligned, as VMware's writers do (overHead 128).
        self._overhead = _round_up(1 + self._descriptor_sectors, self._grain_sectors)
        self._size: int | None = None
        self._sha1: str | None = None
        # A sender that hashes what it sends anyway (the NFC client) turns this
        # off: a second SHA-1 pass costs half of generating the stream.
        self.record_sha1 = record_sha1
        # Level 0: every full grain has the same record layout; precompute it.
        clen = _stored_zlib_length(grain_size)
        self._l0_clen = clen
        self._l0_record = _round_up(_GRAIN_MARKER.size + clen, SECTOR_SIZE)
        self._l0_pad = bytes(self._l0_record - _GRAIN_MARKER.size - clen)
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
        sectors = self.capacity // SECTOR_SIZE
        ident = hashlib.sha1(f"{self.pattern.spec}|{self.pattern.seed}|{self.capacity}|"
                             f"{self.compresslevel}|{self.grain_size}".encode()).hexdigest()  # fmt: skip
        cid = int(ident[:8], 16)
        if cid == 0xFFFFFFFF:  # reserved: "no parent"
            cid = 0xFFFFFFFE
        heads, cyl_max = (16, 16383) if self.adapter_type == "ide" else (255, 65535)
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
            f'RW {sectors} SPARSE "{self.name}"\n'
            "\n"
            "# The Disk Data Base\n"
            "#DDB\n"
            "\n"
            f'ddb.adapterType = "{self.adapter_type}"\n'
            f'ddb.geometry.cylinders = "{cylinders}"\n'
            f'ddb.geometry.heads = "{heads}"\n'
            'ddb.geometry.sectors = "63"\n'
            f'ddb.longContentID = "{ident[8:40]}"\n'
            'ddb.virtualHWVersion = "4"\n'
        )

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
                        total += _round_up(_GRAIN_MARKER.size + clen, SECTOR_SIZE)
            total += tables * (1 + _GT_SECTORS) * SECTOR_SIZE  # marker + table, per span with data
            gd_sectors = _sectors(self.num_gts * 4)
            total += (1 + gd_sectors + 2 + 1) * SECTOR_SIZE  # GD marker + GD, footer marker + footer, EOS
            if total // SECTOR_SIZE > _MAX_SECTOR:
                raise ValueError(f"a {total}-byte stream is beyond what 32-bit grain table entries address")
            self._size = total
        return self._size

    # -- the stream ----------------------------------------------------------

    @staticmethod
    def _check_addressable(sector: int) -> None:
        if sector > _MAX_SECTOR:
            raise ValueError(f"stream passes sector {_MAX_SECTOR}, the last a 32-bit grain table entry addresses")

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
        marker = _GRAIN_MARKER.pack
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
                    record = _round_up(_GRAIN_MARKER.size + len(comp), SECTOR_SIZE)
                    yield marker(g * gsec, len(comp))
                    yield comp
                    yield bytes(record - _GRAIN_MARKER.size - len(comp))
                    sector += record // SECTOR_SIZE
            self._check_addressable(sector + 1)
            yield _META_MARKER.pack(_GT_SECTORS, 0, MARKER_GT).ljust(SECTOR_SIZE, b"\0")
            gd[gt_index] = sector + 1
            yield _le_u32_array(gt)
            sector += 1 + _GT_SECTORS
        gd_sectors = _sectors(self.num_gts * 4)
        yield _META_MARKER.pack(gd_sectors, 0, MARKER_GD).ljust(SECTOR_SIZE, b"\0")
        gd_offset = sector + 1
        yield _le_u32_array(gd).ljust(gd_sectors * SECTOR_SIZE, b"\0")
        sector += 1 + gd_sectors
        yield _META_MARKER.pack(1, 0, MARKER_FOOTER).ljust(SECTOR_SIZE, b"\0")
        yield self.header(gd_offset).pack()
        yield _ZERO_SECTOR  # end-of-stream marker: {val 0, size 0, type 0}

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
            if sector < 1 or sector + _sectors(count * 4) > end:
                raise VmdkError(f"{what} at sector {sector} is neither at the end nor inside the metadata area "
                                f"(sectors 1..{end})")  # fmt: skip
            return _u32_array_from_le(area[sector * SECTOR_SIZE : sector * SECTOR_SIZE + count * 4])

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
        record = _round_up(_GRAIN_MARKER.size + size, SECTOR_SIZE)
        if record > SECTOR_SIZE:
            first += self._src.read(record - SECTOR_SIZE, f"grain data for LBA {lba}")
        comp = memoryview(first)[_GRAIN_MARKER.size : _GRAIN_MARKER.size + size]
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
        table = _u32_array_from_le(self._src.read(val * SECTOR_SIZE, "a grain table"))
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
        directory = _u32_array_from_le(self._src.read(val * SECTOR_SIZE, "the grain directory"))
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
            val, size = _GRAIN_MARKER.unpack_from(first)
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
        lba, size = _GRAIN_MARKER.unpack_from(sector)
        if size:
            if lba >= self._header.capacity_sectors:
                raise VmdkError(f"grain at sector {lba} lies beyond the capacity "
                                f"({self._header.capacity_sectors} sectors)")
            if size > 2 * self._header.grain_size + 1024:
                raise VmdkError(f"grain at sector {lba} claims {size} compressed bytes, more than a "
                                f"{self._header.grain_size}-byte grain can take")
            self.grains += 1
            self._skip = _round_up(_GRAIN_MARKER.size + size, SECTOR_SIZE) - SECTOR_SIZE
            return
        sectors, _, kind = _META_MARKER.unpack_from(sector)
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
