"""Camera controls without a camera: validation, the hand-over to the capture thread, the
saved-settings file, and the test pattern's own controls."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg
from conftest import timeout

from pyimagestreamd import controlfile
from pyimagestreamd.camera import CameraState
from pyimagestreamd.config import CameraConfig
from pyimagestreamd.controls import (
    MAX_CONTROLS,
    MAX_WAITING,
    Applied,
    BusyError,
    ControlError,
    ControlRequests,
    check_value,
    defaults,
    validate,
)
from pyimagestreamd.frame import Frame
from pyimagestreamd.statefile import StateError
from pyimagestreamd.testpattern import TestPattern, TestPatternSource

SPECS: dict[str, dict[str, Any]] = {
    "brightness": {"type": "int", "min": 0, "max": 255, "step": 1, "default": 128},
    "zoom": {"type": "int", "min": 100, "max": 500, "step": 10, "default": 100},
    "white_balance_automatic": {"type": "bool", "min": 0, "max": 1, "step": 1, "default": 1},
    "power_line_frequency": {
        "type": "menu", "min": 0, "max": 2, "step": 1, "default": 1,
        "menu": {"0": "Disabled", "1": "50 Hz", "2": "60 Hz"},
    },
    "pan_reset": {"type": "button", "min": 0, "max": 0, "step": 0},
    "frame_count": {"type": "int", "min": 0, "max": 9, "step": 1, "default": 0, "read_only": True},
}  # fmt: skip


def test_valid_values_pass_in_request_order() -> None:
    """Integers in range and on the step, booleans, menu entries: kept, in the order sent."""
    changes = {"zoom": 250, "brightness": 0, "white_balance_automatic": False}
    assert validate(SPECS, {**changes, "power_line_frequency": 2}) == {
        "zoom": 250, "brightness": 0, "white_balance_automatic": 0, "power_line_frequency": 2,
    }  # fmt: skip
    assert list(validate(SPECS, changes)) == ["zoom", "brightness", "white_balance_automatic"]
    assert check_value("white_balance_automatic", SPECS["white_balance_automatic"], 1) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"brightness": 256}, "brightness: invalid value 256: expected 0..255"),
        ({"brightness": -1}, "brightness: invalid value -1: expected 0..255"),
        ({"brightness": 12.5}, "brightness: invalid value 12.5: expected an integer"),
        ({"brightness": "128"}, "brightness: invalid value '128': expected an integer"),
        ({"brightness": True}, "brightness: invalid value True: expected an integer"),
        ({"zoom": 105}, "zoom: invalid value 105: expected 100..500 in steps of 10"),
        ({"white_balance_automatic": 2}, "white_balance_automatic: invalid value 2: expected true"),
        ({"power_line_frequency": 3}, "power_line_frequency: invalid value 3: expected one of 0"),
        ({"pan_reset": 1}, "pan_reset: this control cannot be set (type button)"),
        ({"frame_count": 1}, "frame_count: this control cannot be set"),
        ({"focus": 1}, "focus: no such control (this camera has: brightness, power_line"),
        ({}, "expected a JSON object of control names and values"),
        ([1], "expected a JSON object"),
    ],
)
def test_bad_values_name_the_control(changes: object, message: str) -> None:
    """Every refusal is one line that starts with the control's name and says what is valid."""
    with pytest.raises(ControlError) as refused:
        validate(SPECS, changes)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_one_request_sets_at_most_max_controls() -> None:
    """A request naming more than MAX_CONTROLS controls is refused as a whole."""
    many = {f"c{i}": {"type": "int", "min": 0, "max": 1, "step": 1} for i in range(100)}
    with pytest.raises(ControlError, match=f"more than {MAX_CONTROLS}"):
        validate(many, dict.fromkeys(many, 0))


def test_defaults_are_the_settable_controls_defaults() -> None:
    """Reset goes back to each settable control's default; buttons and read-only ones stay."""
    assert defaults(SPECS) == {
        "brightness": 128, "zoom": 100, "white_balance_automatic": 1, "power_line_frequency": 1,
    }  # fmt: skip


def test_requests_reach_the_capture_side_once_and_are_kept() -> None:
    """Between reads the thread gets what changed; at an open, everything asked for so far."""
    requests = ControlRequests()
    first = requests.request({"brightness": 10})
    second = requests.request({"brightness": 20, "zoom": 200})
    reset, values, waiting = requests.take(opening=False)
    assert (reset, values, waiting) == (False, {"brightness": 20, "zoom": 200}, [first, second])
    assert requests.take(opening=False) == (False, {}, [])
    requests.keep({"contrast": 3})
    assert requests.take(opening=True)[1] == {"brightness": 20, "zoom": 200, "contrast": 3}
    assert requests.wanted() == {"brightness": 20, "zoom": 200, "contrast": 3}


