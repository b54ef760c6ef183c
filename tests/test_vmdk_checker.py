"""The incremental structure check the simulator runs on every disk upload."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nfclease.vmdk import ContentPattern, StreamOptimizedDisk
from nfclease.vmdkformat import VmdkError
from nfclease.vmdkread import StreamChecker


def _check(data: bytes, chunk: int = 7777) -> StreamChecker:
    checker = StreamChecker()
    for start in range(0, len(data), chunk):
        checker.feed(data[start:start + chunk])
    checker.finish()
    return checker


@pytest.mark.parametrize("pattern", ["sequence", "random", "sparse", "zero"])
@pytest.mark.parametrize("level", [0, 6])
def test_whole_streams_pass_in_any_chunking(pattern: str, level: int) -> None:
    disk = StreamOptimizedDisk(3 << 20, ContentPattern(pattern, "c"), compresslevel=level)
    data = b"".join(disk.iter_chunks())
    assert _check(data, 512).grains == _check(data, 1 << 20).grains
    assert _check(data).received == disk.size


def test_truncated_stream_is_refused_at_finish() -> None:
    data = b"".join(StreamOptimizedDisk(2 << 20, ContentPattern("random", 1)).iter_chunks())
    for cut in (len(data) // 2, len(data) - 512, 1024):
        checker = StreamChecker()
        checker.feed(data[:cut])
        with pytest.raises(VmdkError, match="truncated|header"):
            checker.finish()


def test_garbage_and_corrupted_markers_are_refused() -> None:
    with pytest.raises(VmdkError, match="magic"):
        StreamChecker().feed(b"\x01" * 4096)
    data = bytearray(b"".join(StreamOptimizedDisk(1 << 20, ContentPattern("random", 2)).iter_chunks()))
    first_grain = 128 * 512  # the writer aligns the first grain at overHead 128
    data[first_grain:first_grain + 8] = (1 << 40).to_bytes(8, "little")
    with pytest.raises(VmdkError, match="beyond the capacity"):
        _check(bytes(data))


def test_trailing_data_after_the_end_marker_is_refused() -> None:
    data = b"".join(StreamOptimizedDisk(1 << 20, ContentPattern("sequence")).iter_chunks())
    _check(data + bytes(1024))  # zero padding is fine
    with pytest.raises(VmdkError, match="after the end-of-stream"):
        _check(data + b"junk")


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (Debian qemu-utils) not installed")
def test_qemu_img_streams_pass(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    raw.write_bytes(ContentPattern("random", 3).read(0, 2 << 20))
    out = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(out)],
                   check=True)
    assert _check(out.read_bytes()).grains > 0


def test_record_sha1_off_still_gives_sha1_on_demand() -> None:
    recorded = StreamOptimizedDisk(1 << 20, ContentPattern("random", 9))
    lazy = StreamOptimizedDisk(1 << 20, ContentPattern("random", 9), record_sha1=False)
    assert b"".join(lazy.iter_chunks()) == b"".join(recorded.iter_chunks())
    assert lazy._sha1 is None  # the pass did not hash
    assert lazy.sha1 == recorded.sha1
