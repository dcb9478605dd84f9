"""The "camera offline" card: a JPEG that stands in for a camera's picture while it is gone.

Drawn by the capture thread when capture fails, at the camera's last known size, so clients
of the original protocol and /snapshot.jpg (which can only show a picture) see the reason.
Pure computation, callable from any thread.
"""

from __future__ import annotations

import time

import numpy as np

from pyimagestreamd import encoder, font
from pyimagestreamd.frame import Frame


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
        while len(line) > width:
            lines.append(line[:width])
            line = line[width:]
    if line:
        lines.append(line)
    return lines


def offline_card(width: int, height: int, reason: str, quality: int = 80) -> Frame:
    """A dark picture saying 'CAMERA OFFLINE', the reason and the time."""
    now, wall = time.monotonic(), time.time()
    y = np.full((height, width), 40, dtype=np.uint8)
    u = np.full((height // 2, width // 2), 128, dtype=np.uint8)
    v = np.full((height // 2, width // 2), 150, dtype=np.uint8)  # a hint of red
    title = "CAMERA OFFLINE"
    scale = max(1, width // (len(title) * 6 * 2))
    tw, th = font.text_size(title, scale)
    top = max(0, height // 3 - th)
    font.draw_text(y, title, (width - tw) // 2, top, scale=scale, value=235)
    small = max(1, scale // 3)
    columns = max(8, width // (6 * small) - 4)
    lines = [*_wrap(reason, columns), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))]
    row = top + th + 2 * font.GLYPH_H * small
    for line in lines:
        lw, lh = font.text_size(line, small)
        font.draw_text(y, line, max(0, (width - lw) // 2), row, scale=small, value=200)
        row += lh + 3 * small
    jpeg = encoder.encode_planes((y, u, v), quality)
    return Frame(jpeg, width, height, now, wall, is_placeholder=True)