def test_reset_forgets_the_kept_values() -> None:
    """A reset clears what was asked for and tells the thread to go back to the defaults."""
    requests = ControlRequests()
    requests.restore({"brightness": 10})
    requests.request({}, reset=True)
    assert requests.wanted() == {}
    assert requests.take(opening=True)[:2] == (True, {})


def test_unapplied_requests_are_answered_none_and_kept() -> None:
    """A camera that stops or fails answers None; the values wait for the next open."""
    requests = ControlRequests()
    future = requests.request({"brightness": 10})
    requests.settle_unapplied()
    assert future.result(0) is None
    assert requests.take(opening=True)[1] == {"brightness": 10}


def test_waiting_requests_are_bounded() -> None:
    """MAX_WAITING requests may wait for the thread; the next one is refused, not queued."""
    requests = ControlRequests()
    for _ in range(MAX_WAITING):
        requests.request({"brightness": 1})
    with pytest.raises(BusyError):
        requests.request({"brightness": 2})
    requests.settle_unapplied()
    requests.request({"brightness": 3})


def test_kept_values_are_bounded() -> None:
    """Controls kept for one camera are bounded too, across many requests."""
    requests = ControlRequests()
    for i in range(MAX_CONTROLS):
        requests.keep({f"c{i}": 0})
    with pytest.raises(BusyError):
        requests.keep({"one_more": 0})
    requests.keep({"c0": 1})  # changing a kept one is fine


def test_a_cancelled_request_does_not_break_the_capture_thread() -> None:
    """An HTTP handler that gave up (timeout) cancels its future; answering it is harmless."""
    requests = ControlRequests()
    future = requests.request({"brightness": 1})
    future.cancel()
    requests.settle_unapplied()


# -- the saved-settings file -------------------------------------------------------------


