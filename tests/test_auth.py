"""Access control on a real daemon with real clients: safe default, Basic, login, shares."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import check_jpeg, timeout, ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pyimagestreamd.accounts import User, hash_password, write_users
from pyimagestreamd.posts import MAX_BODY
from pyimagestreamd.shares import Shares

PASSWORD = "correct horse"


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def with_password(url: str, name: str = "bob", password: str = PASSWORD) -> str:
    """The URL with user:password@ in it, as ffmpeg and browsers take Basic credentials."""
    return url.replace("://", f"://{name}:{password.replace(' ', '%20')}@")


def ffmpeg_first_frame(url: str, out: Path) -> None:
    """ffmpeg reads one frame from `url` into `out` (a PNG); it must succeed. Blocking."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", url, "-frames:v", "1", str(out)],
        capture_output=True, timeout=timeout(60), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


def auth_yaml(tmp_path: Path, extra: str = "") -> str:
    users = {
        "anna": User("anna", "admin", hash_password(PASSWORD, n=2**12)),
        "bob": User("bob", "viewer", hash_password(PASSWORD, n=2**12)),
    }
    write_users(tmp_path / "users", users)
    return (
        f"auth: {{users_file: {tmp_path}/users, state_directory: {tmp_path}/state{extra}}}\n"
        "cameras: {fish: {fps: 30}, door: {fps: 30}}\n"
    )


async def test_without_users_only_local_addresses_are_served(
    start_daemon: Any, tmp_path: Path
) -> None:
    """No users: loopback and LAN are served; a public client behind the proxy gets 403."""
    rd = await start_daemon(f"auth: {{users_file: {tmp_path}/none}}\n")
    assert (await rd.get("/snapshot.jpg"))[0] == 200
    lan = await rd.get("/snapshot.jpg", headers={"X-Forwarded-For": "192.168.1.20"})
    assert lan[0] == 200
    for outsider in ("203.0.113.9", "100.64.1.2", "2001:db8::1"):
        status, headers, body = await rd.get("/", headers={"X-Forwarded-For": outsider})
        assert status == 403, outsider
        assert b"pyimagestreamd user add" in body
        assert headers["Content-Type"].startswith("text/html")
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(rd, additional_headers={"X-Forwarded-For": "203.0.113.9"}):
            pass
    assert refused.value.response.status_code == 403


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    start_daemon: Any, tmp_path: Path
) -> None:
    """With no trusted proxies, X-Forwarded-For proves nothing: the peer address counts."""
    rd = await start_daemon(
        f"server: {{listen: 127.0.0.1, port: 0, trusted_proxies: []}}\n"
        f"auth: {{users_file: {tmp_path}/none}}\n"
    )
    status, _, _ = await rd.get("/snapshot.jpg", headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200


async def test_users_need_credentials_on_every_route(start_daemon: Any, tmp_path: Path) -> None:
    """With users: page -> login, snapshot/state/WebSocket 401; the login page is public."""
    rd = await start_daemon(auth_yaml(tmp_path))
    status, headers, _ = await rd.get("/snapshot.jpg")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert (await rd.get("/api/state"))[0] == 401
    assert (await rd.get("/snapshot/door.jpg"))[0] == 401
    assert (await rd.get("/login.html"))[0] == 200
    for path in ("/websocket", "/websocket/door"):
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(rd, path):
                pass
        assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        async with ws_connect(rd, additional_headers={"Authorization": basic("anna", "x" * 9)}):
            pass


async def test_curl_and_ffmpeg_with_basic(start_daemon: Any, tmp_path: Path) -> None:
    """curl -u and ffmpeg with user:password@ get a snapshot; a wrong password gets 401."""
    rd = await start_daemon(auth_yaml(tmp_path))

    def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
            capture_output=True, timeout=timeout(30), check=False,
        )  # fmt: skip

    good = await asyncio.to_thread(curl, "-u", f"bob:{PASSWORD}", rd.url("/snapshot/door.jpg"))
    body, code = good.stdout.rsplit(b"\n", 1)
    assert code == b"200"
    check_jpeg(body)
    bad = await asyncio.to_thread(curl, "-u", "bob:wrong-pass", rd.url("/snapshot.jpg"))
    assert bad.stdout.endswith(b"401")
    url = with_password(rd.url("/snapshot/fish.jpg"))
    await asyncio.to_thread(ffmpeg_first_frame, url, tmp_path / "frame.png")


