"""The runner's sink: output from a capture thread is handed to the loop, the loop's own is not.

A fake source keeps the sink its capture run got instead of starting a thread, so the test
calls the sink from the thread it chooses and sees where the hub was fed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from conftest import timeout

from pyimagestreamd.camera import CameraState, CaptureSource, FrameSink
from pyimagestreamd.config import CameraConfig
from pyimagestreamd.frame import Frame
from pyimagestreamd.runner import CameraRunner


class HeldSink(CaptureSource):
    """A source that keeps its sink and runs no thread."""

    def __init__(self) -> None:
        super().__init__(CameraConfig(name="held", width=64, height=48, fps=10, stop_delay=0))
        self.sink: FrameSink | None = None

    @property
    def is_running(self) -> bool:
        return self.sink is not None

    def ensure_started(self, sink: FrameSink) -> None:
        self.sink = sink

    def ensure_stopped(self, timeout: float = 5.0) -> bool:
        self.sink = None
        return True

    def open(self) -> None:
        raise AssertionError("no thread runs")

    def read(self, timeout: float) -> Frame | None:
        raise AssertionError("no thread runs")

    def close(self) -> None:
        pass


def frame() -> Frame:
    return Frame(b"\xff\xd8x\xff\xd9", 64, 48, time.monotonic(), time.time())


async def running_sink() -> tuple[CameraRunner, FrameSink, list[tuple[str, int]], Any]:
    """A runner whose hub has a viewer (so capture started), and where the hub was fed from."""
    source = HeldSink()
    runner = CameraRunner(source, asyncio.get_running_loop())
    task = asyncio.create_task(runner.run())
    runner.hub.add_viewer()
    async with asyncio.timeout(timeout(5)):
        while source.sink is None:
            await asyncio.sleep(0.01)
    fed: list[tuple[str, int]] = []
    publish, set_state = runner.hub.publish, runner.hub.set_state

    def publishing(f: Frame) -> Any:
        fed.append(("frame", threading.get_ident()))
        return publish(f)

    def setting(state: CameraState, reason: str) -> Any:
        fed.append(("state", threading.get_ident()))
        return set_state(state, reason)

    runner.hub.publish = publishing  # type: ignore[method-assign]
    runner.hub.set_state = setting  # type: ignore[method-assign]
    return runner, source.sink, fed, task


async def test_a_capture_threads_frames_and_states_reach_the_hub_in_the_loops_thread() -> None:
    """on_frame and on_state called from another thread feed the hub in the loop's thread."""
    runner, sink, fed, task = await running_sink()
    worker = threading.Thread(
        target=lambda: (sink.on_state(CameraState.LIVE, ""), sink.on_frame(frame()))
    )
    worker.start()
    worker.join()
    async with asyncio.timeout(timeout(5)):
        while len(fed) < 2:
            await asyncio.sleep(0.01)
    assert fed == [("state", threading.get_ident()), ("frame", threading.get_ident())]
    assert runner.hub.state is CameraState.LIVE and runner.hub.frames_published == 1
    task.cancel()
    await runner.close()


async def test_the_loops_own_frames_and_states_reach_the_hub_at_once() -> None:
    """Called in the loop's thread (a source the loop reads), the sink feeds the hub before
    it returns, with no hand-over to a later turn."""
    runner, sink, fed, task = await running_sink()
    sink.on_state(CameraState.LIVE, "")
    assert fed == [("state", threading.get_ident())]
    sink.on_frame(frame())
    assert fed == [("state", threading.get_ident()), ("frame", threading.get_ident())]
    assert runner.hub.frames_published == 1
    task.cancel()
    await runner.close()
