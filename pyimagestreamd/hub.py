"""Hub: one camera's latest-frame slot, its waiting clients, and its viewer count.

The middle of the data flow. The capture thread's frames arrive (through the runner, on the
event loop) in `publish()`, which replaces the slot and wakes every waiter; each client
handler then takes the newest frame it has not seen (`wait_frame_after`), or, for a push
stream whose connection can take it, is handed it within `publish()` (`add_pusher`: the
write then happens in the same turn of the event loop as the capture, with no task to
wake). There is no per-client queue, so a slow client only ever skips frames: it never
builds a backlog and never slows anyone else. The hub also decides when the camera is
wanted: from the first viewer until `stop_delay` seconds after the last one left (a viewer
returning in between cancels the stop); `on_demand` tells the runner when that changes.

No I/O, no threads: event-loop thread only. Unit-tested without sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from pyimagestreamd.camera import CameraState
from pyimagestreamd.frame import Frame

log = logging.getLogger(__name__)


class Hub:
    """The frame slot and on-demand logic of one camera."""

    def __init__(
        self, name: str, stop_delay: float, on_demand: Callable[[bool], None] | None = None
    ) -> None:
        self.name = name
        self.stop_delay = stop_delay
        self.on_demand = on_demand
        self.latest: Frame | None = None
        self.state = CameraState.SLEEPING
        self.reason = ""
        # Bumped on every state change, so a handler can tell it has a change to report.
        self.state_version = 0
        self.viewers = 0
        self.wants_capture = False
        self.frames_published = 0
        self.frames_sent = 0
        self._seq = 0
        self._changed: asyncio.Future[None] | None = None
        # Handlers waiting with an `until` (every client's per-frame wait), in arrival order.
        self._waiters: dict[asyncio.Future[None], None] = {}
        self._stop_handle: asyncio.TimerHandle | None = None
        # For the measured frame rate: capture times of the last frames.
        self._recent: list[float] = []
        # Per kind of stream, the last frame as that stream's clients get it (one entry
        # per kind: the serialized frame shared by all of them, dropped at the next one).
        self._serialized: dict[str, tuple[Frame, bytes]] = {}
        # Called with each published frame, in the order added (add_pusher).
        self._pushers: dict[Callable[[Frame], None], None] = {}
        # Called at each state change, in the order added (add_state_watcher).
        self._state_watchers: dict[Callable[[], None], None] = {}

    # -- producer side (runner) ----------------------------------------------------------

    def publish(self, frame: Frame) -> Frame:
        """Put `frame` in the slot, numbered, and wake every waiting client."""
        self._seq += 1
        frame = frame.with_seq(self._seq)
        self.latest = frame
        self.frames_published += 1
        if not frame.is_placeholder:
            self._recent.append(frame.captured_at)
            del self._recent[:-31]
        if self._pushers:
            # A copy: a pusher that cannot take the frame removes itself.
            for push in tuple(self._pushers):
                push(frame)
        self._wake()
        return frame

    def set_state(self, state: CameraState, reason: str = "") -> None:
        """Record a camera state change and wake every waiter so handlers can report it."""
        if state == self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        self.state_version += 1
        if state is not CameraState.LIVE:
            self._recent.clear()
        if self._state_watchers:
            for watch in tuple(self._state_watchers):
                watch()
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def measured_fps(self) -> float:
        recent = self._recent
        if len(recent) < 2 or time.monotonic() - recent[-1] > 2.0:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0]) if recent[-1] > recent[0] else 0.0

    # -- consumer side (client handlers) -------------------------------------------------

    def serialized(self, frame: Frame, kind: str, make: Callable[[Frame], bytes]) -> bytes:
        """`make(frame)`, made once per frame and `kind` and shared by every client.

        For streams whose bytes are the same for every client (an MJPEG part, an original
        protocol message): each client's send is then a reference, not a copy.
        """
        cached = self._serialized.get(kind)
        if cached is not None and cached[0] is frame:
            return cached[1]
        data = make(frame)
        self._serialized[kind] = (frame, data)
        return data

    def change_future(self) -> asyncio.Future[None]:
        """A future done at the next publish or state change; shared: never cancel it.

        Taken synchronously, right after checking the hub, so that no change can slip in
        between the check and the wait.
        """
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    async def wait_change(self, until: asyncio.Future[None] | None = None) -> bool:
        """Wait for the next publish or state change: the hub's one wait primitive.

        Returns True on a change, False if `until` (e.g. "the client's connection closed")
        completes first. No task is created and nothing shared is cancelled: cheap enough
        for every frame of every client.
        """
        if until is None:
            changed = self.change_future()
            # One future is shared by all waiters: shield it, or one cancelled waiter (a
            # client that disconnects) would cancel everybody's wait.
            await asyncio.shield(changed)
            return True
        if until.done():
            return False
        # A private future that the next change completes directly (_wake), and `until`
        # through a callback: from a publish to the handler is then one turn of the event
        # loop, not two (a callback on a shared future first), and there is none of
        # asyncio.wait()'s per-call set, checks and loop look-ups.
        woken = until.get_loop().create_future()

        def wake(_: asyncio.Future[None]) -> None:
            if not woken.done():
                woken.set_result(None)

        self._waiters[woken] = None
        until.add_done_callback(wake)
        try:
            await woken
        finally:
            self._waiters.pop(woken, None)
            until.remove_done_callback(wake)
        return not until.done()

    async def wait_frame_after(
        self, seq: int, until: asyncio.Future[None] | None = None
    ) -> Frame | None:
        """The newest frame numbered above `seq`, waiting for one; None if `until` came first."""
        while self.latest is None or self.latest.seq <= seq:
            if not await self.wait_change(until):
                return None
        return self.latest

    def add_pusher(self, push: Callable[[Frame], None]) -> None:
        """Have `publish()` call `push(frame)` with every frame from now on, until
        `remove_pusher(push)` (which `push` may call itself). `push` runs inside the
        producer's call and must not raise: it hands any trouble to its own task."""
        self._pushers[push] = None

    def remove_pusher(self, push: Callable[[Frame], None]) -> None:
        """Stop calling `push`; nothing happens if it is not added."""
        self._pushers.pop(push, None)

    def add_state_watcher(self, watch: Callable[[], None]) -> None:
        """Have `set_state()` call `watch()` at every state change from now on, until
        `remove_state_watcher(watch)` (which `watch` may call itself): for a client served
        by its pusher, whose task waits for no change. Must not raise."""
        self._state_watchers[watch] = None

    def remove_state_watcher(self, watch: Callable[[], None]) -> None:
        """Stop calling `watch`; nothing happens if it is not added."""
        self._state_watchers.pop(watch, None)

    def add_viewer(self) -> None:
        """A client starts watching: cancel a pending stop, start the camera if needed."""
        self.viewers += 1
        if self._stop_handle is not None:
            self._stop_handle.cancel()
            self._stop_handle = None
        self._set_wanted(True)

    def remove_viewer(self) -> None:
        """A client stops watching: the last one schedules the camera stop."""
        if self.viewers <= 0:
            raise RuntimeError(f"hub {self.name}: remove_viewer without a viewer")
        self.viewers -= 1
        if self.viewers == 0 and self.wants_capture:
            loop = asyncio.get_running_loop()
            self._stop_handle = loop.call_later(self.stop_delay, self._stop_now)

    def _stop_now(self) -> None:
        self._stop_handle = None
        if self.viewers == 0:
            self._set_wanted(False)

    def _set_wanted(self, wanted: bool) -> None:
        if wanted == self.wants_capture:
            return
        self.wants_capture = wanted
        log.debug("camera %s %s", self.name, "wanted" if wanted else "no longer wanted")
        if self.on_demand is not None:
            self.on_demand(wanted)

    def close(self) -> None:
        """Cancel the pending stop timer (daemon shutdown)."""
        if self._stop_handle is not None:
            self._stop_handle.cancel()
            self._stop_handle = None
