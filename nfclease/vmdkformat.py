"""The streamOptimized VMDK format: its constants, header and descriptor, and content patterns.

Shared by the writer (:mod:`nfclease.vmdk`) and the reader
(:mod:`nfclease.vmdkread`).


An NFC import lease takes each disk as a *streamOptimized* sparse extent (the
format inside an OVA): a sparse extent header, the embedded text descriptor,
then deflate-compressed grains each preceded by a marker (LBA + size), grain
tables and the grain directory written *after* the grains they describe (a
stream cannot seek back), a footer repeating the header with the real grain
directory offset, and an end-of-stream marker. Every metadata structure is
sector (512-byte) aligned, so offsets are counted in sectors.

Layout of a stream the writer produces (sizes in 512-byte sectors)::

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
import re
import struct
import sys
from array import array
from dataclasses import dataclass, field

from typing import Iterator

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
GRAIN_MARKER = struct.Struct("<QI")  # lba, compressed size; data follows at byte 12
META_MARKER = struct.Struct("<QII")  # sectors that follow, size 0, type
GT_SECTORS = NUM_GTES_PER_GT * 4 // SECTOR_SIZE
_U64 = struct.Struct("<Q")
ZERO_SECTOR = bytes(SECTOR_SIZE)
MAX_SECTOR = 0xFFFF_FFFF  # grain table and directory entries are u32 sector numbers: a stream ends below 2 TiB


class VmdkError(ValueError):
    """A stream or header that is not a valid streamOptimized VMDK."""


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def sectors_for(nbytes: int) -> int:
    return -(-nbytes // SECTOR_SIZE)


def le_u32_array(values: array) -> bytes:
    """``array('I')`` as little-endian bytes (the format is little-endian everywhere)."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def u32_array_from_le(data: bytes) -> array:
    values = array("I")
    assert values.itemsize == 4
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


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
        return sectors_for(self.num_gts * 4)

    @property
    def gt_sectors(self) -> int:
        return sectors_for(self.num_gtes_per_gt * 4)

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


