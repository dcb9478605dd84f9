"""Runner: the bridge between one camera's capture thread and its hub on the event loop.

The capture thread (camera.py) calls the runner's sink from its own thread; the sink
forwards each frame and state change with `loop.call_soon_threadsafe` — the only way a
capture thread touches asyncio. A source that the event loop reads itself (camera.py's
loopread.py) has its fd watched with `add_reader` through
the sink, and its frames, delivered in the loop's thread, go to the hub directly. In the
other direction, the hub says when the camera is
wanted (first viewer, stop delay expired) and the runner starts or stops the thread,
one change at a time, blocking calls off the event loop. `run()` is a core task of the
daemon (daemon.py starts, watches and cancels it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
from collections.abc import Callable

from pyimagestreamd.camera import CameraState, CaptureSource
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub

log = logging.getLogger(__name__)

# How long a capture thread waits for the loop to stop watching its device before it
# closes the fd anyway (the loop is stuck, and the watchdog will act on that).
UNWATCH_TIMEOUT = 5.0


class _HookCheck:
    """Whether the loop's registration of a `loop_rearm` fd is hooked onto the driver.

    epoll_ctl ADD polls the driver with epoll's wait-queue hook; that driver hooks it on
    only if no frame is ready then, and the hook then lasts until the fd is unregistered.
    So the fd is registered anew (DEL, ADD) after a read until one ADD is known to have
    found nothing ready: nothing is ready right after it (`check`). Only a read takes a
    frame away, so "not ready" after the ADD means "not ready" at the ADD. Ready after it
    (a frame was waiting, or came in between) says nothing: register anew after the next
    read, which then comes at once (the frame is ready). Usually one or two
    re-registrations per capture run instead of one per frame.
    """

    def __init__(self, fd: int) -> None:
        self.hooked = False
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def check(self) -> None:
        """Call right after the ADD (event-loop thread, before anything reads the fd)."""
        self.hooked = not self._poll.poll(0)


class _Sink:
    """Receives one capture run's output; hands it to the loop (created on the loop)."""

    def __init__(self, runner: CameraRunner, generation: int) -> None:
        self.runner = runner
        self.generation = generation
        self.loop = runner.loop
        self._loop_thread = threading.get_ident()

    def on_frame(self, frame: Frame) -> None:
        self._deliver(self.runner.deliver_frame, self.generation, frame)

    def on_state(self, state: CameraState, reason: str) -> None:
        self._deliver(self.runner.deliver_state, self.generation, state, reason)

    def _deliver(self, callback: Callable[..., object], *args: object) -> None:
        if threading.get_ident() == self._loop_thread:  # read by the loop: no hand-over
            callback(*args)
        else:
            self._post(callback, *args)

    def watch(self, fd: int, on_readable: Callable[[], bool], rearm: bool = False) -> None:
        loop = self.loop
        hook = _HookCheck(fd) if rearm else None

        def register() -> None:
            loop.add_reader(fd, readable)
            if hook is not None:
                hook.check()

        def readable() -> None:
            if not on_readable():
                loop.remove_reader(fd)
            elif hook is not None and not hook.hooked:
                loop.remove_reader(fd)
                register()

        self._post(register)

    def unwatch(self, fd: int) -> None:
        removed = threading.Event()

        def remove() -> None:
            self.loop.remove_reader(fd)
            removed.set()

        try:
            self.loop.call_soon_threadsafe(remove)
        except RuntimeError:
            return  # the loop is closed: it calls nothing any more
        if not removed.wait(UNWATCH_TIMEOUT):
            log.error(
                "camera %s: the event loop did not stop watching the device", self.runner.name
            )

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        # The loop may already be closed while a capture thread winds down at shutdown.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, *args)


class CameraRunner:
    """Owns one camera's source and hub; keeps capture running exactly while it is wanted."""

    def __init__(self, source: CaptureSource, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        cfg = source.config
        self.hub = Hub(cfg.name, cfg.stop_delay, on_demand=self._on_demand)
        # The control values asked for from the page (controls.py): the runner's, handed to
        # every source it runs, so a reload that replaces the source keeps them.
        self.controls = source.controls
        self._wake = asyncio.Event()
        # Every capture run gets a new generation; output of an older run that is still
        # queued on the loop when the camera was stopped or replaced is dropped.
        self._generation = 0
        # Held while the source is started, stopped or swapped: a reload that replaces the
        # source while a start or stop is under way would otherwise leave a capture thread
        # of the old source running with nobody to stop it.
        self._changing = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.source.config.name

    def _on_demand(self, wanted: bool) -> None:
        self._wake.set()

    def deliver_frame(self, generation: int, frame: Frame) -> None:
        if generation == self._generation:
            self.hub.publish(frame)

    def deliver_state(self, generation: int, state: CameraState, reason: str) -> None:
        if generation == self._generation:
            self.hub.set_state(state, reason)

    async def run(self) -> None:
        """Keep capture running exactly while the hub wants it (until cancelled)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._changing:
                await self._reconcile()

    async def _reconcile(self) -> None:
        if self.hub.wants_capture and not self.source.is_running:
            self._generation += 1
            self.hub.set_state(CameraState.STARTING, "")
            log.info("camera %s starting (%d viewers)", self.name, self.hub.viewers)
            self.source.ensure_started(_Sink(self, self._generation))
        elif not self.hub.wants_capture and self.source.is_running:
            await self._stop_source()
            log.info("camera %s sleeping: no viewers for %g s", self.name, self.hub.stop_delay)

    async def _stop_source(self) -> None:
        await asyncio.to_thread(self.source.ensure_stopped)
        self._generation += 1
        self.hub.set_state(CameraState.SLEEPING, "")

    async def replace_source(self, source: CaptureSource) -> None:
        """Swap in a source built from a new configuration (reload); viewers stay."""
        async with self._changing:
            await self._replace_source(source)

    async def _replace_source(self, source: CaptureSource) -> None:
        was_running = self.source.is_running
        if was_running:
            await asyncio.to_thread(self.source.ensure_stopped)
            self._generation += 1
        source.controls = self.controls
        self.source = source
        self.hub.stop_delay = source.config.stop_delay
        if was_running or self.hub.wants_capture:
            self.hub.set_state(CameraState.SLEEPING, "")
            self._wake.set()

    async def close(self) -> None:
        """Stop capture (daemon shutdown, camera removed); `run()` is cancelled first."""
        self.hub.close()
        async with self._changing:
            if self.source.is_running:
                await asyncio.to_thread(self.source.ensure_stopped)
            self._generation += 1
