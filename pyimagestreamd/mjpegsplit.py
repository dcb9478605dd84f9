"""MJPEG byte streams -> whole JPEGs: the framing step of the pipeline and network sources.

A producer's stdout (`rpicam-vid ... -o -`, `ffmpeg ... -f mjpeg -`) is JPEGs back to back;
an HTTP camera's body is multipart/x-mixed-replace, JPEGs with part headers and boundaries
between them. Both are cut the same way: find a start-of-image marker, walk the header
segments (mjpeg.inspect), then look for the end-of-image marker after the scan header —
entropy-coded data cannot contain FF D9 — so part headers and any bytes between pictures
are skipped and counted, whatever their boundary string.

Bounded: a frame may grow to `max_frame` bytes; a producer that writes a start marker and
then never an end (or garbage without any marker) never holds more than that. I/O-free, no
threads: a splitter belongs to the one capture thread that feeds it.
"""

from __future__ import annotations

from pyimagestreamd import mjpeg

# Start of image followed by the first marker's FF: a lone FF D8 is common in scan data.
_START = b"\xff\xd8\xff"


def max_frame_bytes(width: int, height: int) -> int:
    """The largest JPEG accepted: 3 bytes a configured pixel (raw RGB), at least 4 MiB."""
    return max(4 << 20, 3 * width * height)


class StreamSplitter:
    """Feeds bytes in, gets whole JPEGs out (each still to be checked by MjpegChecker)."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        # Where the entropy-coded data of the buffered frame starts (0: header incomplete),
        # and how far the end-marker search got, so a frame arriving in many chunks is
        # searched once, not once per chunk.
        self._scan_at = 0
        self._searched = 0
        self.skipped_bytes = 0
        self.oversize = 0
        self.garbage = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Append `data`; return the JPEGs completed by it, oldest first."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        while buf:
            if not self._scan_at:
                start = buf.find(_START)
                if start < 0:
                    # Keep a possible split start marker: at most two bytes.
                    drop = max(0, len(buf) - 2)
                    self._skip(drop)
                    break
                if start:
                    self._skip(start)
                if len(buf) < 4:
                    break  # inspect needs the first marker's length
                found = mjpeg.inspect(bytes(buf))
                if found.verdict is mjpeg.Verdict.GARBAGE:
                    self.garbage += 1
                    self._skip(2)
                    continue
                if found.verdict is not mjpeg.Verdict.TRUNCATED:
                    frames.append(self._take(found.end_at))
                    continue
                if not found.sos_at:  # the header itself is not all here yet
                    if len(buf) > self.max_frame:
                        self._overflow()
                        continue
                    break
                sos = found.sos_at
                self._scan_at = sos + 2 + (buf[sos + 2] << 8 | buf[sos + 3])
                self._searched = self._scan_at
            end = buf.find(mjpeg.EOI, max(self._scan_at, self._searched - 1))
            if end >= 0:
                frames.append(self._take(end + 2))
                continue
            self._searched = len(buf)
            if len(buf) > self.max_frame:
                self._overflow()
                continue
            break
        return frames

    def _take(self, end: int) -> bytes:
        frame = bytes(self._buf[:end])
        del self._buf[:end]
        self._scan_at = self._searched = 0
        return frame

    def _skip(self, count: int) -> None:
        self.skipped_bytes += count
        del self._buf[:count]
        self._scan_at = self._searched = 0

    def _overflow(self) -> None:
        # Larger than any picture of this camera can be: drop it and look for the next.
        self.oversize += 1
        self._skip(2)

    def counters(self) -> dict[str, int]:
        return {
            "buffered": self.buffered,
            "skipped_bytes": self.skipped_bytes,
            "oversize": self.oversize,
            "garbage_starts": self.garbage,
        }
