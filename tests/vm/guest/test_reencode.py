"""Raw capture re-encoded to JPEG: YUYV from v4l2loopback and vivid, NV12 and YU12 from vivid,
and `yuv_range` (limited expands 16-235, full passes the levels through)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import simplejpeg
import vmlib
from feeder import BARS_RGB

# vivid's default test pattern: 75% colour bars, left to right.
VIVID_BARS = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
              (191, 0, 191), (191, 0, 0), (0, 0, 191), (0, 0, 0)]  # fmt: skip


def bar_colours(jpeg: bytes, bars: int, row: float) -> list[tuple[int, int, int]]:
    """Mean RGB of a patch in the middle of each vertical bar, at `row` (0..1) of the height."""
    image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    height, width, _ = image.shape
    y = int(height * row)
    out = []
    for i in range(bars):
        x = int(width * (i + 0.5) / bars)
        patch = image[y - 8 : y + 8, x - 8 : x + 8].reshape(-1, 3).astype(np.float64)
        out.append(tuple(round(float(c)) for c in patch.mean(axis=0)))
    return out


def assert_colours(
    got: list[tuple[int, int, int]], want: list[tuple[int, int, int]], tolerance: int
) -> None:
    worst = max(
        abs(g - w) for gc, wc in zip(got, want, strict=True) for g, w in zip(gc, wc, strict=True)
    )
    assert worst <= tolerance, f"colours off by {worst}: got {got}, want {want}"


async def first_frames(daemon: vmlib.Daemon, count: int) -> list[vmlib.Received]:
    async with vmlib.V2Client(daemon.url("cam")) as client:
        await client.pump(
            vmlib.timeout(30),
            until=lambda c: sum(not f.meta["offline"] for f in c.frames) >= count,
        )
    frames = [f for f in client.frames if not f.meta["offline"]]
    assert len(frames) >= count, f"{len(frames)} frames; daemon log:\n{daemon.log()}"
    return frames


@pytest.mark.usefixtures("loopback")
async def test_yuyv_from_v4l2loopback_is_reencoded_with_the_right_colours(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """Limited-range YUYV colour bars come out as full-range JPEG bars of the same colours."""
    with vmlib.python_feeder(vmlib.LOOP_YUYV, "yuyv-bars"):
        daemon = start_daemon(
            vmlib.camera_yaml("cam", source=vmlib.LOOP_YUYV, width=1920, height=1080, fps=30)
        )
        frames = await first_frames(daemon, 5)
        cam = daemon.camera("cam")
    assert cam["format"]["format"] == "YUYV"
    assert cam["format"]["mode"] == "encode"
    assert cam["format"]["read_in"] == "capture thread"
    for frame in frames:
        assert simplejpeg.decode_jpeg_header(frame.jpeg)[:2] == (1080, 1920)
    # JPEG at quality 80 with 4:2:0 chroma: a few levels of error in flat areas.
    assert_colours(bar_colours(frames[-1].jpeg, len(BARS_RGB), 0.5), BARS_RGB, 10)


@pytest.mark.usefixtures("vivid")
async def test_vivid_hdmi_1080p30_is_reencoded_with_the_right_colours(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """vivid's HDMI input at 1080p30 (raw only) gives valid 1920x1080 JPEGs of its colour bars."""
    vmlib.vivid_hdmi_1080p30()
    daemon = start_daemon(
        vmlib.camera_yaml(
            "cam", source=vmlib.VIVID, width=1920, height=1080, fps=30, input=3,
            # vivid's HD timings default to Rec. 709 YCbCr; JFIF (and so every browser)
            # decodes BT.601, as webcams send it. Controls by name make vivid send 601.
            format="yuyv", controls={"test_pattern": 0, "y_cbcr_encoding": 1},
        )
    )  # fmt: skip
    frames = await first_frames(daemon, 10)
    cam = daemon.camera("cam")
    fmt = cam["format"]
    assert (fmt["format"], fmt["width"], fmt["height"], fmt["input"]) == ("YUYV", 1920, 1080, 3)
    assert fmt["controls"]["test_pattern"]["value"] == 0
    assert fmt["controls"]["y_cbcr_encoding"]["value"] == 1
    assert "brightness" in fmt["controls"] and "max" in fmt["controls"]["brightness"]
    for frame in frames:
        assert simplejpeg.decode_jpeg_header(frame.jpeg)[:2] == (1080, 1920)
    # Sampled low in the picture, away from vivid's text.
    assert_colours(bar_colours(frames[-1].jpeg, len(VIVID_BARS), 0.8), VIVID_BARS, 12)


