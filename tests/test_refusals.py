"""Every refused connection, whatever the reason: counted, one DEBUG line, no secret logged.

Each case sends a request the front door refuses, three times, on a real daemon with real
sockets, every one carrying credentials (a Basic password, a session cookie). The log must
hold exactly one DEBUG "client ADDR: refused (REASON): ..." line per refused connection,
none of the credentials anywhere, and, where the refusal is one an operator is warned about,
a single WARNING for the three (rate-limited).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import timeout, ws_connect
from test_auth import PASSWORD, auth_yaml, basic
from test_tls import make_ca, make_leaf
from websockets.exceptions import ConnectionClosed

from pyimagestreamd.credentials import SESSION_COOKIE
from pyimagestreamd.posts import MAX_BODY

CAMERA = "cameras:\n  cam:\n    width: 320\n    height: 240\n    fps: 100\n    stop_delay: 0.3\n"
WRONG = "s3cr3t-password"
COOKIE = "s3cr3t-cookie-value"
SECRETS = (WRONG, COOKIE, PASSWORD, basic("bob", WRONG).split()[1], basic("anna", PASSWORD))
# Sent with every request: a session cookie that is none of ours (a secret all the same).
CREDENTIALS = f"Cookie: {SESSION_COOKIE}={COOKIE}\r\n"
WS_HEAD = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def head(line: str, *headers: str, host: str = "127.0.0.1", body: str = "") -> bytes:
    """A request head with our Host (unless told), the cookie, Basic credentials (bob's wrong
    ones unless `headers` has anna's right ones) and `headers`."""
    auth = f"Authorization: {basic('bob', WRONG)}\r\n"
    if not any(h.startswith("Authorization") for h in headers):
        headers = (auth, *headers)
    return f"{line} HTTP/1.1\r\nHost: {host}\r\n{CREDENTIALS}{''.join(headers)}\r\n{body}".encode()


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes (bounded by the socket timeout); a reset
    (closed unread, as a refused address is) ends it too."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(20)) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    return got


@dataclass
class Case:
    reason: str
    request: bytes | None = None  # raw bytes; None: a websockets client to `ws_path`
    config: str = ""  # YAML; "users": anna and bob exist; "tls": HTTPS on the port
    status: bytes = b""  # what a raw request is answered with (b"": closed unanswered)
    warns: bool = False  # an operator is warned, once per minute
    hold: str = ""  # what is held open first: "stream" (an MJPEG client) or "socket"
    ws_path: str = "/websocket"
    ws_code: int = 0


ANNA = f"Authorization: {basic('anna', PASSWORD)}\r\n"
CASES = {
    "host": Case("host", head("GET /", host="evil.example"), status=b"421"),
    "two hosts": Case("protocol_error", head("GET /", "Host: 127.0.0.1\r\n"), status=b"400"),
    "two origins": Case(
        "protocol_error", head("GET /", "Origin: http://127.0.0.1\r\n" * 2), status=b"400"
    ),
    "bad fps": Case(
        "protocol_error", head("GET /stream.mjpg?fps=x", "Connection: close\r\n"), status=b"400"
    ),
    "handshake": Case(
        "protocol_error",
        head("GET /websocket", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
        status=b"400",
    ),
    "unknown camera": Case("protocol_error", ws_path="/websocket/nosuch", ws_code=4404),
    "method": Case("method", head("DELETE /snapshot.jpg"), status=b"405"),
    "account method": Case("method", head("GET /api/logout"), status=b"405"),
    "settings method": Case(
        "method", head("PUT /api/camera/fish/controls", ANNA), config="users", status=b"405"
    ),
    "body": Case("oversize", head("GET /", "Content-Length: 5\r\n", body="hello"), status=b"413"),
    "settings body": Case(
        "oversize",
        head("GET /api/camera/fish/controls", ANNA, "Content-Length: 5\r\n", body="hello"),
        config="users",
        status=b"413",
    ),
    "account body": Case(
        "oversize", head("GET /api/session", "Content-Length: 5\r\n", body="hello"), status=b"413"
    ),
    "post chunked over": Case(
        "oversize",
        head(
            "POST /api/logout",
            "Transfer-Encoding: chunked\r\n",
            body=f"{MAX_BODY + 1:x}\r\n{'a' * (MAX_BODY + 1)}\r\n0\r\n\r\n",
        ),
        status=b"413",
    ),
    "post over": Case(
        "oversize", head("POST /api/logout", "Content-Length: 99999\r\n"), status=b"413"
    ),
    "post slow": Case(
        "timeout",
        head("POST /api/logout", "Content-Length: 10\r\n", body="ab"),
        config="server: {listen: 127.0.0.1, port: 0, request_timeout: 0.3}\n",
        status=b"408",
    ),
    "head slow": Case(
        "timeout",
        head("GET /")[:-2],
        config="server: {listen: 127.0.0.1, port: 0, request_timeout: 0.3}\n",
    ),
    "ws origin": Case(
        "origin",
        head("GET /websocket", WS_HEAD, "Origin: http://evil.example\r\n"),
        status=b"403",
        warns=True,
    ),
    "post origin": Case(
        "origin",
        head("POST /api/logout", "Origin: http://evil.example\r\n"),
        status=b"403",
        warns=True,
    ),
    "auth": Case("auth", head("GET /snapshot.jpg"), config="users", status=b"401"),
    "not local": Case(
        "auth",
        head("GET /snapshot.jpg", "X-Forwarded-For: 203.0.113.9\r\n"),
        config="server: {listen: 127.0.0.1, port: 0, trusted_proxies: [127.0.0.1]}\n",
        status=b"403",
        warns=True,
    ),
    "full stream": Case(
        "full",
        head("GET /stream.mjpg"),
        config="server: {listen: 127.0.0.1, port: 0, max_clients: 1}\n",
        status=b"503",
        warns=True,
        hold="stream",
    ),
    "full websocket": Case(
        "full",
        config="server: {listen: 127.0.0.1, port: 0, max_clients: 1}\n",
        warns=True,
        hold="stream",
        ws_code=1013,
    ),
    "tls plain": Case("protocol_error", head("GET /"), config="tls", warns=True),
    "tls silent": Case("timeout", b"", config="tls", warns=True),
    "per address": Case(
        "per_address",
        head("GET /"),
        config="server: {listen: 127.0.0.1, port: 0, max_clients_per_address: 1, trusted_proxies: []}\n",
        warns=True,
        hold="socket",
    ),
}


async def refuse_ws(rd: Any, case: Case) -> None:
    """A websockets client with the credentials, accepted and then closed with `ws_code`."""
    headers = {"Cookie": f"{SESSION_COOKIE}={COOKIE}", "Authorization": basic("bob", WRONG)}
    async with ws_connect(rd, case.ws_path, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout(10))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == case.ws_code


async def held(rd: Any, what: str) -> Callable[[], Awaitable[None]]:
    """Open what `what` names and keep it open; returns how to close it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rd.port)
    if what == "stream":
        writer.write(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), timeout(10))).startswith(b"HTTP/1.1 200")
    server = rd.daemon.server
    async with asyncio.timeout(timeout(10)):
        while not (server.clients if what == "stream" else server.connections):
            await asyncio.sleep(0.01)

    async def close() -> None:
        writer.close()
        await writer.wait_closed()

    return close


@pytest.mark.parametrize("name", CASES)
async def test_each_refusal_is_counted_and_logs_one_debug_line_without_secrets(
    start_daemon: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """Three refused connections: counted three times, three DEBUG lines naming the reason
    (one each), no credential in the log, and at most one WARNING."""
    case = CASES[name]
    config = case.config
    if config == "users":
        config = auth_yaml(tmp_path)
    elif config == "tls":
        make_ca(tmp_path)
        make_leaf(tmp_path, "leaf")
        tls = f"{{certificate: {tmp_path}/leaf.pem, key: {tmp_path}/leaf.key}}"
        config = f"server: {{listen: 127.0.0.1, port: 0, request_timeout: 0.3, tls: {tls}}}\n"
        config += CAMERA
    elif config.startswith("server:") or not config:
        config += CAMERA
    rd = await start_daemon(config)
    stats = rd.daemon.server.stats
    release = await held(rd, case.hold) if case.hold else None
    before = stats.refusals[case.reason]
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            if case.request is None:
                await refuse_ws(rd, case)
            else:
                answer = await asyncio.to_thread(exchange, rd.port, case.request)
                assert answer.startswith(b"HTTP/1.1 " + case.status if case.status else b""), answer
        async with asyncio.timeout(timeout(10)):
            while stats.refusals[case.reason] < before + 3:
                await asyncio.sleep(0.01)
    if release is not None:
        await release()
    assert stats.refusals[case.reason] == before + 3
    refused = [r for r in caplog.records if "refused (" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.DEBUG] * 3, caplog.text
    for record in refused:
        line = record.getMessage()
        assert re.fullmatch(rf"client 127\.0\.0\.1: refused \({case.reason}\): .{{5,200}}", line)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    if case.warns:
        assert len(warnings) == 1, caplog.text
    # The daemon's records: the test's websockets client logs its own headers at DEBUG.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.client")
    for secret in SECRETS:
        assert secret not in logged, secret
