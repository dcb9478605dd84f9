"""Server statistics: connections, refusals and aborts by reason, frames and bytes sent.

Fed by the connection layer (httpd.py, httploop.py, server.py) and by `frame_sent`, the
one place that counts a frame leaving the server (delivery.py calls it); read by
/api/state, /metrics and the systemd STATUS line. Plain counters, no I/O; event-loop thread only.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import time
from typing import Any

from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub

# Reasons a connection is refused before it is served, or aborted while it is served. The
# set is closed so a hostile client cannot grow the tables with invented reasons.
REFUSED = ("host", "origin", "per_address", "full", "oversize", "protocol_error", "timeout",
           "method", "accept_error", "auth")  # fmt: skip
ABORTED = ("stalled", "output_overflow", "protocol_error", "ping_timeout", "close_timeout",
           "internal_error", "shutdown")  # fmt: skip
# Frame age at send, in seconds: the buckets of the /metrics histogram.
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KINDS = ("websocket", "mjpeg", "snapshot")


class CameraSent:
    """What one camera delivered, by client kind."""

    def __init__(self) -> None:
        self.frames = dict.fromkeys(KINDS, 0)
        self.bytes = dict.fromkeys(KINDS, 0)
        # Ages per bucket (at most its bound, above the one before; above the last bound
        # last) and their sum: one count per frame sent, made cumulative when read.
        self.age_bucket_counts = [0] * (len(AGE_BUCKETS) + 1)
        self.age_sum = 0.0

    def age_counts(self) -> list[int]:
        """The histogram's cumulative counts: ages at most each bound, then all (+Inf)."""
        return list(itertools.accumulate(self.age_bucket_counts))


class ServerStats:
    """Counters for the whole server."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.connections = 0
        self.http_requests = 0
        self.refusals = dict.fromkeys(REFUSED, 0)
        self.aborts = dict.fromkeys(ABORTED, 0)
        self.cameras: dict[str, CameraSent] = {}
        # Accept times of the last minute, for "connections in the last minute" (bounded:
        # at most one entry per accepted connection of the last 60 s, trimmed on each add).
        self._recent: collections.deque[float] = collections.deque()

    def connected(self) -> None:
        self.connections += 1
        now = time.monotonic()
        self._recent.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and now - self._recent[0] > 60.0:
            self._recent.popleft()
        while len(self._recent) > 100_000:
            self._recent.popleft()

    @property
    def connections_last_minute(self) -> int:
        self._trim(time.monotonic())
        return len(self._recent)

    def refused(self, reason: str) -> None:
        self.refusals[reason if reason in self.refusals else "protocol_error"] += 1

    def aborted(self, reason: str) -> None:
        self.aborts[reason if reason in self.aborts else "internal_error"] += 1

    def frame_sent(self, hub: Hub, frame: Frame, nbytes: int, kind: str) -> None:
        """Count one frame sent to one client: the only place frames and bytes are counted."""
        hub.frames_sent += 1
        cam = self.cameras.get(hub.name)
        if cam is None:
            cam = self.cameras[hub.name] = CameraSent()
        cam.frames[kind] += 1
        cam.bytes[kind] += nbytes
        age = time.monotonic() - frame.captured_at
        if not age > 0.0:  # max(0.0, age), without its keyword parsing on every frame sent
            age = 0.0
        cam.age_sum += age
        # The first bound at or above the age (len(AGE_BUCKETS): above them all).
        cam.age_bucket_counts[bisect.bisect_left(AGE_BUCKETS, age)] += 1

    def summary(self) -> dict[str, Any]:
        """The counters as /api/state shows them."""
        return {
            "connections": self.connections,
            "connections_last_minute": self.connections_last_minute,
            "http_requests": self.http_requests,
            "rejected": sum(self.refusals.values()),
            "refused": dict(self.refusals),
            "aborted": dict(self.aborts),
        }

    def status_text(self) -> str:
        """A short text for systemd's STATUS line: recent connections, refusals, aborts."""
        refused = sum(self.refusals.values())
        aborted = sum(self.aborts.values())
        text = f"{self.connections_last_minute} connections/min"
        if refused:
            text += f", {refused} refused"
        if aborted:
            text += f", {aborted} aborted"
        return text
