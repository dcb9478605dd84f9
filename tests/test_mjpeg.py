"""Tests for pyimagestreamd.mjpeg: repair or drop of camera MJPEG buffers, no I/O."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import simplejpeg
from hypothesis import given
from hypothesis import strategies as st

from pyimagestreamd.mjpeg import STANDARD_DHT, MjpegChecker, Verdict, inspect


def make_jpeg(width: int = 64, height: int = 48) -> bytes:
    """A real baseline JPEG (libjpeg-turbo through simplejpeg) of a colour gradient."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return bytes(simplejpeg.encode_jpeg(image, quality=85, colorspace="RGB"))


def segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each header segment up to and including SOS."""
    out = []
    pos = 2
    while True:
        marker = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        out.append((marker, pos, pos + 2 + length))
        if marker == 0xDA:
            return out
        pos += 2 + length


def strip_dht(jpeg: bytes) -> bytes:
    """The same JPEG without its DHT segments, as MJPEG cameras send it."""
    out = jpeg
    for marker, start, end in reversed(segments(jpeg)):
        if marker == 0xC4:
            out = out[:start] + out[end:]
    return out


def dht_tables(jpeg: bytes) -> dict[int, bytes]:
    """Huffman tables of a JPEG by class/id byte, each as counts + symbols."""
    tables = {}
    for marker, start, end in segments(jpeg):
        if marker != 0xC4:
            continue
        pos = start + 4
        while pos < end:
            counts = jpeg[pos + 1 : pos + 17]
            size = 17 + sum(counts)
            tables[jpeg[pos]] = jpeg[pos + 1 : pos + size]
            pos += size
    return tables


def test_valid_frame_passes_through_as_the_same_object() -> None:
    """A complete JPEG is returned untouched, without a copy."""
    jpeg = make_jpeg()
    checker = MjpegChecker()
    assert checker.check(jpeg) is jpeg
    assert checker.counters()["dropped"] == 0


def test_zero_padding_after_eoi_is_trimmed() -> None:
    """A buffer padded with zeros (bytesused = sizeimage) yields exactly the picture."""
    jpeg = make_jpeg()
    checker = MjpegChecker()
    assert checker.check(jpeg + bytes(100_000)) == jpeg
    assert checker.trimmed == 1
    assert checker.dropped == 0


def test_truncated_frame_is_dropped_and_counted() -> None:
    """A frame cut short (no EOI after the scan) is dropped, not published."""
    jpeg = make_jpeg()
    checker = MjpegChecker()
    for cut in (len(jpeg) - 2, len(jpeg) // 2, 40, 3):
        assert checker.check(jpeg[:cut]) is None
    assert checker.truncated + checker.garbage == 4
    assert checker.counters()["dropped"] == 4


def test_truncated_frame_padded_with_zeros_is_dropped() -> None:
    """Padding does not hide a lost end of picture."""
    jpeg = make_jpeg()
    assert inspect(jpeg[: len(jpeg) // 2] + bytes(5000)).verdict is Verdict.TRUNCATED


def test_garbage_is_dropped_and_counted() -> None:
    """Buffers that are not JPEG streams are dropped as garbage."""
    checker = MjpegChecker()
    rng = np.random.default_rng(1)
    for data in (b"", bytes(1000), rng.integers(0, 255, 5000, dtype=np.uint8).tobytes(),
                 b"\xff\xd8\x00\x00" + bytes(100)):  # fmt: skip
        assert checker.check(data) is None
    assert checker.garbage == 4


def test_missing_huffman_tables_are_inserted() -> None:
    """A JPEG without DHT gets the standard tables and then decodes to the same pixels."""
    jpeg = make_jpeg()
    bare = strip_dht(jpeg)
    assert b"\xff\xc4" not in bare[: segments(bare)[-1][1]]
    checker = MjpegChecker()
    fixed = checker.check(bare + bytes(64))
    assert fixed is not None
    assert checker.huffman_inserted == 1
    assert inspect(fixed).verdict is Verdict.OK
    original = simplejpeg.decode_jpeg(jpeg)
    assert np.array_equal(simplejpeg.decode_jpeg(fixed), original)


def test_standard_tables_match_libjpeg_default_tables() -> None:
    """The inserted tables are the ones libjpeg writes by default (ITU-T T.81 K.3)."""
    ours = dht_tables(b"\xff\xd8" + STANDARD_DHT + b"\xff\xda\x00\x02")
    theirs = dht_tables(make_jpeg())
    assert set(ours) == {0x00, 0x01, 0x10, 0x11}
    assert ours == theirs


def test_thumbnail_end_marker_in_header_does_not_hide_truncation() -> None:
    """An EOI inside an APP segment (an EXIF thumbnail) is not taken as the picture's end."""
    jpeg = make_jpeg()
    thumb = make_jpeg(8, 8)
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb
    with_thumb = jpeg[:2] + app1 + jpeg[2:]
    assert inspect(with_thumb).verdict is Verdict.OK
    assert inspect(with_thumb[: len(with_thumb) - 100]).verdict is Verdict.TRUNCATED


@pytest.mark.parametrize("fill", [1, 3])
def test_fill_bytes_between_markers_are_accepted(fill: int) -> None:
    """0xFF fill bytes before a marker are legal and do not make a frame garbage."""
    jpeg = make_jpeg()
    padded = jpeg[:2] + b"\xff" * fill + jpeg[2:]
    assert inspect(padded).verdict is Verdict.OK


def test_mostly_broken_stream_still_delivers_every_good_frame() -> None:
    """Broken frames cost nothing but themselves: each good frame in between gets through."""
    jpeg = make_jpeg()
    checker = MjpegChecker()
    delivered = 0
    for i in range(100):
        data = jpeg if i % 10 == 0 else jpeg[: 50 + i]
        delivered += checker.check(data) is not None
    assert delivered == 10
    assert checker.dropped == 90


def test_stale_bytes_of_an_older_frame_after_eoi_are_trimmed() -> None:
    """A reused buffer holding the tail of an older, longer frame yields only the new one."""
    small, large = make_jpeg(32, 32), make_jpeg(64, 64)
    buffer = small + large[len(small) :]
    assert MjpegChecker().check(buffer) == small


# Bytes after the scan header, made of the ones that matter around an end marker.
scan_bytes = st.lists(st.sampled_from([b"\x00", b"\xff", b"\xd9", b"\xd0", b"\x5a"])).map(b"".join)


@given(scan_bytes, scan_bytes)
def test_the_picture_ends_at_the_first_end_marker_after_the_scan_header(
    scan: bytes, tail: bytes
) -> None:
    """Whatever bytes follow the scan header, the picture ends at the first FF D9 in them
    (bytes.find as the reference), and none means truncated."""
    jpeg = make_jpeg()
    sos = next(start for marker, start, _ in segments(jpeg) if marker == 0xDA)
    scan_at = sos + 2 + struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]
    data = jpeg[:scan_at] + scan + tail
    found = inspect(data)
    first = data.find(b"\xff\xd9", scan_at)
    if first < 0:
        assert found.verdict is Verdict.TRUNCATED
    else:
        assert found.verdict in (Verdict.OK, Verdict.REPAIRED)
        assert found.end_at == first + 2
