"""Smaller copies of a camera's frames, for the clients that ask for a maximum width.

Between the hub's latest-frame slot and the protocol-2 clients that sent a maximum width
(grid tiles, a data saver): the frame is scaled by libjpeg while it decodes — in the DCT
domain, by M/8 for M in 1..8, so a 1/4 picture costs a fraction of a full decode — and then
encoded once. Each (frame, size) is made once and kept in a small bounded cache, so every
client that asked for that size gets the same bytes; a client that asked for nothing never
reaches this module and gets the camera's frame untouched.

No I/O and no threads here. `scaled()` is CPU work of a few milliseconds per new frame and
size (see `make bench`); one Scaler per camera, used from one thread at a time.
"""

from __future__ import annotations

from collections import OrderedDict

import simplejpeg

from pyimagestreamd.frame import Frame

# Sizes kept: a few sizes of the newest frames (a slow client may still want the previous one).
DEFAULT_CACHE_ENTRIES = 8


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The size a frame of width x height is sent at to a client asking for `max_width`.

    The largest M/8 scale (M = 1..8, the DCT scales) whose width is at most max_width; 1/8
    when even that is wider; the frame's own size when it is not wider than max_width.
    libjpeg rounds scaled sizes up.
    """
    if max_width >= width:
        return width, height
    eighths = max(1, min(8, (max_width * 8) // width))
    while eighths > 1 and -(-width * eighths // 8) > max_width:
        eighths -= 1
    return -(-width * eighths // 8), -(-height * eighths // 8)


class Scaler:
    """Scaled copies of one camera's frames, made once per (frame, size), bounded."""

    def __init__(self, quality: int = 80, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.quality = quality
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[int, bool, int], Frame] = OrderedDict()
        self.made = 0  # scaled frames encoded (a cache hit does not count)

    def scaled(self, frame: Frame, max_width: int) -> Frame:
        """`frame` at most `max_width` wide (the frame itself if it is not wider)."""
        width, _ = scaled_size(frame.width, frame.height, max_width)
        if width == frame.width:
            return frame
        key = (frame.seq, frame.is_placeholder, width)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        # min_width picks the smallest DCT scale at least that wide: exactly `width`.
        pixels = simplejpeg.decode_jpeg(frame.jpeg, "RGB", min_width=width)
        jpeg = simplejpeg.encode_jpeg(pixels, self.quality, "RGB", "420")
        small = Frame(
            jpeg,
            pixels.shape[1],
            pixels.shape[0],
            frame.captured_at,
            frame.wall_time,
            frame.seq,
            frame.is_placeholder,
        )
        self.made += 1
        self._cache[key] = small
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)  # the least recently used size of an old frame
        return small

    def __len__(self) -> int:
        return len(self._cache)
