"""A source that the event loop reads (`loop_fd`): the runner, the hub and the capture thread.

The fake camera is a pipe: each byte written is a frame ready to read ("?" a bad one, "!"
the camera failing); the loop watches the pipe's read end as it would a V4L2 device.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import timeout

from pyimagestreamd import camera
from pyimagestreamd.camera import CameraError, CameraState, CaptureSource, Clock
from pyimagestreamd.config import CameraConfig
from pyimagestreamd.controls import Applied
from pyimagestreamd.frame import Frame
from pyimagestreamd.runner import CameraRunner
from pyimagestreamd.v4l2 import reason_for


class PipeCamera(CaptureSource):
    """Frames from a pipe, read in the event loop; counts where and how it was read."""

    def __init__(self) -> None:
        super().__init__(CameraConfig(name="pipe", width=64, height=48, fps=10, stop_delay=0))
        self.r = self.w = -1
        self.opens = 0
        self.read_threads: set[int] = set()
        self.thread_reads = 0
        self.closed_while_watched = False
        self.watched: Callable[[int], bool] = lambda fd: False
        self.read_at = self.closed_at = 0.0  # on the source's clock
        self.control_threads: set[int] = set()

    def open(self) -> None:
        self.opens += 1
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)

    def loop_fd(self) -> int | None:
        return self.r

    def read(self, timeout: float) -> Frame | None:
        self.thread_reads += 1
        return None

    def read_ready(self) -> Frame | None:
        self.read_threads.add(threading.get_ident())
        self.read_at = self.clock.now()
        byte = os.read(self.r, 1)  # BlockingIOError when the pipe is empty
        if byte == b"!":
            raise CameraError("the pipe broke")
        if byte == b"?":
            return None
        now = time.monotonic()
        return Frame(b"\xff\xd8" + byte + b"\xff\xd9", 64, 48, now, time.time())

    def close(self) -> None:
        self.closed_at = self.clock.now()
        if self.r >= 0:
            self.closed_while_watched |= self.watched(self.r)
            os.close(self.r)
            os.close(self.w)
        self.r = self.w = -1

    def offline_card(self, reason: str) -> Frame:
        return Frame(b"card", 64, 48, time.monotonic(), time.time(), is_placeholder=True)

    def set_controls(self, values: dict[str, int]) -> Applied:
        self.control_threads.add(threading.get_ident())
        return Applied(dict(values), {})

    def feed(self, data: bytes) -> None:
        os.write(self.w, data)


def is_watched(loop: asyncio.AbstractEventLoop) -> Callable[[int], bool]:
    selector = loop._selector  # type: ignore[attr-defined]
    return lambda fd: selector.get_map().get(fd) is not None


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + timeout(5)
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


class Counted:
    """Counts the loop's call_soon_threadsafe calls (the capture thread's hand-overs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.calls = 0
        self.original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
            self.calls += 1
            return self.original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]


async def started(cam: PipeCamera, wait_watched: bool = True) -> CameraRunner:
    loop = asyncio.get_running_loop()
    cam.watched = is_watched(loop)
    runner = CameraRunner(cam, loop)
    task = asyncio.create_task(runner.run())
    runner.hub.add_viewer()
    if wait_watched:
        await until(lambda: cam.r >= 0 and cam.watched(cam.r), "the loop to watch the camera")
    runner.task = task  # type: ignore[attr-defined]
    return runner


async def stopped(runner: CameraRunner) -> None:
    runner.task.cancel()  # type: ignore[attr-defined]
    with pytest.raises(asyncio.CancelledError):
        await runner.task  # type: ignore[attr-defined]
    await runner.close()


async def test_frames_read_by_the_loop_reach_the_hub_without_a_hand_over() -> None:
    """Each frame is read in the loop's thread and published there: no call_soon_threadsafe."""
    cam = PipeCamera()
    runner = await started(cam)
    counted = Counted(asyncio.get_running_loop())
    cam.feed(b"a")
    await until(lambda: runner.hub.state is CameraState.LIVE, "live")
    before = counted.calls
    for byte in b"bcdefgh":
        cam.feed(bytes([byte]))
        await until(lambda b=byte: runner.hub.latest.jpeg[2] == b, "the frame")  # type: ignore[union-attr]
    assert counted.calls == before
    assert runner.hub.frames_published == 8
    assert cam.read_threads == {threading.get_ident()}
    assert cam.thread_reads == 0
    assert cam.read_in == "event loop"
    assert cam.counters["frames_captured"] == 8
    await stopped(runner)
    assert not cam.closed_while_watched


