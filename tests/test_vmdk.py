"""The streamOptimized VMDK writer and reader, cross-checked with qemu-img.

Our own reader proves the writer and reader agree; ``qemu-img`` (an
independent implementation of the format) proves they agree with the world.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from nfclease.vmdk import ContentPattern, StreamOptimizedDisk, stream_sha1
from nfclease.vmdkformat import (
    GD_AT_END,
    GRAIN_SIZE,
    VMDK_HEADER_SIZE,
    VmdkError,
    check_header,
    parse_descriptor,
)
from nfclease.vmdkread import StreamDecoder, decode_to_file, read_stream_optimized

KiB, MiB, GiB = 1024, 1024**2, 1024**3
QEMU_IMG = shutil.which("qemu-img")
needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not on PATH (Debian package qemu-utils)")

# (pattern spec, capacity): includes a capacity that is not a whole number of
# grains, one smaller than a grain, one spanning several grain tables, and a
# sparse disk with an entirely empty grain-table span in the middle.
CASES = [
    ("zero", 5 * MiB + 1536),
    ("sequence", 3 * MiB + 1536),
    ("random", 3 * MiB + 1536),
    ("sparse", 3 * MiB + 1536),
    ("sequence", 7 * 512),
    ("random", 1 * MiB),
    ("random", 33 * MiB + 4 * KiB),
    ("sparse:1100", 80 * MiB + 512),
]


def _stream(disk: StreamOptimizedDisk, chunk_size: int = 1 * MiB) -> bytes:
    return b"".join(disk.iter_chunks(chunk_size))


def _decode_flat(source) -> tuple[bytes, StreamDecoder]:
    out = io.BytesIO()
    dec = decode_to_file(source, out)
    return out.getvalue(), dec


# ---------------------------------------------------------------- patterns


@pytest.mark.parametrize("name", ["zero", "sequence", "random", "sparse", "sparse:3"])
def test_pattern_reads_are_consistent_at_any_offset(name: str) -> None:
    p = ContentPattern(name, seed=5)
    whole = p.read(0, 5 * GRAIN_SIZE)
    assert len(whole) == 5 * GRAIN_SIZE
    for off, n in [(0, 1), (511, 2), (GRAIN_SIZE - 3, 10), (GRAIN_SIZE, GRAIN_SIZE), (1000, 3 * GRAIN_SIZE + 7)]:
        assert p.read(off, n) == whole[off : off + n], (off, n)
    for i in range(5):
        assert p.grain(i) == whole[i * GRAIN_SIZE : (i + 1) * GRAIN_SIZE]
    assert p.grain(1, 4096) == whole[4096:8192]
    assert b"".join(p.iter_read(100, 3 * GRAIN_SIZE, chunk_size=50000)) == whole[100 : 100 + 3 * GRAIN_SIZE]
    assert ContentPattern(name, seed=5).read(0, 5 * GRAIN_SIZE) == whole  # deterministic
    assert p.sha1(5 * GRAIN_SIZE) == hashlib.sha1(whole).hexdigest()


def test_patterns_depend_on_seed_and_differ_per_grain() -> None:
    for name in ("sequence", "random"):
        a, b = ContentPattern(name, 1), ContentPattern(name, "other")
        assert a.grain(3) != b.grain(3)
        assert len({a.grain(i) for i in range(64)}) == 64
    assert ContentPattern("sparse", 2) == ContentPattern("sparse:16", 2)
    assert ContentPattern("sparse", 2, every=4).spec == "sparse:4"


def test_sequence_sectors_carry_their_lba_and_seed() -> None:
    p = ContentPattern("sequence", seed=42)
    data = p.read(1000 * 512, 3 * 512)
    for k in range(3):
        sector = data[k * 512 : (k + 1) * 512]
        assert struct.unpack_from("<Q", sector)[0] == 1000 + k
        assert sector[8:32].rstrip() == b"nfclease seed=42"
    assert len(zlib.compress(p.grain(7), 6)) < GRAIN_SIZE // 10  # compressible


def test_random_is_incompressible_and_sparse_is_mostly_zero() -> None:
    r = ContentPattern("random", 9)
    assert len(zlib.compress(r.grain(12), 9)) > GRAIN_SIZE
    s = ContentPattern("sparse:4", 9)
    assert [s.grain(i) != bytes(GRAIN_SIZE) for i in range(9)] == [i % 4 == 0 for i in range(9)]


@pytest.mark.parametrize("name", ["zero", "sequence", "random", "sparse:3"])
def test_is_zero_is_exact(name: str) -> None:
    p = ContentPattern(name, 1)
    for off, n in [(0, 512), (GRAIN_SIZE, GRAIN_SIZE), (GRAIN_SIZE + 512, 4096), (2 * GRAIN_SIZE, 2 * GRAIN_SIZE),
                   (4 * GRAIN_SIZE - 512, 1024), (5 * GRAIN_SIZE, 512), (0, 8), (3 * GRAIN_SIZE - 4, 8),
                   (3 * GRAIN_SIZE + 3, 2), (GRAIN_SIZE + 700, 9)]:  # fmt: skip
        assert p.is_zero(off, n) == (p.read(off, n) == bytes(n)), (off, n)


def test_pattern_and_disk_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown content pattern"):
        ContentPattern("noise")
    with pytest.raises(ValueError, match="sparse interval"):
        ContentPattern("sparse:0")
    with pytest.raises(ValueError, match="multiple of 512"):
        StreamOptimizedDisk(1000, ContentPattern("zero"))
    with pytest.raises(ValueError, match="multiple of 512"):
        StreamOptimizedDisk(0, ContentPattern("zero"))
    with pytest.raises(ValueError, match="grain_size"):
        StreamOptimizedDisk(MiB, ContentPattern("zero"), grain_size=3000)
    with pytest.raises(ValueError, match="compresslevel"):
        StreamOptimizedDisk(MiB, ContentPattern("zero"), compresslevel=10)


# ------------------------------------------------------------------ writer


# Level 1 on every case but the large dense one (compressing 33 MiB of random data only costs time).
ROUND_TRIPS = [(n, c, 0) for n, c in CASES] + [(n, c, 1) for n, c in CASES if c < 8 * MiB or n.startswith("sparse")]


@pytest.mark.parametrize(("name", "capacity", "level"), ROUND_TRIPS)
def test_round_trip_and_size_known_in_advance(name: str, capacity: int, level: int) -> None:
    pattern = ContentPattern(name, seed=3)
    disk = StreamOptimizedDisk(capacity, pattern, compresslevel=level)
    promised = disk.size  # before any byte is produced
    stream = _stream(disk)
    assert len(stream) == promised
    assert len(stream) % 512 == 0
    flat, dec = _decode_flat(iter([stream]))
    assert len(flat) == capacity
    assert hashlib.sha1(flat).hexdigest() == pattern.sha1(capacity) == disk.content_sha1
    assert dec.stream_bytes == promised
    assert dec.sha1 == disk.sha1 == hashlib.sha1(stream).hexdigest()
    nonzero = sum(not pattern.is_zero(o, min(GRAIN_SIZE, capacity - o)) for o in range(0, capacity, GRAIN_SIZE))
    assert dec.grains == nonzero


def test_zero_disk_has_no_grains_and_a_tiny_stream() -> None:
    disk = StreamOptimizedDisk(10 * GiB, ContentPattern("zero"))
    stream = _stream(disk)
    assert len(stream) == disk.size < 128 * KiB
    dec = read_stream_optimized(stream)
    assert list(dec) == []
    assert dec.header is not None and dec.header.capacity == 10 * GiB


def test_stream_layout_follows_the_format() -> None:
    disk = StreamOptimizedDisk(3 * MiB + 1536, ContentPattern("sequence", 1))
    stream = _stream(disk)
    head = check_header(stream[:512])
    assert (head.version, head.flags, head.grain_sectors, head.num_gtes_per_gt) == (3, 0x30001, 128, 512)
    assert head.gd_offset == GD_AT_END and head.gd_at_end
    assert head.capacity_sectors == (3 * MiB + 1536) // 512
    assert head.descriptor_offset == 1 and head.overhead == 128
    desc = parse_descriptor(stream[512 : 512 * (1 + head.descriptor_size)].rstrip(b"\0").decode())
    assert desc.create_type == "streamOptimized"
    assert desc.fields["ddb.adapterType"] == "lsilogic"
    assert {"ddb.geometry.cylinders", "ddb.geometry.heads", "ddb.geometry.sectors", "CID"} <= desc.fields.keys()
    assert desc.extents == [("RW", head.capacity_sectors, "SPARSE", "disk.vmdk")]
    # first grain marker right at overHead: LBA 0, then a zlib stream
    lba, size = struct.unpack_from("<QI", stream, 128 * 512)
    assert lba == 0 and 0 < size and stream[128 * 512 + 12] == 0x78
    # tail: footer marker, footer (the header with the real gdOffset), EOS
    footer_marker, footer, eos = stream[-1536:-1024], stream[-1024:-512], stream[-512:]
    assert struct.unpack_from("<QII", footer_marker) == (1, 0, 3)
    real = check_header(footer)
    assert real.gd_offset not in (0, GD_AT_END)
    gd_marker = stream[(real.gd_offset - 1) * 512 : real.gd_offset * 512]
    assert struct.unpack_from("<QII", gd_marker) == (1, 0, 2)
    assert eos == bytes(512)
    assert replace(real, gd_offset=GD_AT_END).pack() == stream[:512]


def test_size_at_level_0_costs_no_content_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("random", "sequence", "sparse:1000", "zero"):
        pattern = ContentPattern(name)
        monkeypatch.setattr(pattern, "read", lambda *a: pytest.fail("size generated content"))
        monkeypatch.setattr(pattern, "grain", lambda *a: pytest.fail("size generated content"))
        assert StreamOptimizedDisk(1024 * GiB, pattern).size > 0  # 1 TiB, instantly
    # grain tables hold u32 sector numbers: a dense 2 TiB disk's stream cannot be addressed
    with pytest.raises(ValueError, match="32-bit grain table entries"):
        StreamOptimizedDisk(2048 * GiB, ContentPattern("random")).size
    assert StreamOptimizedDisk(60 * 1024 * GiB, ContentPattern("sparse:64")).size < 2048 * GiB
    grains = (1 * GiB) // GRAIN_SIZE
    record = 12 + 2 + 2 * 5 + GRAIN_SIZE + 4  # marker, zlib header, 2 stored blocks, adler32
    expected = 128 * 512 + grains * -(-record // 512) * 512 + 32 * (512 + 2048) + (512 + 512) + 1024 + 512
    assert StreamOptimizedDisk(1 * GiB, ContentPattern("random")).size == expected


def test_chunking_does_not_change_the_stream() -> None:
    disk = StreamOptimizedDisk(2 * MiB + 512, ContentPattern("random", 4))
    reference = _stream(disk)
    for chunk_size in (512, 4096, 100_000, 8 * MiB):
        chunks = list(disk.iter_chunks(chunk_size))
        assert all(len(c) == chunk_size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_size
        assert b"".join(chunks) == reference


def test_open_is_a_file_like_request_body() -> None:
    disk = StreamOptimizedDisk(2 * MiB + 512, ContentPattern("random", 4), compresslevel=1)
    reference = _stream(disk)
    f = disk.open(chunk_size=50_000)
    assert len(f) == disk.size and f.readable() and f.seekable() and f.tell() == 0
    assert f.read(1) == reference[:1]
    assert f.read(70_000) == reference[1:70_001]
    buf = bytearray(123_457)
    assert f.readinto(buf) == len(buf) and bytes(buf) == reference[70_001:193_458]
    assert f.tell() == 193_458
    assert f.seek(0) == 0 and f.read(10) == reference[:10]  # a retry rewinds
    assert f.seek(-512, io.SEEK_END) == len(reference) - 512 and f.read() == reference[-512:]
    assert f.read(10) == b""
    f.seek(0)
    out = io.BytesIO()
    shutil.copyfileobj(f, out, 16 * KiB)
    assert out.getvalue() == reference
    f.close()
    assert f.closed


def test_sha1_is_recorded_while_streaming() -> None:
    disk = StreamOptimizedDisk(1 * MiB, ContentPattern("random", 8))
    it = disk.iter_chunks(64 * KiB)
    next(it)
    it.close()
    assert disk._sha1 is None  # a partial pass proves nothing
    stream = _stream(disk)
    assert disk._sha1 == hashlib.sha1(stream).hexdigest()
    assert stream_sha1(disk) == disk.sha1 == hashlib.sha1(stream).hexdigest()
    fresh = StreamOptimizedDisk(1 * MiB, ContentPattern("random", 8))
    assert fresh.sha1 == disk.sha1  # computed on demand, deterministic


@pytest.mark.parametrize("grain_size", [4 * KiB, 16 * KiB, 128 * KiB])
def test_other_grain_sizes_round_trip(grain_size: int) -> None:
    pattern = ContentPattern("sparse:2", 6)
    capacity = 1 * MiB + 1536
    disk = StreamOptimizedDisk(capacity, pattern, grain_size=grain_size)
    stream = _stream(disk)
    assert len(stream) == disk.size
    assert check_header(stream).grain_size == grain_size
    flat, _ = _decode_flat(stream)
    assert hashlib.sha1(flat).hexdigest() == pattern.sha1(capacity)


def test_memory_does_not_grow_with_capacity() -> None:
    disk = StreamOptimizedDisk(1 * GiB, ContentPattern("random", 11))
    tracemalloc.start()
    try:
        total = 0
        for chunk in disk.iter_chunks():
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == disk.size > 1 * GiB
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB for a 1 GiB disk"


# ------------------------------------------------------------------ reader


def test_reader_accepts_bytes_files_and_odd_chunks() -> None:
    pattern = ContentPattern("sparse:3", 2)
    disk = StreamOptimizedDisk(1 * MiB + 512, pattern)
    stream = _stream(disk)
    expected = pattern.read(0, disk.capacity)
    odd = (stream[i : i + 1000] for i in range(0, len(stream), 1000))
    for source in (stream, io.BytesIO(stream), odd, disk.iter_chunks(), disk.open()):
        flat, dec = _decode_flat(source)
        assert flat == expected
        assert dec.grains == 6 and dec.footer is not None and dec.descriptor is not None


def test_decode_to_file_writes_a_flat_image(tmp_path: Path) -> None:
    pattern = ContentPattern("sparse:5", 1)
    disk = StreamOptimizedDisk(2 * MiB + 3 * 512, pattern, compresslevel=1)
    dec = decode_to_file(disk.iter_chunks(), tmp_path / "flat.raw")
    data = (tmp_path / "flat.raw").read_bytes()
    assert len(data) == disk.capacity
    assert hashlib.sha1(data).hexdigest() == pattern.sha1(disk.capacity)
    assert dec.header is not None and dec.header.capacity == disk.capacity


def test_check_header_refuses_garbage_with_a_clear_message() -> None:
    good = _stream(StreamOptimizedDisk(1 * MiB, ContentPattern("sequence")))[:VMDK_HEADER_SIZE]
    assert VMDK_HEADER_SIZE == 512
    info = check_header(good)
    assert info.capacity == 1 * MiB and info.compressed and info.has_markers and info.gd_at_end

    def patched(offset: int, fmt: str, value) -> bytes:
        b = bytearray(good)
        struct.pack_into(fmt, b, offset, value)
        return bytes(b)

    cases = [
        (b"", "truncated header: 0 bytes"),
        (good[:100], "truncated header: 100 bytes"),
        (b"GET / HTTP/1.1\r\n".ljust(512, b"x"), "bad magic b'GET '"),
        (bytes(512), "bad magic"),
        (b"COWD" + good[4:], "bad magic"),
        (patched(4, "<I", 7), "unsupported sparse extent version 7"),
        (patched(8, "<I", 0x1), "lack compressed grains 0x10000 and markers 0x20000"),
        (patched(8, "<I", 0x10001), "lack markers 0x20000"),
        (patched(12, "<Q", 0), "bad capacity 0"),
        (patched(20, "<Q", 100), "bad grainSize 100"),
        (patched(44, "<I", 256), "bad numGTEsPerGT 256"),
        (patched(73, "4s", b"\n \n\n"), "text-mode transfer"),
        (patched(77, "<H", 2), "unknown compressAlgorithm 2"),
        (patched(36, "<Q", 0), "no embedded descriptor"),
        (patched(28, "<Q", 500), "outside the metadata area"),
    ]
    for data, message in cases:
        with pytest.raises(VmdkError, match=message.replace("(", r"\(")):
            check_header(data)
    check_header(patched(8, "<I", 0x3), stream_optimized=False)  # a plain monolithicSparse header


def _small_stream() -> tuple[StreamOptimizedDisk, bytes]:
    disk = StreamOptimizedDisk(3 * GRAIN_SIZE + 1024, ContentPattern("sequence", 1))
    return disk, _stream(disk)


def _edit(stream: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(stream)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def test_reader_rejects_malformed_streams_precisely() -> None:
    disk, s = _small_stream()
    g0 = 128 * 512  # first grain marker
    record = 129 * 512  # a level-0 64 KiB grain record
    g1 = g0 + record
    gt_marker = g0 + 4 * record
    footer = len(s) - 1024
    bad = [
        (s[:300], "truncated stream: the sparse extent header needs 512 bytes at offset 0"),
        (s[: g0 + 1000], "truncated stream: grain data for LBA 0"),
        (s[:-512], "truncated stream: a marker needs 512 bytes"),
        (s + b"junk", "4 bytes of trailing data after the end-of-stream marker"),
        (_edit(s, g1, "<Q", 5), "has LBA 5: not a grain boundary"),
        (_edit(s, g1, "<Q", 0), "second grain for LBA 0"),
        (_edit(s, g1, "<Q", 10**9), "has LBA 1000000000"),
        (_edit(s, g1 + 8, "<I", 10**7), "claims 10000000 compressed bytes"),
        (_edit(s, g1 + 12 + 40, "<I", 0xDEADBEEF), "zlib"),
        (_edit(s, g1 + 12, "<H", 0x0000), "bad zlib data"),
        (_edit(s, gt_marker, "<Q", 3), "announces 3 sectors, expected 4"),
        (_edit(s, gt_marker + 512 + 4, "<I", 7), "entry 1 points to sector 7"),
        (_edit(s, gt_marker + 12, "<I", 9), "unknown marker type 9"),
        (_edit(s, footer + 56, "<Q", 12345), "footer gdOffset is 12345"),
        (_edit(s, footer + 12, "<Q", 99), "footer differs from the header"),
        (s[:-1536] + s[-512:], "end-of-stream marker at offset .* before the footer"),
        (s.replace(b'createType="streamOptimized"', b'createType="monolithicSparse"'),
         "createType is 'monolithicSparse'"),
        (s.replace(b"RW 386 SPARSE", b"RW 999 SPARSE"), "descriptor extent has 999 sectors"),
    ]
    assert b"RW 386 SPARSE" in s
    list(read_stream_optimized(s))  # the unedited stream is fine
    for data, message in bad:
        with pytest.raises(VmdkError, match=message):
            list(read_stream_optimized(data))


def test_reader_ignores_zero_padding_after_the_stream() -> None:
    disk, s = _small_stream()
    dec = read_stream_optimized(s + bytes(4096))
    assert len(list(dec)) == 4
    assert dec.stream_bytes == len(s) + 4096 and dec.sha1 == hashlib.sha1(s + bytes(4096)).hexdigest()
    with pytest.raises(VmdkError, match="4097 bytes of trailing data"):
        list(read_stream_optimized(s + bytes(4096) + b"x"))


def test_reader_rejects_grains_missing_from_the_tables() -> None:
    _, s = _small_stream()
    gt = 128 * 512 + 4 * 129 * 512 + 512
    with pytest.raises(VmdkError, match="1 grain.s. not in any grain table, first: LBA 256"):
        list(read_stream_optimized(_edit(s, gt + 8, "<I", 0)))
    footer = len(s) - 1024
    gd_offset = struct.unpack_from("<Q", s, footer + 56)[0]
    with pytest.raises(VmdkError, match="does not point to it"):
        list(read_stream_optimized(_edit(s, gd_offset * 512, "<I", 0)))


# ---------------------------------------------------------- qemu cross-check

QEMU_CASES = [(n, c, 0) for n, c in CASES] + [("sequence", 3 * MiB + 1536, 1), ("random", 1 * MiB, 6),
                                               ("sparse:1100", 80 * MiB + 512, 9)]  # fmt: skip


def _qemu(*args: str) -> subprocess.CompletedProcess[str]:
    assert QEMU_IMG is not None
    return subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize(("name", "capacity", "level"), QEMU_CASES)
def test_qemu_img_reads_our_streams(tmp_path: Path, name: str, capacity: int, level: int) -> None:
    pattern = ContentPattern(name, seed=21)
    disk = StreamOptimizedDisk(capacity, pattern, compresslevel=level)
    vmdk = tmp_path / "disk.vmdk"
    assert disk.write_to(vmdk) == disk.size == vmdk.stat().st_size

    info = _qemu("info", "--output=json", str(vmdk))
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["format"] == "vmdk"
    assert meta["virtual-size"] == capacity
    assert meta["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert meta["format-specific"]["data"]["extents"][0]["compressed"] is True

    check = _qemu("check", str(vmdk))
    assert check.returncode == 0, check.stdout + check.stderr

    raw = tmp_path / "disk.raw"
    conv = _qemu("convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(raw))
    assert conv.returncode == 0, conv.stderr
    h = hashlib.sha1()
    with open(raw, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    assert raw.stat().st_size == capacity
    assert h.hexdigest() == pattern.sha1(capacity)


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize("grain_size", [16 * KiB, 128 * KiB])
def test_qemu_img_reads_other_grain_sizes(tmp_path: Path, grain_size: int) -> None:
    pattern = ContentPattern("sparse:3", 2)
    disk = StreamOptimizedDisk(1 * MiB + 512, pattern, grain_size=grain_size)
    vmdk, raw = tmp_path / "disk.vmdk", tmp_path / "disk.raw"
    disk.write_to(vmdk)
    assert _qemu("check", str(vmdk)).returncode == 0
    assert _qemu("convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(raw)).returncode == 0
    assert hashlib.sha1(raw.read_bytes()).hexdigest() == pattern.sha1(disk.capacity)


def _qemu_stream(tmp_path: Path, pattern: ContentPattern, capacity: int) -> bytes:
    raw, vmdk = tmp_path / "in.raw", tmp_path / "qemu.vmdk"
    raw.write_bytes(pattern.read(0, capacity))
    conv = _qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(vmdk))
    assert conv.returncode == 0, conv.stderr
    return vmdk.read_bytes()


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize(("name", "grains"), [("sparse:2", 16), ("sequence", 32), ("zero", 0)])
def test_our_reader_decodes_qemu_written_streams(tmp_path: Path, name: str, grains: int) -> None:
    """The other direction: qemu-img's streamOptimized output (tables before the grains) through our reader."""
    pattern = ContentPattern(name, 5)
    capacity = 2 * MiB
    stream = _qemu_stream(tmp_path, pattern, capacity)
    assert not check_header(stream).gd_at_end  # qemu's layout, not VMware's
    flat, dec = _decode_flat(io.BytesIO(stream))
    assert hashlib.sha1(flat).hexdigest() == pattern.sha1(capacity)
    assert dec.grains == grains and dec.footer is None


@pytest.mark.qemu
@needs_qemu
def test_reader_checks_qemu_streams_against_their_tables(tmp_path: Path) -> None:
    stream = _qemu_stream(tmp_path, ContentPattern("sequence", 5), 1 * MiB)
    head = check_header(stream)
    gt_sector = struct.unpack_from("<I", stream, head.gd_offset * 512)[0]
    first, second = struct.unpack_from("<II", stream, gt_sector * 512)
    with pytest.raises(VmdkError, match=f"grain for LBA 128 at sector {second}, but its grain table entry says 7"):
        list(read_stream_optimized(_edit(stream, gt_sector * 512 + 4, "<I", 7)))
    with pytest.raises(VmdkError, match="the stream holds no grain for LBA 128"):
        list(read_stream_optimized(stream[: second * 512]))
