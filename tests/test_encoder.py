"""Raw-to-JPEG encoding and the generated pictures: right sizes, right colours, real motion."""

from __future__ import annotations

import time

import numpy as np
import simplejpeg
from conftest import check_jpeg

from pyimagestreamd import encoder
from pyimagestreamd.card import offline_card
from pyimagestreamd.testpattern import BARS_RGB, TestPattern


def test_yuyv_split_gives_420_planes_with_the_right_samples() -> None:
    """YUYV Y0 U Y1 V becomes a full Y plane and chroma from even rows at half width."""
    w, h = 4, 2
    row0 = bytes([10, 100, 11, 200, 12, 101, 13, 201])
    row1 = bytes([20, 110, 21, 210, 22, 111, 23, 211])
    y, u, v = encoder.yuyv_to_planes(row0 + row1, w, h)
    assert y.tolist() == [[10, 11, 12, 13], [20, 21, 22, 23]]
    assert u.tolist() == [[100, 101]]
    assert v.tolist() == [[200, 201]]
    assert all(p.flags.c_contiguous for p in (y, u, v))


def test_nv12_and_yu12_split() -> None:
    """NV12 de-interleaves UV; YU12 slices U then V."""
    w, h = 4, 2
    ys = bytes(range(8))
    y, u, v = encoder.nv12_to_planes(ys + bytes([50, 60, 51, 61]), w, h)
    assert (y.shape, u.tolist(), v.tolist()) == ((2, 4), [[50, 51]], [[60, 61]])
    y, u, v = encoder.yu12_to_planes(ys + bytes([50, 51, 60, 61]), w, h)
    assert (u.tolist(), v.tolist()) == ([[50, 51]], [[60, 61]])


def test_limited_range_expands_to_full() -> None:
    """16 -> 0, 235 -> 255 for luma; 128 stays neutral and 16/240 reach 0/255 for chroma."""
    y = np.array([[16, 235, 0, 255]], np.uint8)
    c = np.array([[16, 128, 240, 255]], np.uint8)
    fy, fu, _ = encoder.expand_range((y, c, c))
    assert fy.tolist() == [[0, 255, 0, 255]]
    assert fu.tolist() == [[0, 128, 255, 255]]


def test_test_pattern_colours_survive_encoding() -> None:
    """Each colour bar decodes back to its RGB value within JPEG tolerance."""
    pattern = TestPattern(640, 480, "t")
    jpeg = encoder.encode_planes(pattern.draw(1, time.time()), 90)
    check_jpeg(jpeg, 640, 480)
    rgb = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    for i, expected in enumerate(BARS_RGB):
        x = int((i + 0.5) * 640 / len(BARS_RGB))
        got = rgb[40, x].astype(int)
        assert np.abs(got - np.array(expected)).max() <= 12, (i, got, expected)


def test_test_pattern_moves_every_frame() -> None:
    """Consecutive frames differ in the moving box, not only in the text."""
    pattern = TestPattern(320, 240, "t")
    a = pattern.draw(1, 0.0)[0].copy()
    b = pattern.draw(2, 0.0)[0].copy()
    box_rows = slice(0, 240 * 2 // 3)
    assert (a[box_rows] != b[box_rows]).any()


def test_offline_card_is_a_jpeg_of_the_last_size() -> None:
    """The offline card is a valid JPEG at the requested size, marked as a placeholder."""
    card = offline_card(1280, 720, "cam: no such device", 80)
    check_jpeg(card.jpeg, 1280, 720)
    assert card.is_placeholder


def _pad_rows(data: bytes, row: int, stride: int) -> bytes:
    """The same picture with every `row`-byte line padded to `stride` bytes."""
    lines = [data[i : i + row] for i in range(0, len(data), row)]
    return b"".join(line + b"\xee" * (stride - row) for line in lines)


def test_padded_rows_unpack_like_unpadded_ones() -> None:
    """A driver's bytes-per-line padding is skipped for YUYV, NV12 and YU12 alike."""
    rng = np.random.default_rng(7)
    w, h = 8, 4
    cases = {
        "YUYV": (w * 2, [(w * 2, h)]),
        "NV12": (w, [(w, h), (w, h // 2)]),
        "YU12": (w, [(w, h), (w // 2, h // 2), (w // 2, h // 2)]),
    }
    for fourcc, (row, parts) in cases.items():
        stride = row + 6
        flat = bytes(rng.integers(0, 256, sum(r * n for r, n in parts), dtype=np.uint8))
        padded, at = b"", 0
        for part_row, rows in parts:
            chunk = flat[at : at + part_row * rows]
            at += part_row * rows
            padded += _pad_rows(chunk, part_row, part_row * stride // row)
        want = encoder.unpack_planes(flat, fourcc, w, h)
        got = encoder.unpack_planes(padded, fourcc, w, h, stride)
        assert want is not None and got is not None
        for a, b in zip(want, got, strict=True):
            assert a.tolist() == b.tolist(), fourcc
            assert b.flags.c_contiguous


def test_short_raw_buffer_is_refused() -> None:
    """A buffer shorter than one frame (a truncated capture) unpacks to None."""
    assert encoder.unpack_planes(bytes(8 * 4 * 2 - 1), "YUYV", 8, 4) is None
    assert encoder.unpack_planes(bytes(8 * 4 * 3 // 2 - 1), "NV12", 8, 4) is None
    assert encoder.unpack_planes(bytes(16 * 6 - 1), "YU12", 8, 4, 16) is None