async def login(rd: Any, name: str = "anna", password: str = PASSWORD) -> tuple[int, str]:
    status, headers, _ = await rd.get(
        "/api/login",
        method="POST",
        headers={"Authorization": basic(name, password), "X-PyImageStream": "1"},
    )
    cookie = headers.get("Set-Cookie", "")
    return status, cookie


async def test_login_session_survives_restart_and_logout_closes_streams(
    start_daemon: Any, tmp_path: Path
) -> None:
    """A page login gives a strict cookie that works after a restart; logout closes its WS."""
    text = auth_yaml(tmp_path)
    rd = await start_daemon(text)
    status, cookie = await login(rd)
    assert status == 200
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    session = cookie.split(";")[0]
    await rd.stop()
    rd = await start_daemon(text)
    status, _, body = await rd.get("/api/session", headers={"Cookie": session})
    assert status == 200 and json.loads(body)["name"] == "anna"
    async with ws_connect(rd, "/websocket/fish", additional_headers={"Cookie": session}) as ws:
        await ws.send("next")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))  # type: ignore[arg-type]
        status, headers, _ = await rd.get(
            "/api/logout", method="POST", headers={"Cookie": session, "X-PyImageStream": "1"}
        )
        assert status == 200 and "Max-Age=0" in headers["Set-Cookie"]
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(timeout(5)):
                while True:
                    await ws.send("next")
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert (await rd.get("/api/session", headers={"Cookie": session}))[0] == 401


async def test_logout_needs_the_page_header(start_daemon: Any, tmp_path: Path) -> None:
    """A cross-site request without X-PyImageStream cannot log a user out (or in)."""
    rd = await start_daemon(auth_yaml(tmp_path))
    _, cookie = await login(rd)
    session = cookie.split(";")[0]
    assert (await rd.get("/api/logout", "POST", {"Cookie": session}))[0] == 403
    assert (await rd.get("/api/session", headers={"Cookie": session}))[0] == 200
    status, headers, _ = await rd.get(
        "/api/login", "POST", {"Authorization": basic("anna", PASSWORD)}
    )
    assert status == 403 and "Set-Cookie" not in headers


async def test_account_changes_take_post_only(start_daemon: Any, tmp_path: Path) -> None:
    """A GET (or HEAD) to log in, log out or revoke a link gets 405 with Allow: POST, and
    changes nothing: no session made, the session and the link still work."""
    rd = await start_daemon(auth_yaml(tmp_path))
    share, token = Shares(tmp_path / "state" / "shares.json").create("door", 600)
    _, cookie = await login(rd)
    session = {"Cookie": cookie.split(";")[0], "X-PyImageStream": "1"}
    admin = {"Authorization": basic("anna", PASSWORD), "X-PyImageStream": "1"}
    for method in ("GET", "HEAD"):
        status, headers, _ = await rd.get("/api/login", method, admin)
        assert status == 405 and headers["Allow"] == "POST", method
        assert "Set-Cookie" not in headers
        status, headers, _ = await rd.get("/api/logout", method, session)
        assert status == 405 and headers["Allow"] == "POST", method
        assert "Set-Cookie" not in headers
        status, headers, _ = await rd.get(f"/api/shares/revoke?id={share.id}", method, admin)
        assert status == 405 and headers["Allow"] == "POST", method
    assert (await rd.get("/api/session", headers=session))[0] == 200
    assert (await rd.get(f"/share/{token}"))[0] == 200
    # The reads stay GETs.
    assert (await rd.get("/api/shares", "POST", admin))[0] == 405
    assert (await rd.get("/api/session", "POST", session))[0] == 405