async def test_a_failing_read_takes_the_camera_offline_and_it_comes_back() -> None:
    """A CameraError in the loop's read: offline with its reason, the fd unwatched before it
    is closed, then a new open after the back-off and live again."""
    cam = PipeCamera()
    runner = await started(cam)
    cam.feed(b"a")
    await until(lambda: runner.hub.state is CameraState.LIVE, "live")
    cam.feed(b"!")
    await until(lambda: runner.hub.state is CameraState.OFFLINE, "offline")
    assert runner.hub.reason == "the pipe broke"
    assert runner.hub.latest is not None and runner.hub.latest.is_placeholder
    await until(lambda: cam.opens == 2 and cam.r >= 0 and cam.watched(cam.r), "a new open")
    cam.feed(b"b")
    await until(lambda: runner.hub.state is CameraState.LIVE, "live again")
    assert runner.hub.latest.jpeg == b"\xff\xd8b\xff\xd9"
    assert not cam.closed_while_watched
    await stopped(runner)


async def test_bad_frames_are_skipped_and_do_not_count_as_frames() -> None:
    """A frame read_ready drops is not published, and the camera stays live."""
    cam = PipeCamera()
    runner = await started(cam)
    cam.feed(b"a?b")
    await until(lambda: cam.counters["frames_captured"] == 2, "two frames")
    assert runner.hub.frames_published == 2
    assert runner.hub.state is CameraState.LIVE
    await stopped(runner)


class RecordingClock(Clock):
    """Real time; records whether each of the capture thread's waits was ended by its event."""

    def __init__(self) -> None:
        self.woken: list[bool] = []

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        woken = stop.wait(seconds)
        self.woken.append(woken)
        return woken


async def test_stop_wakes_the_thread_and_unwatches_before_closing() -> None:
    """Stopping a loop-read camera wakes its waiting thread at once (not at the next
    READ_TIMEOUT); the loop no longer watches the fd when it is closed."""
    cam = PipeCamera()
    clock = RecordingClock()
    cam.clock = clock
    runner = await started(cam)
    fd = cam.r
    await until(lambda: len(clock.woken) >= 1, "the thread to wait")
    await stopped(runner)
    assert clock.woken[-1] is True
    assert not cam.is_running
    assert not cam.watched(fd) and not cam.closed_while_watched


class VirtualClock(Clock):
    """Time that passes only when the capture thread waits."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.t += seconds
        time.sleep(0.001)  # let the loop run
        return stop.is_set()


async def test_no_frames_for_the_frame_timeout_takes_the_camera_offline() -> None:
    """A camera the loop watches that falls silent is offline after frame_timeout (5 s)."""
    cam = PipeCamera()
    clock = VirtualClock()
    cam.clock = clock
    runner = await started(cam)
    cam.feed(b"a")
    await until(lambda: runner.hub.state is CameraState.LIVE, "live")
    await until(lambda: runner.hub.state is CameraState.OFFLINE, "offline")
    assert runner.hub.reason.startswith("no frames for ")
    assert cam.frame_timeout == 5.0
    assert 5.0 < cam.closed_at - cam.read_at <= 5.0 + camera.READ_TIMEOUT
    await stopped(runner)


class SpuriousCamera(PipeCamera):
    """Its fd is always readable, but it never has a frame (a driver reporting an error)."""

    def open(self) -> None:
        super().open()
        self.feed(b"x")

    def read_ready(self) -> Frame | None:
        self.read_threads.add(threading.get_ident())
        raise BlockingIOError


async def test_an_fd_readable_without_frames_is_given_up_not_spun_on() -> None:
    """After MAX_EMPTY_WAKES wake-ups without a frame the camera is reopened."""
    cam = SpuriousCamera()
    runner = await started(cam, wait_watched=False)
    await until(lambda: runner.hub.state is CameraState.OFFLINE, "offline")
    assert runner.hub.reason == "the device signals frames but has none to give"
    await stopped(runner)


async def test_a_control_change_wakes_the_waiting_thread_which_applies_it() -> None:
    """While the loop reads, a change from the settings API is applied by the capture thread
    at once: its wait ends on the request, not at the next READ_TIMEOUT."""
    cam = PipeCamera()
    clock = RecordingClock()
    cam.clock = clock
    runner = await started(cam)
    await until(lambda: len(clock.woken) >= 1, "the thread to wait")
    waits = len(clock.woken)
    result = await asyncio.wrap_future(cam.controls.request({"brightness": 3}))
    assert result == Applied({"brightness": 3}, {})
    assert clock.woken[waits] is True
    assert len(cam.control_threads) == 1
    assert threading.get_ident() not in cam.control_threads
    await stopped(runner)
    assert cam.controls.wake is None


class RearmCamera(PipeCamera):
    """A camera whose driver's poll hooks epoll on only while no frame is ready
    (v4l2loopback up to 0.13.2): its fd is registered anew until a registration found
    nothing ready. `ready_at_open` are the frames waiting when it is first registered."""

    def __init__(self, ready_at_open: bytes) -> None:
        super().__init__()
        self.ready_at_open = ready_at_open

    def loop_rearm(self) -> bool:
        return True

    def open(self) -> None:
        super().open()
        self.feed(self.ready_at_open)


def count_registrations(loop: asyncio.AbstractEventLoop) -> list[int]:
    """The fds the loop's add_reader is called with, from now on."""
    added: list[int] = []
    original = loop.add_reader

    def counting(fd: int, callback: Any, *args: Any) -> None:
        added.append(fd)
        original(fd, callback, *args)

    loop.add_reader = counting  # type: ignore[method-assign]
    return added


