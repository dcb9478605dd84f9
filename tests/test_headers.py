"""Security headers on every response of a real daemon: each route, each refusal, over
plain HTTP and TLS, read from a raw socket; and the frame-ancestors allow-list."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from conftest import timeout
from test_auth import PASSWORD, auth_yaml, basic
from test_tls import make_ca, make_leaf

from pyimagestreamd.config import parse_config
from pyimagestreamd.schema import ConfigError

Head = tuple[int, dict[str, str]]


def read_head(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(port: int, request: bytes, context: ssl.SSLContext | None = None) -> Head:
    """Send raw request bytes, read the response head only (a stream never ends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as raw:
        if context is None:
            data = read_head(raw, request)
        else:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                data = read_head(tls, request)
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def get(path: str, *extra: str, method: str = "GET", auth: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if auth:
        lines.append(f"Authorization: {basic('anna', PASSWORD)}")
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


UPGRADE = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13")
KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

# (what, request, expected status): every route and every way a request is refused.
CASES: list[tuple[str, bytes, int]] = [
    ("login page", get("/login.html", auth=False), 200),
    ("page without login", get("/", auth=False), 303),
    ("page", get("/"), 200),
    ("script", get("/app.js"), 200),
    ("snapshot", get("/snapshot.jpg"), 200),
    ("snapshot without credentials", get("/snapshot.jpg", auth=False), 401),
    ("snapshot, wrong password", get("/snapshot.jpg", "Authorization: Basic eDp5"), 401),
    ("MJPEG stream head", get("/stream.mjpg"), 200),
    ("MJPEG stream HEAD", get("/stream.mjpg", method="HEAD"), 200),
    ("MJPEG stream without credentials", get("/stream.mjpg", auth=False), 401),
    ("MJPEG stream, bad fps", get("/stream.mjpg?fps=0"), 400),
    ("state", get("/api/state"), 200),
    ("metrics", get("/metrics"), 200),
    ("session API, no session", get("/api/session"), 401),
    ("camera settings", get("/api/camera/fish/controls"), 200),
    ("camera settings POST, foreign origin",
     get("/api/camera/fish/controls", "Origin: http://evil.example", "Content-Length: 2",
         method="POST") + b"{}", 403),
    ("login by GET", get("/api/login", "X-PyImageStream: 1"), 405),
    ("login POST, foreign origin",
     get("/api/login", "X-PyImageStream: 1", "Origin: http://evil.example", method="POST"), 403),
    ("login POST", get("/api/login", "X-PyImageStream: 1", method="POST"), 200),
    ("missing file", get("/nothing.html"), 404),
    ("unknown camera", get("/snapshot/nobody.jpg"), 404),
    ("share of another camera", get("/share/nonsense", auth=False), 404),
    ("POST", get("/snapshot.jpg", method="POST"), 405),
    ("a request body", get("/snapshot.jpg", "Content-Length: 3") + b"abc", 413),
    ("foreign Host", b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421),
    ("two Host headers", get("/", "Host: 127.0.0.1"), 400),
    ("garbage", b"NOT HTTP AT ALL\r\n\r\n", 400),
    ("too many headers", get("/", *(f"X-{i}: {i}" for i in range(70))), 431),
    ("WebSocket, foreign origin", get("/websocket", *UPGRADE, KEY, "Origin: http://evil.example"), 403),
    ("WebSocket without credentials", get("/websocket", *UPGRADE, KEY, auth=False), 401),
    ("WebSocket without key", get("/websocket", *UPGRADE), 400),
    ("WebSocket without Upgrade", get("/websocket"), 426),
    ("WebSocket accepted", get("/websocket", *UPGRADE, KEY), 101),
]  # fmt: skip


def assert_secured(what: str, headers: dict[str, str], secure: bool) -> None:
    csp = headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "script-src 'self';" in csp, what
    assert "style-src 'self';" in csp and "unsafe" not in csp, what
    assert "frame-ancestors 'none'" in csp, what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy") == "no-referrer", what
    assert headers.get("cross-origin-opener-policy") == "same-origin", what
    assert ("strict-transport-security" in headers) is secure, what


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
async def test_every_route_and_refusal_carries_the_security_headers(
    start_daemon: Any, tmp_path: Path, secure: bool
) -> None:
    """Pages, 304s, snapshots, the MJPEG head, every error and WebSocket answer: all secured."""
    text = auth_yaml(tmp_path)
    context = None
    if secure:
        make_ca(tmp_path)
        make_leaf(tmp_path, "leaf")
        text = (
            f"server: {{listen: 127.0.0.1, port: 0, tls: {{certificate: {tmp_path}/leaf.pem,"
            f" key: {tmp_path}/leaf.key}}}}\n" + text
        )
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    rd = await start_daemon(text)
    cases = list(CASES)
    _, first = await asyncio.to_thread(exchange, rd.port, get("/app.js"), context)
    cases.append(("not modified", get("/app.js", f"If-None-Match: {first['etag']}"), 304))
    for what, request, status in cases:
        got, headers = await asyncio.to_thread(exchange, rd.port, request, context)
        assert got == status, what
        assert_secured(what, headers, secure)


async def test_the_local_only_refusal_carries_the_security_headers(
    start_daemon: Any, tmp_path: Path
) -> None:
    """No users: the 403 page for a public address is secured like every other answer."""
    rd = await start_daemon(f"auth: {{users_file: {tmp_path}/none}}\n")
    request = get("/", "X-Forwarded-For: 203.0.113.9", auth=False)
    status, headers = await asyncio.to_thread(exchange, rd.port, request)
    assert status == 403
    assert_secured("local-only 403", headers, False)


async def test_frame_ancestors_allow_list_reaches_every_response(
    start_daemon: Any, tmp_path: Path
) -> None:
    """server.frame_ancestors names who may frame the page and stream; X-Frame-Options goes."""
    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0,"
        ' frame_ancestors: ["https://ha.example:8123", "\'self\'"]}\n'
        f"auth: {{users_file: {tmp_path}/none}}\n"
    )
    for request in (
        get("/", auth=False),
        get("/stream.mjpg", auth=False),
        get("/snapshot/nobody.jpg", auth=False),
        b"NOT HTTP\r\n\r\n",
        get("/websocket", *UPGRADE, KEY, auth=False),
    ):
        _, headers = await asyncio.to_thread(exchange, rd.port, request)
        csp = headers["content-security-policy"]
        assert csp.endswith("frame-ancestors https://ha.example:8123 'self'"), request
        assert "x-frame-options" not in headers, request


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '["https://ha.example; script-src *"]',
            "server.frame_ancestors: invalid value 'https://ha.example; script-src *': expected"
            " origins like 'https://ha.example' (scheme://host[:port]) or \"'self'\" (line 1)",
        ),
        (
            "https://ha.example",
            "server.frame_ancestors: invalid value 'https://ha.example': expected a list of"
            " origins like 'https://ha.example' (scheme://host[:port]) or \"'self'\" (line 1)",
        ),
        (
            '["*"]',
            "server.frame_ancestors: invalid value '*': expected origins like"
            " 'https://ha.example' (scheme://host[:port]) or \"'self'\" (line 1)",
        ),
    ],
)
def test_frame_ancestors_are_validated(value: str, message: str) -> None:
    """A value that is not a list of origins names the key; nothing can break the header."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"server: {{frame_ancestors: {value}}}\n")
    assert str(info.value) == message
