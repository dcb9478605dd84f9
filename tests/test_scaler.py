"""Scaled frames: the DCT-domain sizes, one encode per (frame, size), a bounded cache."""

from __future__ import annotations

import pytest
import simplejpeg

from pyimagestreamd import encoder
from pyimagestreamd.frame import Frame
from pyimagestreamd.scaler import Scaler, scaled_size
from pyimagestreamd.testpattern import TestPattern


def _frame(seq: int, width: int = 1920, height: int = 1080) -> Frame:
    jpeg = encoder.encode_planes(TestPattern(width, height, "t").draw(seq, 0.0), 80)
    return Frame(jpeg, width, height, 0.0, 0.0, seq)


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [
        ((1920, 1080), 480, (480, 270)),
        ((1920, 1080), 479, (240, 135)),
        ((1920, 1080), 1000, (960, 540)),
        ((1920, 1080), 1500, (1440, 810)),
        ((1920, 1080), 10, (240, 135)),
        ((1920, 1080), 1920, (1920, 1080)),
        ((1920, 1080), 4000, (1920, 1080)),
        ((1280, 720), 320, (320, 180)),
        ((640, 360), 100, (80, 45)),
    ],
)
def test_scaled_size_is_the_largest_dct_scale_within_the_width(
    size: tuple[int, int], max_width: int, expected: tuple[int, int]
) -> None:
    """A maximum width gives the largest M/8 scale not wider than it (1/8 at the least)."""
    assert scaled_size(*size, max_width) == expected


def test_scaled_jpeg_decodes_to_the_size_it_claims() -> None:
    """The JPEG made for a maximum width is exactly the size the frame says."""
    scaler = Scaler()
    small = scaler.scaled(_frame(1), 480)
    header = simplejpeg.decode_jpeg_header(small.jpeg)
    assert (header[1], header[0]) == (small.width, small.height) == (480, 270)
    assert small.seq == 1


def test_each_size_of_a_frame_is_made_once_and_shared() -> None:
    """Clients asking the same size of the same frame get the same bytes; one encode."""
    scaler = Scaler()
    frame = _frame(7)
    first = scaler.scaled(frame, 480)
    assert scaler.scaled(frame, 480) is first
    assert scaler.scaled(frame, 500) is first  # the same DCT scale
    assert scaler.made == 1
    scaler.scaled(frame, 960)
    assert scaler.made == 2


def test_a_frame_not_wider_than_asked_is_passed_through() -> None:
    """No decode or encode when the frame already fits the maximum width."""
    scaler = Scaler()
    frame = _frame(3, 640, 360)
    assert scaler.scaled(frame, 640) is frame
    assert scaler.made == 0
    assert len(scaler) == 0


def test_the_cache_holds_at_most_max_entries() -> None:
    """New frames push the oldest scaled copies out: the cache never grows past its bound."""
    scaler = Scaler(max_entries=3)
    for seq in range(1, 8):
        scaler.scaled(_frame(seq, 320, 240), 160)
        assert len(scaler) <= 3
    assert len(scaler) == 3
    assert scaler.made == 7
