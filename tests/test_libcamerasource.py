"""The native libcamera source at unit level: config, format choice, encoding, and the paths
a host without libcamera can reach (missing bindings, a camera that fails half-way, through a
small fake of the bindings). The real camera is vimc in the trixie guest
(tests/vm/guest/test_libcamera.py)."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import simplejpeg
from conftest import make_config, timeout

from pyimagestreamd import libcamerasession as session
from pyimagestreamd import libcamerasource as lcs
from pyimagestreamd.camera import CameraError, CameraState
from pyimagestreamd.config import Config
from pyimagestreamd.frame import Frame
from pyimagestreamd.libcameraconfig import LibcameraOptions
from pyimagestreamd.schema import ConfigError


def camera_config(source: str = "libcamera", more: str = "") -> Config:
    return make_config(
        f"cameras:\n  c:\n    source: {source!r}\n    width: 64\n    height: 48\n{more}"
    )


def test_source_spellings_select_the_libcamera_type() -> None:
    """`libcamera` is the first camera, `libcamera:N` / `libcamera:ID` a chosen one."""
    for source, wanted in (("libcamera", ""), ("libcamera:1", "1"), ("libcamera:/base/i2c", "/base/i2c")):  # fmt: skip
        options = camera_config(source).cameras[0].options
        assert options == LibcameraOptions(camera=wanted), source


def test_buffer_count_is_bounded() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.c\.buffer_count: invalid value 99"):
        camera_config(more="    buffer_count: 99\n")


def test_format_choice_prefers_planes_then_rgb() -> None:
    assert session.choose_format(["BGR888", "NV12", "YUV420"]) == "YUV420"
    assert session.choose_format(["RGB888", "NV12"]) == "NV12"
    assert session.choose_format(["RGB888", "BGR888"]) == "BGR888"
    assert session.choose_format(["SBGGR10", "MJPEG"]) is None


def test_pick_camera_by_index_or_id() -> None:
    ids = ["vimc-a", "vimc-b"]
    assert session.pick_camera(ids, "") == 0
    assert session.pick_camera(ids, "1") == 1
    assert session.pick_camera(ids, "vimc-b") == 1
    with pytest.raises(CameraError, match=r"no camera '2' \(cameras: vimc-a, vimc-b\)"):
        session.pick_camera(ids, "2")
    with pytest.raises(CameraError, match="no camera found"):
        session.pick_camera([], "")


@pytest.mark.parametrize(("fmt", "order"), [("BGR888", (0, 1, 2)), ("RGB888", (2, 1, 0))])
def test_24_bit_formats_keep_their_colours(fmt: str, order: tuple[int, int, int]) -> None:
    """libcamera's (DRM) BGR888 is R, G, B in memory and RGB888 is B, G, R; padded rows."""
    width, height, stride = 32, 16, 32 * 3 + 16
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = 220  # red
    buf = np.zeros((height, stride), np.uint8)
    buf[:, : width * 3] = rgb[:, :, list(order)].reshape(height, width * 3)
    buf[:, width * 3 :] = 255  # padding that must not show
    jpeg = lcs.encode(memoryview(buf.tobytes()), fmt, (width, height), stride, 90)
    assert jpeg is not None
    decoded = simplejpeg.decode_jpeg(jpeg)
    assert decoded.shape == (height, width, 3)
    r, g, b = (int(c) for c in decoded[height // 2, width // 2])
    assert r > 200 and g < 40 and b < 40, (r, g, b)


def test_yuv420_with_padded_rows_is_encoded_from_its_planes() -> None:
    width, height, stride = 64, 48, 80
    data = bytes([128]) * (stride * height * 3 // 2)
    jpeg = lcs.encode(memoryview(data), "YUV420", (width, height), stride, 80)
    assert jpeg is not None
    assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (height, width)
    assert lcs.encode(memoryview(data[:100]), "YUV420", (width, height), stride, 80) is None


class Sink:
    def __init__(self) -> None:
        self.states: list[tuple[CameraState, str]] = []
        self.offline = threading.Event()

    def on_frame(self, frame: Frame) -> None:
        pass

    def on_state(self, state: CameraState, reason: str) -> None:
        self.states.append((state, reason))
        if state is CameraState.OFFLINE:
            self.offline.set()


def offline_reason(source: lcs.LibcameraSource) -> str:
    sink = Sink()
    source.ensure_started(sink)
    try:
        assert sink.offline.wait(timeout(5)), sink.states
    finally:
        assert source.ensure_stopped()
    return sink.states[-1][1]


def test_missing_bindings_are_the_offline_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without python3-libcamera the camera goes offline saying what to install."""
    monkeypatch.setitem(sys.modules, "libcamera", None)  # import fails as if absent
    reason = offline_reason(lcs.LibcameraSource(camera_config().cameras[0]))
    assert reason == session.MISSING
    assert "apt install python3-libcamera" in reason


class FakeCamera:
    """Enough of a libcamera.Camera to get as far as configure(), which fails."""

    id = "fake-cam"

    def __init__(self) -> None:
        self.acquired = False
        self.released = False

    def acquire(self) -> None:
        self.acquired = True

    def release(self) -> None:
        self.released = True

    def generate_configuration(self, roles: list[Any]) -> Any:
        stream = SimpleNamespace(
            formats=SimpleNamespace(pixel_formats=["BGR888", "RGB888"]),
            pixel_format=None, size=None, buffer_count=0,
        )  # fmt: skip
        return SimpleNamespace(at=lambda i: stream, validate=lambda: "valid")

    def configure(self, config: Any) -> None:
        raise RuntimeError("Failed to configure\n camera: Invalid argument")


def fake_bindings(camera: FakeCamera) -> Any:
    manager = SimpleNamespace(cameras=[camera])
    return SimpleNamespace(
        CameraManager=SimpleNamespace(singleton=lambda: manager),
        StreamRole=SimpleNamespace(VideoRecording=2),
        PixelFormat=str,
        Size=lambda w, h: SimpleNamespace(width=w, height=h),
        CameraConfiguration=SimpleNamespace(Status=SimpleNamespace(Invalid="invalid")),
    )


def test_a_camera_failing_half_way_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure() fails after acquire(): one-line reason, and the camera is released."""
    camera = FakeCamera()
    monkeypatch.setitem(sys.modules, "libcamera", fake_bindings(camera))
    reason = offline_reason(lcs.LibcameraSource(camera_config().cameras[0]))
    assert (
        reason == "libcamera: cannot start the camera: Failed to configure camera: Invalid argument"
    )
    assert camera.acquired and camera.released
