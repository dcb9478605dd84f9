"""Camera settings on a real daemon with real HTTP clients: who may, what is checked, what
reaches the test pattern's frames, what survives a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import simplejpeg
from conftest import timeout
from test_auth import PASSWORD, auth_yaml, basic, login

from pyimagestreamd import controlfile
from pyimagestreamd.posts import MAX_BODY
from pyimagestreamd.shares import Shares

ADMIN = {"Authorization": basic("anna", PASSWORD)}
VIEWER = {"Authorization": basic("bob", PASSWORD)}
JSON = {"Content-Type": "application/json"}


async def request(
    rd: Any, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST `body` as JSON (GET without one); the status and the JSON answer."""

    def fetch() -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if body is None else "POST"
        req = urllib.request.Request(rd.url(path), data, headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout(30)) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            with err:
                raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, {"text": raw.decode()}

    return await asyncio.to_thread(fetch)


async def set_controls(rd: Any, values: object, camera: str = "fish", **headers: str) -> Any:
    return await request(rd, f"/api/camera/{camera}/controls", values, {**ADMIN, **JSON, **headers})


async def mean_luma(rd: Any, camera: str = "fish") -> float:
    """The mean luma of a frame captured after this call: the latest one may predate it."""
    first = None
    async with asyncio.timeout(timeout(10)):
        while True:
            status, headers, body = await rd.get(f"/snapshot/{camera}.jpg", headers=ADMIN)
            assert status == 200
            seq = int(headers["X-Frame-Seq"])
            if first is not None and seq > first:
                return float(simplejpeg.decode_jpeg(body, colorspace="GRAY").mean())
            first = seq if first is None else first
            await asyncio.sleep(0.02)


async def camera_state(rd: Any, camera: str) -> dict[str, Any]:
    status, _, body = await rd.get("/api/state", headers=ADMIN)
    assert status == 200
    return next(c for c in json.loads(body)["cameras"] if c["name"] == camera)


async def wake(rd: Any, camera: str = "fish") -> None:
    """A snapshot starts the camera; it stays up for its stop delay."""
    await mean_luma(rd, camera)


async def test_admin_sets_brightness_and_the_next_frames_show_it(
    start_daemon: Any, tmp_path: Path
) -> None:
    """An admin's change is applied by the running camera, read back, and seen in frames."""
    rd = await start_daemon(auth_yaml(tmp_path))
    await wake(rd)
    plain = await mean_luma(rd)
    status, doc = await set_controls(rd, {"brightness": 230})
    assert status == 200, doc
    assert doc["applied"] is True and doc["values"] == {"brightness": 230}
    assert doc["controls"]["brightness"]["value"] == 230
    brighter = await mean_luma(rd)
    assert brighter > plain + 50
    state = await camera_state(rd, "fish")
    assert state["format"]["controls"]["brightness"]["value"] == 230
    # The other camera is untouched.
    door = (await request(rd, "/api/camera/door/controls", headers=ADMIN))[1]
    assert door["controls"]["brightness"]["value"] == 128 and door["changed"] == {}


async def test_viewers_and_share_links_get_403(start_daemon: Any, tmp_path: Path) -> None:
    """A viewer (Basic or session) and a share link may not read or change settings."""
    rd = await start_daemon(auth_yaml(tmp_path))
    _, token = Shares(tmp_path / "state" / "shares.json").create("fish", 600)
    _, headers, _ = await rd.get(f"/share/{token}")
    share = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    _, cookie = await login(rd, "bob")
    session = {"Cookie": cookie.split(";")[0]}
    path = "/api/camera/fish/controls"
    for who in (VIEWER, share, session):
        assert (await request(rd, path, {"brightness": 1}, {**who, **JSON}))[0] == 403
        assert (await request(rd, path, headers=who))[0] == 403
        assert (await request(rd, path + "/save", {}, {**who, **JSON}))[0] == 403
    assert (await request(rd, path, {"brightness": 1}, JSON))[0] == 401
    status, doc = await request(rd, path, headers=ADMIN)
    assert status == 200 and doc["changed"] == {}


async def test_without_users_nobody_changes_settings(start_daemon: Any, tmp_path: Path) -> None:
    """In the local-only default there are no admins: local clients watch, not configure."""
    rd = await start_daemon(f"auth: {{users_file: {tmp_path}/none}}\n")
    status, doc = await request(rd, "/api/camera/testpattern/controls", {"brightness": 1}, JSON)
    assert status == 403, doc


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"brightness": 256}, 400, "brightness: invalid value 256: expected 0..255"),
        ({"brightness": "high"}, 400, "brightness: invalid value 'high': expected an integer"),
        ({"horizontal_flip": 3}, 400, "horizontal_flip: invalid value 3: expected true or false"),
        ({"focus": 3}, 400, "focus: no such control (this camera has: brightness, horizontal_f"),
        ([], 400, "expected a JSON object"),
    ],
)
async def test_bad_values_get_400_naming_the_control(
    start_daemon: Any, tmp_path: Path, body: object, status: int, message: str
) -> None:
    """A value out of range, of the wrong type or for no control: 400, and nothing changes."""
    rd = await start_daemon(auth_yaml(tmp_path))
    await wake(rd)
    got, doc = await set_controls(rd, body)
    assert got == status and doc["error"].startswith(message), doc
    after = (await request(rd, "/api/camera/fish/controls", headers=ADMIN))[1]
    assert after["controls"]["brightness"]["value"] == 128 and after["changed"] == {}