async def test_account_posts_check_the_origin_and_bound_the_body(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Another Origin gets 403 and changes nothing, even with the page's header and an
    admin's credentials; a body over MAX_BODY gets 413; our own origin works."""
    rd = await start_daemon(auth_yaml(tmp_path))
    share, token = Shares(tmp_path / "state" / "shares.json").create("door", 600)
    _, cookie = await login(rd)
    session = {"Cookie": cookie.split(";")[0], "X-PyImageStream": "1"}
    admin = {"Authorization": basic("anna", PASSWORD), "X-PyImageStream": "1"}
    revoke = f"/api/shares/revoke?id={share.id}"
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{rd.port}"):
        status, headers, _ = await rd.get("/api/login", "POST", {**admin, "Origin": origin})
        assert status == 403 and "Set-Cookie" not in headers, origin
        assert (await rd.get("/api/logout", "POST", {**session, "Origin": origin}))[0] == 403
        assert (await rd.get(revoke, "POST", {**admin, "Origin": origin}))[0] == 403
    assert (await rd.get("/api/session", headers=session))[0] == 200
    assert (await rd.get(f"/share/{token}"))[0] == 200
    big = {**admin, "Content-Length": str(MAX_BODY + 1)}
    assert (await rd.get("/api/login", "POST", big))[0] == 413
    own = {**admin, "Origin": f"http://127.0.0.1:{rd.port}"}
    assert (await rd.get(revoke, "POST", own))[0] == 200
    assert (await rd.get(f"/share/{token}"))[0] == 404


async def test_page_logins_are_slowed_down_after_three_failures(
    start_daemon: Any, tmp_path: Path
) -> None:
    """The login page's POSTs pass the same guard as Basic: wrong passwords end in 429."""
    rd = await start_daemon(auth_yaml(tmp_path))
    statuses = []
    for _ in range(10):
        status, headers, _ = await rd.get(
            "/api/login",
            "POST",
            {"Authorization": basic("anna", "wrong-pass"), "X-PyImageStream": "1"},
        )
        statuses.append(status)
        if status == 429:
            break
    assert statuses[:3] == [401] * 3 and statuses[-1] == 429, statuses
    assert int(headers["Retry-After"]) >= 1


async def test_share_link_opens_one_camera_until_revoked(start_daemon: Any, tmp_path: Path) -> None:
    """A share cookie watches its camera only; revoking the link closes its stream at once."""
    rd = await start_daemon(auth_yaml(tmp_path))
    shares = Shares(tmp_path / "state" / "shares.json")
    share, token = shares.create("fish", 600, "for Anna")
    status, headers, body = await rd.get(f"/share/{token}")
    assert status == 200 and b"url=../#camera=fish" in body
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "SameSite=Strict" in headers["Set-Cookie"]
    state = json.loads((await rd.get("/api/state", headers={"Cookie": cookie}))[2])
    assert [c["name"] for c in state["cameras"]] == ["fish"]
    assert (await rd.get("/snapshot/door.jpg", headers={"Cookie": cookie}))[0] == 403
    assert (await rd.get("/api/shares", headers={"Cookie": cookie}))[0] == 403
    with pytest.raises(InvalidStatus):
        async with ws_connect(rd, "/websocket/door", additional_headers={"Cookie": cookie}):
            pass
    async with ws_connect(rd, "/websocket/fish", additional_headers={"Cookie": cookie}) as ws:
        await ws.send("next")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))  # type: ignore[arg-type]
        assert Shares(tmp_path / "state" / "shares.json").revoke(share.id)  # as the CLI does
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout(5)):
                while True:
                    await ws.send("next")
                    await ws.recv()
        assert time.monotonic() - started < timeout(3)
    assert (await rd.get("/snapshot/fish.jpg", headers={"Cookie": cookie}))[0] == 401
    assert (await rd.get(f"/share/{token}"))[0] == 404


async def test_share_link_expires(start_daemon: Any, tmp_path: Path) -> None:
    """A link made for one second is refused once that second is over."""
    rd = await start_daemon(auth_yaml(tmp_path))
    _, token = Shares(tmp_path / "state" / "shares.json").create("fish", 1.0)
    _, headers, _ = await rd.get(f"/share/{token}")
    cookie = headers["Set-Cookie"].split(";")[0]
    assert (await rd.get("/snapshot/fish.jpg", headers={"Cookie": cookie}))[0] == 200
    await asyncio.sleep(1.2)
    assert (await rd.get("/snapshot/fish.jpg", headers={"Cookie": cookie}))[0] == 401


async def test_admin_lists_and_revokes_shares(start_daemon: Any, tmp_path: Path) -> None:
    """An admin sees the links (without tokens) and revokes one; a viewer may not."""
    rd = await start_daemon(auth_yaml(tmp_path))
    share, token = Shares(tmp_path / "state" / "shares.json").create("door", 600, "neighbour")
    admin = {"Authorization": basic("anna", PASSWORD), "X-PyImageStream": "1"}
    viewer = {"Authorization": basic("bob", PASSWORD), "X-PyImageStream": "1"}
    status, _, body = await rd.get("/api/shares", headers=admin)
    assert status == 200 and token.encode() not in body
    assert [s["label"] for s in json.loads(body)["shares"]] == ["neighbour"]
    assert (await rd.get("/api/shares", headers=viewer))[0] == 403
    assert (await rd.get(f"/api/shares/revoke?id={share.id}", "POST", viewer))[0] == 403
    assert (await rd.get(f"/api/shares/revoke?id={share.id}", "POST", admin))[0] == 200
    assert (await rd.get(f"/share/{token}"))[0] == 404