def test_saved_values_round_trip_per_camera(tmp_path: Path) -> None:
    """Each camera's values are saved on their own; saving none forgets the camera."""
    path = tmp_path / "state" / controlfile.FILE_NAME
    assert controlfile.load(path) == {}
    controlfile.save(path, "fish", {"brightness": 140})
    controlfile.save(path, "door", {"zoom": 200, "brightness": 3})
    assert controlfile.load(path) == {
        "fish": {"brightness": 140},
        "door": {"zoom": 200, "brightness": 3},
    }
    assert path.stat().st_mode & 0o777 == 0o600
    controlfile.save(path, "fish", {})
    assert controlfile.load(path) == {"door": {"zoom": 200, "brightness": 3}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"cameras": []}', "'cameras' must map"),
        (b'{"cameras": {"fish": {"brightness": "x"}}}', "camera 'fish': bad entry 'brightness'"),
        (b'{"cameras": {"fish": {"Bad Name": 1}}}', "camera 'fish': bad entry 'Bad Name'"),
        (b'{"cameras": {"fish": {"b": true}}}', "camera 'fish': bad entry 'b'"),
        (b'{"cameras": {"fish": {"b": 1e400}}}', "camera 'fish': bad entry 'b'"),
        (b" " * (controlfile.MAX_BYTES + 1), f"larger than {controlfile.MAX_BYTES} bytes"),
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    """A damaged, foreign or oversized file is refused with a reason, never half-used."""
    path = tmp_path / controlfile.FILE_NAME
    path.write_bytes(content)
    with pytest.raises(StateError) as refused:
        controlfile.load(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_restore_logs_a_bad_file_and_starts_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At start, a bad file is one ERROR line naming it, and no saved values are applied."""
    path = tmp_path / controlfile.FILE_NAME
    path.write_text('{"cameras": {"fish": {"brightness": "bright"}}}')
    with caplog.at_level(logging.INFO, "pyimagestreamd.controlfile"):
        assert controlfile.restore(path) == {}
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "saved camera settings ignored" in line.getMessage() and str(path) in line.getMessage()
    controlfile.save(path, "fish", {"brightness": 9})  # the next save replaces it
    assert json.loads(path.read_text()) == {"cameras": {"fish": {"brightness": 9}}}


# -- the test pattern's controls -----------------------------------------------------------


def luma(planes: tuple[np.ndarray, ...]) -> float:
    return float(planes[0].mean())


def test_test_pattern_brightness_shifts_the_picture() -> None:
    """Brightness above 128 makes the drawn frame brighter, below darker; 128 is as drawn."""
    pattern = TestPattern(320, 240, "p")
    plain = luma(pattern.draw(1, 0.0))
    pattern.brightness = 200
    bright = luma(pattern.draw(1, 0.0))
    pattern.brightness = 40
    dark = luma(pattern.draw(1, 0.0))
    assert dark < plain - 40 and bright > plain + 40


def test_test_pattern_flip_mirrors_the_scene() -> None:
    """horizontal_flip mirrors the bars: the left edge shows what the right edge showed."""
    pattern = TestPattern(320, 240, "p")
    left = pattern.draw(1, 0.0)[0][10, 5]
    right = pattern.draw(1, 0.0)[0][10, 314]
    pattern.horizontal_flip = True
    assert pattern.draw(1, 0.0)[0][10, 5] == right != left


class _Sink:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.got = threading.Event()

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.got.set()

    def on_state(self, state: CameraState, reason: str) -> None:
        pass


def test_test_pattern_source_applies_a_change_in_its_capture_thread() -> None:
    """A request to the running test pattern comes back read back, and later frames show it."""
    source = TestPatternSource(CameraConfig(name="p", source="testpattern", width=160, height=120))
    sink = _Sink()
    source.ensure_started(sink)
    try:
        assert sink.got.wait(timeout(5))
        before = len(sink.frames)
        result = source.controls.request({"brightness": 250}).result(timeout(5))
        assert result == Applied({"brightness": 250}, {})
        assert source.control_specs()["brightness"]["value"] == 250
        until = time.monotonic() + timeout(5)
        while len(sink.frames) < before + 3 and time.monotonic() < until:
            time.sleep(0.05)
        plain = simplejpeg.decode_jpeg(sink.frames[0].jpeg, colorspace="GRAY")
        bright = simplejpeg.decode_jpeg(sink.frames[-1].jpeg, colorspace="GRAY")
        assert float(bright.mean()) > float(plain.mean()) + 60
    finally:
        assert source.ensure_stopped()


class _WaitingSource(TestPatternSource):
    """A camera whose reads wait for the stop request: no frame, no apply point."""

    def __init__(self) -> None:
        super().__init__(CameraConfig(name="w", source="testpattern", width=160, height=120))
        self.reading = threading.Event()

    def read(self, timeout: float) -> Frame | None:
        self.reading.set()
        self._stop.wait(timeout)
        return None


def test_a_request_the_stopping_camera_did_not_apply_is_answered() -> None:
    """A change that arrives while capture stops is answered (None: kept), never left hanging."""
    source = _WaitingSource()
    source.ensure_started(_Sink())
    assert source.reading.wait(timeout(5))
    future = source.controls.request({"brightness": 7})
    assert source.ensure_stopped()
    assert future.result(timeout(5)) is None
    assert source.controls.wanted() == {"brightness": 7}


def test_reset_sets_only_the_controls_away_from_their_default() -> None:
    """Reset touches what moved (a driver may refuse others while streaming), nothing else."""
    source = TestPatternSource(CameraConfig(name="p", source="testpattern", width=160, height=120))
    source.ensure_started(_Sink())
    try:
        assert source.controls.request({"brightness": 200}).result(timeout(5)) is not None
        result = source.controls.request({}, reset=True).result(timeout(5))
        assert result == Applied({"brightness": 128}, {})
        assert source.control_specs()["brightness"]["value"] == 128
    finally:
        assert source.ensure_stopped()


class _AutoFlipSource(TestPatternSource):
    """A test pattern whose flip is driven by an automatic mode (inactive), as gain is
    under auto gain."""

    def control_specs(self) -> dict[str, dict[str, Any]]:
        specs = super().control_specs()
        specs["horizontal_flip"]["inactive"] = True
        return specs


def test_reset_leaves_inactive_controls_alone() -> None:
    """An inactive control away from its default is not set by reset."""
    source = _AutoFlipSource(CameraConfig(name="p", source="testpattern", width=160, height=120))
    source.ensure_started(_Sink())
    try:
        changed = source.controls.request({"brightness": 9, "horizontal_flip": 1})
        assert changed.result(timeout(5)) is not None
        result = source.controls.request({}, reset=True).result(timeout(5))
        assert result == Applied({"brightness": 128}, {})
    finally:
        assert source.ensure_stopped()
