"""Runner: the bridge between one camera's capture thread and its hub on the event loop.

The capture thread (camera.py) calls the runner's sink from its own thread; the sink
forwards each frame and state change with `loop.call_soon_threadsafe` — the only way a
capture thread touches asyncio. In the other direction, the hub says when the camera is
wanted (first viewer, stop delay expired) and the runner starts or stops the thread,
one change at a time, blocking calls off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyimagestreamd.camera import CameraState, CaptureSource
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub

log = logging.getLogger(__name__)


class _Sink:
    """Receives one capture run's output in the capture thread; hands it to the loop."""

    def __init__(self, runner: CameraRunner, generation: int) -> None:
        self.runner = runner
        self.generation = generation
        self.loop = runner.loop

    def on_frame(self, frame: Frame) -> None:
        self._post(self.runner.deliver_frame, frame)

    def on_state(self, state: CameraState, reason: str) -> None:
        self._post(self.runner.deliver_state, state, reason)

    def _post(self, callback: object, *args: object) -> None:
        # The loop may already be closed while a capture thread winds down at shutdown.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, self.generation, *args)  # type: ignore[arg-type]


class CameraRunner:
    """Owns one camera's source and hub; keeps capture running exactly while it is wanted."""

    def __init__(self, source: CaptureSource, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        cfg = source.config
        self.hub = Hub(cfg.name, cfg.stop_delay, on_demand=self._on_demand)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Every capture run gets a new generation; output of an older run that is still
        # queued on the loop when the camera was stopped or replaced is dropped.
        self._generation = 0

    @property
    def name(self) -> str:
        return self.source.config.name

    def start(self) -> None:
        """Start reconciling (call once, on the loop)."""
        self._task = asyncio.ensure_future(self._reconcile())
        self._task.add_done_callback(self._reconcile_ended)

    def _reconcile_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Never expected: without the runner a camera would stay on or off forever, so
            # make it loud; the daemon watches for this and exits for systemd to restart it.
            log.error("camera %s: runner failed", self.name, exc_info=task.exception())

    @property
    def failed(self) -> bool:
        task = self._task
        return (
            task is not None
            and task.done()
            and not task.cancelled()
            and task.exception() is not None
        )

    def _on_demand(self, wanted: bool) -> None:
        self._wake.set()

    def deliver_frame(self, generation: int, frame: Frame) -> None:
        if generation == self._generation:
            self.hub.publish(frame)

    def deliver_state(self, generation: int, state: CameraState, reason: str) -> None:
        if generation == self._generation:
            self.hub.set_state(state, reason)

    async def _reconcile(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
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
        was_running = self.source.is_running
        if was_running:
            await asyncio.to_thread(self.source.ensure_stopped)
            self._generation += 1
        self.source = source
        self.hub.stop_delay = source.config.stop_delay
        if was_running or self.hub.wants_capture:
            self.hub.set_state(CameraState.SLEEPING, "")
            self._wake.set()

    async def close(self) -> None:
        """Stop reconciling and stop capture (daemon shutdown)."""
        self.hub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.source.is_running:
            await asyncio.to_thread(self.source.ensure_stopped)
        self._generation += 1