async def test_fifty_wrong_passwords_lock_that_address_only(
    start_daemon: Any, tmp_path: Path
) -> None:
    """50 wrong passwords: locked, the right one refused until the lock ends; others fine."""
    rd = await start_daemon(auth_yaml(tmp_path, ", lock_after: 10, lock_duration: 3"))
    statuses = []
    for _ in range(50):
        status, _, _ = await rd.get(
            "/snapshot.jpg", headers={"Authorization": basic("anna", "wrong-pass")}
        )
        statuses.append(status)
    assert statuses[0] == 401 and statuses[-1] == 429
    locked_at = time.monotonic()
    right = {"Authorization": basic("anna", PASSWORD)}
    status, headers, _ = await rd.get("/snapshot.jpg", headers=right)
    # Locked (3 s), not merely backed off (1 s after the 4th checked failure).
    assert status == 429 and int(headers["Retry-After"]) >= 2
    other = {**right, "X-Forwarded-For": "10.1.2.3"}  # another client behind the proxy
    assert (await rd.get("/snapshot.jpg", headers=other))[0] == 200
    await asyncio.sleep(max(0.0, 3.2 - (time.monotonic() - locked_at)))
    assert (await rd.get("/snapshot.jpg", headers=right))[0] == 200


async def test_bad_users_file_permissions_refuse_everyone_with_a_clear_line(
    start_daemon: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A world-readable users file: 503 for all (no fallback to open), one clear log line."""
    rd = await start_daemon(auth_yaml(tmp_path))
    (tmp_path / "users").chmod(0o644)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert (await rd.get("/snapshot.jpg"))[0] == 503
    lines = [r.getMessage() for r in caplog.records if "others can access" in r.getMessage()]
    assert len(lines) == 1 and "chmod 0640" in lines[0]


async def test_security_headers_on_every_response(start_daemon: Any, tmp_path: Path) -> None:
    """CSP, nosniff, Referrer-Policy on pages, errors and frames; frames are no-store."""
    rd = await start_daemon(auth_yaml(tmp_path))
    right = {"Authorization": basic("anna", PASSWORD)}
    for path, headers in (("/login.html", {}), ("/snapshot.jpg", {}), ("/snapshot.jpg", right)):
        _, got, _ = await rd.get(path, headers=headers)
        csp = got["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert got["X-Content-Type-Options"] == "nosniff"
        assert got["Referrer-Policy"] == "no-referrer"
    assert got["Cache-Control"] == "no-store"


async def test_secrets_stay_out_of_logs_and_state(
    start_daemon: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Passwords, hashes and tokens never reach the log or /api/state."""
    with caplog.at_level(logging.DEBUG):
        rd = await start_daemon(auth_yaml(tmp_path, ", lock_after: 3"))
        _, token = Shares(tmp_path / "state" / "shares.json").create("fish", 600)
        _, cookie = await login(rd, "bob")
        session = cookie.split(";")[0]
        _, _, body = await rd.get("/api/state", headers={"Cookie": session})
        await rd.get("/api/state", headers={"Authorization": basic("anna", PASSWORD)})
        await rd.get(f"/share/{token}")
        for _ in range(5):
            await login(rd, "anna", "my-secret-guess")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed logins" in logged  # the burst was logged ...
    credentials = basic("anna", PASSWORD).split()[1]
    secrets = ("my-secret-guess", PASSWORD, credentials, "scrypt$", token, session.split("=")[1])
    for secret in secrets:
        assert secret not in logged  # ... without the secrets
        assert secret.encode() not in body


async def test_mjpeg_stream_needs_credentials_and_plays_with_basic(
    start_daemon: Any, tmp_path: Path
) -> None:
    """/stream.mjpg: 401 without credentials (no part sent); curl and ffmpeg with Basic play it."""
    rd = await start_daemon(auth_yaml(tmp_path))
    status, _, body = await rd.get("/stream/fish.mjpg")
    assert status == 401 and b"\xff\xd8" not in body
    curl = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "--max-time", "2", "-u", f"bob:{PASSWORD}", rd.url("/stream/fish.mjpg")],
        capture_output=True, timeout=timeout(30), check=False,
    )  # fmt: skip
    assert curl.returncode == 28  # stopped by --max-time while the stream was flowing
    assert curl.stdout.count(b"\xff\xd8") >= 2
    url = with_password(rd.url("/stream/fish.mjpg"))
    await asyncio.to_thread(ffmpeg_first_frame, url, tmp_path / "part.png")
