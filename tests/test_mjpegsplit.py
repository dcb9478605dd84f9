"""Cutting JPEGs out of byte streams: concatenated or multipart, any chunking, bounded."""

from __future__ import annotations

import pytest

from pyimagestreamd.mjpeg import jpeg_size
from pyimagestreamd.mjpegsplit import StreamSplitter
from pyimagestreamd.testpattern import TestPattern


def jpegs(n: int) -> list[bytes]:
    from pyimagestreamd import encoder

    pattern = TestPattern(64, 48, "t")
    return [encoder.encode_planes(pattern.draw(i, 0.0), 80) for i in range(n)]


def feed_in_chunks(splitter: StreamSplitter, data: bytes, size: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(data), size):
        out += splitter.feed(data[i : i + size])
    return out


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_concatenated_jpegs_come_out_whole_whatever_the_chunking(chunk: int) -> None:
    """Back-to-back JPEGs (a producer's stdout) come out byte for byte, split anywhere."""
    frames = jpegs(5)
    splitter = StreamSplitter(1 << 20)
    assert feed_in_chunks(splitter, b"".join(frames), chunk) == frames
    assert splitter.skipped_bytes == 0 and splitter.buffered == 0


@pytest.mark.parametrize("chunk", [3, 1000])
def test_multipart_part_headers_are_skipped(chunk: int) -> None:
    """A multipart/x-mixed-replace body gives the same JPEGs; headers are counted as skipped."""
    frames = jpegs(3)
    body = b"".join(
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(f) + f + b"\r\n"
        for f in frames
    )
    splitter = StreamSplitter(1 << 20)
    assert feed_in_chunks(splitter, body, chunk) == frames
    assert splitter.skipped_bytes > 0


def test_garbage_without_markers_is_not_kept() -> None:
    """Bytes without a start marker are dropped as they come: at most two are held."""
    splitter = StreamSplitter(1 << 16)
    for _ in range(100):
        assert splitter.feed(b"\x00garbage\xff" * 1000) == []
        assert splitter.buffered <= 2
    assert splitter.skipped_bytes >= 100 * 9000 - 2


def test_a_picture_that_never_ends_is_dropped_at_the_bound() -> None:
    """A start marker then endless data: the buffer never passes the bound, then resyncs."""
    head = jpegs(1)[0][:-2]  # a whole header and the scan, without the end marker
    splitter = StreamSplitter(1 << 16)
    most = 0
    splitter.feed(head)
    for _ in range(50):
        splitter.feed(b"\x00" * 4096)
        most = max(most, splitter.buffered)
    assert most <= (1 << 16) + 4096
    assert splitter.oversize >= 1
    frame = jpegs(2)[1]
    assert splitter.feed(frame) == [frame]


def test_jpeg_size_reads_the_frame_header() -> None:
    """Width and height come from SOF without decoding; junk gives (0, 0)."""
    assert jpeg_size(jpegs(1)[0]) == (64, 48)
    assert jpeg_size(b"\xff\xd8\xff\xd9") == (0, 0)