@pytest.mark.usefixtures("vivid")
async def test_unknown_control_name_is_reported_naming_the_camera(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """A control the camera does not have keeps it offline with a reason naming camera and key."""
    daemon = start_daemon(
        vmlib.camera_yaml(
            "cam", source=vmlib.VIVID, width=640, height=480, controls={"no_such_control": 1}
        )
    )
    async with vmlib.V2Client(daemon.url("cam")) as client:
        await client.pump(
            vmlib.timeout(15), until=lambda c: any(s.get("state") == "offline" for s in c.states)
        )
    reasons = [s["reason"] for s in client.states if s.get("state") == "offline"]
    assert reasons and "cameras.cam.controls.no_such_control" in reasons[0], client.states
    assert "brightness" in reasons[0]


def limited_read_as_full(bars: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The bars as a viewer sees limited-range (16-235) YUV taken for full range (BT.601)."""
    rgb = np.array(bars, dtype=np.float64)
    y = rgb @ (0.299, 0.587, 0.114)
    cb = rgb @ (-0.168736, -0.331264, 0.5)
    cr = rgb @ (0.5, -0.418688, -0.081312)
    y, cb, cr = 16 + y * 219 / 255, cb * 224 / 255, cr * 224 / 255
    out = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=1)
    return [tuple(int(c) for c in row) for row in np.clip(out, 0, 255).round()]


# vivid's webcam input (0) at 640x480 and 25 fps: sRGB, so BT.601 YCbCr, and limited range
# unless its `quantization` control says full (1). JPEG at quality 80 in the middle of an
# 80-pixel bar: a few levels of error; a wrong range is off by 11-16 levels, swapped
# chroma planes by far more.
WEBCAM = {"source": vmlib.VIVID, "width": 640, "height": 480, "fps": 25, "input": 0}
TOLERANCE = 6


@pytest.mark.usefixtures("vivid")
@pytest.mark.parametrize("fourcc", ["NV12", "YU12"])
async def test_vivid_nv12_and_yu12_are_reencoded_with_the_right_colours(
    start_daemon: Callable[..., vmlib.Daemon], fourcc: str
) -> None:
    """vivid's 4:2:0 formats, NV12 (interleaved chroma) and YU12 (planar), give its bars."""
    daemon = start_daemon(
        vmlib.camera_yaml("cam", **WEBCAM, format=fourcc.lower(), controls={"test_pattern": 0})
    )
    frames = await first_frames(daemon, 5)
    fmt = daemon.camera("cam")["format"]
    assert (fmt["format"], fmt["mode"], fmt["yuv_range"]) == (fourcc, "encode", "limited")
    for frame in frames:
        assert simplejpeg.decode_jpeg_header(frame.jpeg)[:2] == (480, 640)
    assert_colours(bar_colours(frames[-1].jpeg, len(VIVID_BARS), 0.8), VIVID_BARS, TOLERANCE)


@pytest.mark.usefixtures("vivid")
@pytest.mark.parametrize(
    ("quantization", "want"),
    [(1, VIVID_BARS), (2, limited_read_as_full(VIVID_BARS))],
    ids=["full-range-source", "limited-range-source"],
)
async def test_yuv_range_full_passes_the_levels_through(
    start_daemon: Callable[..., vmlib.Daemon],
    quantization: int,
    want: list[tuple[int, int, int]],
) -> None:
    """`yuv_range: full` encodes the camera's levels as they are: right for a full-range
    source, washed out (black at 16) for a limited-range one, which `limited` would expand."""
    daemon = start_daemon(
        vmlib.camera_yaml(
            "cam", **WEBCAM, format="yuyv", yuv_range="full",
            controls={"test_pattern": 0, "quantization": quantization},
        )
    )  # fmt: skip
    frames = await first_frames(daemon, 5)
    fmt = daemon.camera("cam")["format"]
    assert (fmt["format"], fmt["yuv_range"]) == ("YUYV", "full")
    assert fmt["controls"]["quantization"]["value"] == quantization
    assert_colours(bar_colours(frames[-1].jpeg, len(VIVID_BARS), 0.8), want, TOLERANCE)
