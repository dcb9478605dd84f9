"""Camera fault handling in the capture loop, with a scripted fake source and a virtual clock.

The fake source plays a script (open fails, frames come, the camera falls silent); the
virtual clock advances only when the loop reads or waits, so "offline after 5 s without
frames" and the back-off sequence are checked exactly, without real waiting.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pytest
from conftest import timeout

from pyimagestreamd.camera import (
    READ_TIMEOUT,
    RETRY_DELAYS,
    CameraError,
    CameraState,
    CaptureSource,
    Clock,
)
from pyimagestreamd.config import CameraConfig
from pyimagestreamd.frame import Frame


class VirtualClock(Clock):
    """Time that passes only when the capture loop reads or waits; records every wait."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> float:
        with self.lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.t += seconds

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.advance(seconds)
        return stop.is_set()


@dataclass
class Sink:
    """Records what the capture thread hands over, with the virtual time of each event."""

    clock: VirtualClock
    states: list[tuple[float, CameraState, str]] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    def on_state(self, state: CameraState, reason: str) -> None:
        self.states.append((self.clock.now(), state, reason))


# One step of a script: what open() does ("fail:reason" or "ok"), then how many frames
# read() returns before it falls silent (None until the loop gives up on it).
Step = tuple[str, int]


class ScriptedSource(CaptureSource):
    """A camera that plays a script; when it runs out, it blocks until the thread is stopped."""

    def __init__(self, script: list[Step]) -> None:
        super().__init__(CameraConfig(name="fake", width=64, height=48, fps=10))
        self.clock = VirtualClock()
        self.script = list(script)
        self.opened_at: list[float] = []
        self.read_timeouts: list[float] = []
        self.frames_left = 0
        self.finished = threading.Event()

    def open(self) -> None:
        self.opened_at.append(self.clock.now())
        if not self.script:
            self.finished.set()
            self._stop.wait()  # the end of the script: hold here until ensure_stopped()
            raise CameraError("stopped")
        action, self.frames_left = self.script.pop(0)
        if action.startswith("fail:"):
            raise CameraError(action.removeprefix("fail:"))

    def read(self, timeout: float) -> Frame | None:
        self.read_timeouts.append(timeout)
        if self.frames_left > 0:
            self.frames_left -= 1
            self.clock.advance(0.1)
            now = self.clock.now()
            return Frame(b"\xff\xd8\xff\xd9", 64, 48, now, now)
        self.clock.advance(timeout)  # a silent camera: the read waits its whole timeout
        return None

    def close(self) -> None:
        pass

    def offline_card(self, reason: str) -> Frame:
        return Frame(b"card", 64, 48, 0.0, 0.0, is_placeholder=True)


def play(script: list[Step]) -> tuple[ScriptedSource, Sink]:
    """Run the capture thread over the whole script and stop it."""
    source = ScriptedSource(script)
    assert isinstance(source.clock, VirtualClock)
    sink = Sink(source.clock)
    source.ensure_started(sink)
    try:
        assert source.finished.wait(timeout(10)), "the script did not finish"
    finally:
        assert source.ensure_stopped(timeout(10))
    return source, sink


def offline_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "offline:" in r.getMessage()]


def test_one_log_line_per_fault_not_per_retry(caplog: pytest.LogCaptureFixture) -> None:
    """Six failed opens with one reason log one line; a different reason logs one more."""
    caplog.set_level(logging.INFO)
    source, sink = play([("fail:gone", 0)] * 6 + [("fail:busy", 0)] * 3)
    assert offline_lines(caplog) == ["camera fake offline: gone", "camera fake offline: busy"]
    offline = [s for s in sink.states if s[1] is CameraState.OFFLINE]
    assert [r for _, _, r in offline] == ["gone"] * 6 + ["busy"] * 3  # every retry is reported
    assert source.counters["errors"] == 9


def test_back_off_follows_the_retry_delays_and_is_never_zero() -> None:
    """Retries are spaced 0.5, 1, 2, 3, 5, 5 ... s, and start short again after going live."""
    source, _ = play([("fail:gone", 0)] * 7 + [("ok", 3)] + [("fail:gone", 0)] * 2)
    gaps = [b - a for a, b in zip(source.opened_at, source.opened_at[1:], strict=False)]
    expected = [*RETRY_DELAYS, RETRY_DELAYS[-1], RETRY_DELAYS[-1]]
    assert gaps[:7] == pytest.approx(expected)
    assert min(RETRY_DELAYS) > 0 and all(gap > 0 for gap in gaps)
    # After the live stretch the back-off starts again from the beginning: the retries
    # after it wait 0.5 s (inside the gap that holds the stream), 1 s, 2 s, not 5 s.
    assert gaps[-2:] == pytest.approx([RETRY_DELAYS[1], RETRY_DELAYS[2]])


def test_stop_and_silence_are_noticed_within_half_a_second() -> None:
    """Reads are given at most 0.5 s, and back-off waits in steps of at most 0.5 s."""
    source, _ = play([("fail:gone", 0)] * 5 + [("ok", 2)])
    assert source.read_timeouts and max(source.read_timeouts) <= 0.5
    assert isinstance(source.clock, VirtualClock)
    assert source.clock.waits and max(source.clock.waits) <= READ_TIMEOUT <= 0.5


def test_offline_after_5_s_without_frames(caplog: pytest.LogCaptureFixture) -> None:
    """A camera that stops sending goes offline 5 s after its last frame (within 0.5 s)."""
    _, sink = play([("ok", 20)])
    live_at = next(t for t, s, _ in sink.states if s is CameraState.LIVE)
    last_frame_at = max(f.captured_at for f in sink.frames if not f.is_placeholder)
    offline_at, _, reason = next(s for s in sink.states if s[1] is CameraState.OFFLINE)
    assert live_at < last_frame_at
    assert 5.0 < offline_at - last_frame_at <= 5.0 + READ_TIMEOUT
    assert reason == "no frames for 6 s"  # 5.5 s, rounded
    assert offline_lines(caplog) == [f"camera fake offline: {reason}"]