async def read_one_by_one(runner: CameraRunner, cam: PipeCamera, frames: bytes) -> None:
    for byte in frames:
        cam.feed(bytes([byte]))
        await until(
            lambda b=byte: (
                runner.hub.latest is not None and runner.hub.latest.jpeg[2:3] == bytes([b])
            ),
            "the frame",
        )


async def test_a_rearm_camera_is_registered_anew_until_a_registration_finds_no_frame() -> None:
    """loop_rearm, two frames waiting at the first registration: registered anew after
    the first read (the second frame still waiting) and after the second (nothing left:
    hooked on), then never again (a pipe wakes epoll either way: this checks the
    registrations, the VM's v4l2loopback the rest)."""
    added = count_registrations(asyncio.get_running_loop())
    cam = RearmCamera(ready_at_open=b"ab")
    runner = await started(cam)
    await until(lambda: runner.hub.frames_published == 2, "the two waiting frames")
    await read_one_by_one(runner, cam, b"cdefg")
    assert runner.hub.frames_published == 7
    assert added.count(cam.r) == 3  # the first registration, then one after each of a, b
    assert cam.watched(cam.r)
    await stopped(runner)
    assert not cam.closed_while_watched


async def test_a_rearm_camera_registered_with_nothing_ready_is_not_registered_again() -> None:
    """loop_rearm, nothing ready at the first registration: it is hooked on at once, so
    the frames are read without a registration each."""
    added = count_registrations(asyncio.get_running_loop())
    cam = RearmCamera(ready_at_open=b"")
    runner = await started(cam)
    await read_one_by_one(runner, cam, b"abcde")
    assert runner.hub.frames_published == 5
    assert added.count(cam.r) == 1
    assert cam.watched(cam.r)
    await stopped(runner)
    assert not cam.closed_while_watched


class UnpluggedCamera(PipeCamera):
    """A V4L2-like device that can be unplugged: its fd then signals for good (a pipe whose
    writer closed hangs up, as a gone device's fd reports EPOLLERR), each read fails with
    ENODEV and each open with ENOENT, with the V4L2 source's reasons, until it is back."""

    path = "/dev/video9"

    def __init__(self) -> None:
        super().__init__()
        self.gone = False
        self.reads_when_gone = 0

    def open(self) -> None:
        if self.gone:
            raise CameraError(reason_for(OSError(errno.ENOENT, "gone"), self.path))
        super().open()

    def read_ready(self) -> Frame | None:
        if self.gone:
            self.reads_when_gone += 1
            raise CameraError(reason_for(OSError(errno.ENODEV, "gone"), self.path))
        return super().read_ready()

    def unplug(self) -> None:
        self.gone = True
        os.close(self.w)
        self.w = os.open(os.devnull, os.O_WRONLY)  # for close(): the pipe stays hung up


async def test_a_device_unplugged_under_the_loop_is_logged_once_and_comes_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Unplugged while the loop reads it: one read fails (the loop stops watching the fd that
    signals for good, never spins on it), offline "disconnected", then one more line for
    "no such device" however many opens fail; re-plugged: live again on the next open."""
    monkeypatch.setattr(camera, "RETRY_DELAYS", (0.01,))
    cam = UnpluggedCamera()
    with caplog.at_level(logging.WARNING, logger="pyimagestreamd.camera"):
        runner = await started(cam)
        cam.feed(b"a")
        await until(lambda: runner.hub.state is CameraState.LIVE, "live")
        cam.unplug()
        await until(lambda: cam.counters["errors"] >= 6, "six failed attempts")
        assert cam.reads_when_gone == 1
        assert not cam.closed_while_watched
        assert runner.hub.state is CameraState.OFFLINE
        assert runner.hub.reason == "/dev/video9: no such device (not plugged in?)"
        opens = cam.opens
        cam.gone = False
        await until(lambda: cam.opens > opens and cam.r >= 0 and cam.watched(cam.r), "an open")
        cam.feed(b"b")
        await until(lambda: runner.hub.state is CameraState.LIVE, "live again")
        await stopped(runner)
    offline = [r.getMessage() for r in caplog.records if "offline" in r.getMessage()]
    assert offline == [
        "camera pipe offline: /dev/video9: device disconnected",
        "camera pipe offline: /dev/video9: no such device (not plugged in?)",
    ]
