"""Frame: one encoded picture as it travels from a capture thread through the hub to clients.

Frames are immutable and shared by every client that receives them: the JPEG bytes are
never copied after capture.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """A JPEG picture with the facts a client shows about it."""

    jpeg: bytes
    width: int
    height: int
    # time.monotonic() when the picture was taken: ages are computed from it.
    captured_at: float
    # time.time() at the same moment, for clients (wall clocks differ between machines).
    wall_time: float
    # Assigned by the hub on publish; grows by one per published frame of a camera.
    seq: int = 0
    # A generated "camera offline" card rather than a picture from the camera.
    is_placeholder: bool = False

    def with_seq(self, seq: int) -> Frame:
        """Return the same frame numbered `seq` (the JPEG bytes are shared, not copied)."""
        # Spelled out: dataclasses.replace() costs several times more, on every frame.
        return Frame(
            self.jpeg,
            self.width,
            self.height,
            self.captured_at,
            self.wall_time,
            seq,
            self.is_placeholder,
        )