async def test_cross_site_requests_are_refused(start_daemon: Any, tmp_path: Path) -> None:
    """Another Origin gets 403 even with an admin's credentials; our own page's origin works;
    a body that is not JSON (what a cross-site form sends) gets 415."""
    rd = await start_daemon(auth_yaml(tmp_path))
    _, cookie = await login(rd, "anna")
    session = {"Cookie": cookie.split(";")[0], **JSON}
    path = "/api/camera/fish/controls"
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{rd.port}"):
        status, doc = await request(rd, path, {"brightness": 1}, {**session, "Origin": origin})
        assert status == 403 and doc["error"] == "origin not allowed", origin
        status, _ = await request(rd, path + "/reset", {}, {**ADMIN, "Origin": origin})
        assert status == 403
    own = {**session, "Origin": f"http://127.0.0.1:{rd.port}"}
    assert (await request(rd, path, {"brightness": 1}, own))[0] in (200, 202)
    form = {**session, "Content-Type": "application/x-www-form-urlencoded"}
    assert (await request(rd, path, {"brightness": 1}, form))[0] == 415
    assert (await rd.get(path, method="PUT", headers=ADMIN))[0] == 405


async def test_request_bodies_are_bounded(start_daemon: Any, tmp_path: Path) -> None:
    """A body over MAX_BODY is refused with 413 before it is read, and the daemon serves on."""
    rd = await start_daemon(auth_yaml(tmp_path))
    big = {"brightness": 1, "pad": "x" * MAX_BODY}
    assert (await set_controls(rd, big))[0] == 413

    def chunked() -> bytes:
        # No Content-Length: the bound holds while the body is read.
        with socket.create_connection(("127.0.0.1", rd.port), timeout=timeout(10)) as sock:
            head = (
                "POST /api/camera/fish/controls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {ADMIN['Authorization']}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head.encode())
            chunk = b"x" * 4096
            try:
                for _ in range(2 * MAX_BODY // len(chunk)):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass  # refused and closed while we were still sending
            return sock.recv(200)

    assert (await asyncio.to_thread(chunked)).startswith(b"HTTP/1.1 413")
    assert (await rd.get("/snapshot/fish.jpg", headers=ADMIN))[0] == 200


async def test_a_sleeping_camera_keeps_the_value_until_it_starts(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Asleep: 202, not applied; the first frames after the camera starts already show it."""
    rd = await start_daemon(auth_yaml(tmp_path))
    assert (await camera_state(rd, "door"))["capturing"] is False
    status, doc = await set_controls(rd, {"brightness": 20}, camera="door")
    assert status == 202 and doc["applied"] is False and doc["kept"] == {"brightness": 20}
    assert await mean_luma(rd, "door") < 60
    state = await camera_state(rd, "door")
    assert state["format"]["controls"]["brightness"]["value"] == 20


async def test_save_survives_a_restart_and_reset_returns_to_defaults(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Saved values are in the state directory (not the YAML) and come back after a restart;
    reset brings the defaults back now, and saving then forgets the camera."""
    text = auth_yaml(tmp_path)
    rd = await start_daemon(text)
    await wake(rd)
    assert (await set_controls(rd, {"brightness": 40, "horizontal_flip": True}))[0] == 200
    status, doc = await request(rd, "/api/camera/fish/controls/save", {}, {**ADMIN, **JSON})
    assert status == 200 and doc["saved"] == {"brightness": 40, "horizontal_flip": 1}
    saved = tmp_path / "state" / controlfile.FILE_NAME
    assert controlfile.load(saved) == {"fish": {"brightness": 40, "horizontal_flip": 1}}
    await rd.stop()
    rd = await start_daemon(text)
    assert await mean_luma(rd) < 80
    specs = (await request(rd, "/api/camera/fish/controls", headers=ADMIN))[1]["controls"]
    assert specs["brightness"]["value"] == 40 and specs["horizontal_flip"]["value"] == 1
    status, doc = await request(rd, "/api/camera/fish/controls/reset", {}, {**ADMIN, **JSON})
    assert status == 200 and doc["values"] == {"brightness": 128, "horizontal_flip": 0}
    assert await mean_luma(rd) > 80
    assert (await request(rd, "/api/camera/fish/controls/save", {}, ADMIN))[0] == 200
    assert controlfile.load(saved) == {}


async def test_a_bad_saved_file_is_one_log_line_and_the_daemon_starts(
    start_daemon: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged saved-settings file is named in one ERROR line and ignored."""
    text = auth_yaml(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / controlfile.FILE_NAME).write_text('{"cameras": {"fish": 7}}')
    with caplog.at_level(logging.INFO):
        rd = await start_daemon(text)
    lines = [r.getMessage() for r in caplog.records if "saved camera settings" in r.getMessage()]
    assert len(lines) == 1 and controlfile.FILE_NAME in lines[0]
    assert await mean_luma(rd) > 80
