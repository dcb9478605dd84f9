"""Raw capture re-encoded to JPEG: YUYV from v4l2loopback and from vivid's HDMI input."""

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
