"""Hub: one camera's latest-frame slot, its waiting clients, and its viewer count.

The middle of the data flow. The capture thread's frames arrive (through the runner, on the
event loop) in `publish()`, which replaces the slot and wakes every waiter; each client
handler then takes the newest frame it has not seen (`wait_frame_after`), or, for a push
stream whose connection can take it, is handed it within `publish()` (`push_frames`: the
write then happens in the same turn of the event loop as the capture, with no task to
wake, until the push refuses a frame and the client's task takes over again). There is
no per-client queue, so a slow client only ever skips frames: it never builds a backlog
and never slows anyone else. The hub also decides when the camera is wanted: from the
first viewer until `stop_delay` seconds after the last one left (a viewer returning in
between cancels the stop); `on_demand` tells the runner when that changes.

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
        # Called with each published frame, in the order added (push_frames), each with the
        # future its task waits on; those also in _back_at_state go back at a state change.
        self._pushers: dict[Callable[[Frame], bool], asyncio.Future[None]] = {}
        self._back_at_state: dict[Callable[[Frame], bool], None] = {}

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
            # A copy: a push that refuses the frame is taken out as it returns.
            for push in tuple(self._pushers):
                try:
                    if push(frame):
                        continue
                except Exception as exc:  # a bug: its client's task raises it, the camera goes on
                    self._hand_back(push, exc)
                    continue
                self._hand_back(push)
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
        if self._back_at_state:
            for push in tuple(self._back_at_state):
                self._hand_back(push)
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

    async def push_frames(
        self, push: Callable[[Frame], bool], until: asyncio.Future[None], at_state_change: bool
    ) -> None:
        """Have `publish()` call `push(frame)` with each frame it publishes, inside the
        producer's call, until the client's task must take over again: then return.

        That is when `push` returns False (it did not take the frame: a closed gate, no
        credit, anything but the plain case), when `until` completes (e.g. the connection
        closing), or, with `at_state_change`, at the camera's next state change (a client
        that reports states). An exception in `push` (a bug) ends it too and is raised
        here, in the client's task: the camera and every other client go on.
        """
        if until.done():
            return
        if push in self._pushers:
            raise RuntimeError(f"hub {self.name}: {push!r} is pushed to already")
        handed_back = until.get_loop().create_future()
        self._pushers[push] = handed_back
        if at_state_change:
            self._back_at_state[push] = None

        def back(_: asyncio.Future[None]) -> None:
            self._hand_back(push)

        until.add_done_callback(back)
        try:
            await handed_back
        finally:
            until.remove_done_callback(back)
            self._hand_back(push)  # cancelled: no more pushes either

    def _hand_back(self, push: Callable[[Frame], bool], exc: Exception | None = None) -> None:
        # Taken out at once: its task runs only in a later turn, and a publish may come first.
        handed_back = self._pushers.pop(push, None)
        if handed_back is None:
            return
        self._back_at_state.pop(push, None)
        if handed_back.done():  # its task was cancelled while it waited
            return
        if exc is None:
            handed_back.set_result(None)
        else:
            handed_back.set_exception(exc)

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
