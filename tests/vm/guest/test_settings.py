"""Camera settings on vivid's real controls: a change through the settings API reaches the
driver (as `v4l2-ctl --get-ctrl` reads it) and the next frames show it; viewers cannot."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import simplejpeg
import vmlib

from pyimagestreamd.accounts import User, hash_password, write_users

PASSWORD = "vivid settings"


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def call(
    daemon: vmlib.Daemon, path: str, who: str, body: object = None
) -> tuple[int, dict[str, object], dict[str, str]]:
    """A request as user `who`: POST of `body` as JSON, GET without one."""
    data = None if body is None else json.dumps(body).encode()
    headers = {**basic(who), "Content-Type": "application/json"}
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}", data, headers)
    try:
        with urllib.request.urlopen(req, timeout=vmlib.timeout(30)) as resp:
            raw, status, head = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        with err:
            raw, status, head = err.read(), err.code, dict(err.headers)
    doc = json.loads(raw) if head.get("Content-Type") == "application/json" else {"raw": raw}
    return status, doc, head


def driver_brightness() -> int:
    out = vmlib.run("v4l2-ctl", "-d", vmlib.VIVID, "--get-ctrl", "brightness").stdout
    match = re.fullmatch(r"brightness: (-?\d+)\s*", out)
    assert match, out
    return int(match.group(1))


def next_luma(daemon: vmlib.Daemon) -> float:
    """Mean luma of a frame captured after this call (the latest one may predate it)."""
    first = None
    deadline = time.monotonic() + vmlib.timeout(30)
    while time.monotonic() < deadline:
        status, doc, head = call(daemon, "/snapshot/cam.jpg", "anna")
        assert status == 200, doc
        seq = int(head["X-Frame-Seq"])
        if first is not None and seq > first:
            jpeg = doc["raw"]
            assert isinstance(jpeg, bytes)
            return float(simplejpeg.decode_jpeg(jpeg, colorspace="GRAY").mean())
        first = seq if first is None else first
        time.sleep(0.05)
    raise AssertionError("no new frame within 30 s")


@pytest.mark.usefixtures("vivid")
def test_a_brightness_change_reaches_vivid_and_its_next_frames(
    start_daemon: Callable[..., vmlib.Daemon], tmp_path: Path
) -> None:
    """Admin sets brightness: read back as the driver holds it, and the frames get brighter;
    a viewer gets 403 and an out-of-range value 400, and neither reaches the driver."""
    users = {
        "anna": User("anna", "admin", hash_password(PASSWORD, n=2**12)),
        "bob": User("bob", "viewer", hash_password(PASSWORD, n=2**12)),
    }
    write_users(tmp_path / "users", users)
    auth = f"auth: {{users_file: {tmp_path}/users, state_directory: {tmp_path}/state}}\n"
    daemon = start_daemon(
        vmlib.camera_yaml("cam", source=vmlib.VIVID, width=640, height=480, fps=25, format="yuyv"),
        extra=auth,
        headers=basic("anna"),
    )
    assert driver_brightness() == 128
    plain = next_luma(daemon)
    spec = daemon_controls(daemon)["brightness"]
    assert (spec["type"], spec["min"], spec["max"], spec["value"]) == ("int", 0, 255, 128)

    status, doc, _ = call(daemon, "/api/camera/cam/controls", "anna", {"brightness": 220})
    assert status == 200, doc
    assert doc["values"] == {"brightness": 220}
    assert driver_brightness() == 220
    brighter = next_luma(daemon)
    assert brighter > plain + 25, (plain, brighter)

    assert call(daemon, "/api/camera/cam/controls", "bob", {"brightness": 10})[0] == 403
    status, doc, _ = call(daemon, "/api/camera/cam/controls", "anna", {"brightness": 256})
    assert status == 400 and str(doc["error"]).startswith("brightness: invalid value 256"), doc
    assert driver_brightness() == 220

    status, doc, _ = call(daemon, "/api/camera/cam/controls/reset", "anna", {})
    assert status == 200, json.dumps(doc)
    assert doc["values"] == {"brightness": 128}, json.dumps(doc)
    assert driver_brightness() == 128
    assert abs(next_luma(daemon) - plain) < 10


def daemon_controls(daemon: vmlib.Daemon) -> dict[str, dict[str, object]]:
    status, doc, _ = call(daemon, "/api/camera/cam/controls", "anna")
    assert status == 200, doc
    controls = doc["controls"]
    assert isinstance(controls, dict)
    return controls
