"""The HTTP front door over real sockets: keep-alive, HEAD, 304, pipelining and its bounds."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import logging
import re
import socket
import time
from typing import Any

import pytest
from conftest import RunningDaemon, check_jpeg, timeout, ws_connect
from websockets.exceptions import InvalidStatus

from pyimagestreamd import httpd, static

FAST = "cameras:\n  cam:\n    width: 320\n    height: 240\n    fps: 100\n    stop_delay: 0.3\n"


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes, read until the server closes (bounded by the socket timeout)."""
    with socket.create_connection((host, port), timeout=timeout(20)) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


async def test_keep_alive_serves_several_requests_on_one_connection(
    start_daemon: Any,
) -> None:
    """One TCP connection carries a page, a file, the state and a snapshot, one after another."""
    rd = await start_daemon(FAST)

    def run() -> list[tuple[int, int]]:
        conn = http.client.HTTPConnection("127.0.0.1", rd.port, timeout=timeout(10))
        out = []
        for path in ("/", "/app.js", "/api/state", "/snapshot.jpg", "/index.html"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            out.append((resp.status, len(body)))
            # http.client reconnects silently if the server closed: check it did not.
            assert conn.sock is not None, f"the server closed the connection after {path}"
        local = conn.sock.getsockname()
        conn.close()
        return [*out, local]  # type: ignore[list-item]

    results = await asyncio.to_thread(run)
    assert [status for status, _ in results[:-1]] == [200] * 5
    state = await rd.state()
    # The five requests above plus this one: the first connection stayed one connection.
    assert state["http_requests"] >= 6
    assert state["connections"] == 2


async def test_head_and_conditional_get_of_static_files(start_daemon: Any) -> None:
    """HEAD has the GET's headers and no body; ETag or Last-Modified revalidation gives 304."""
    rd = await start_daemon(FAST)
    status, headers, body = await rd.get("/index.html")
    assert status == 200 and body
    etag, modified = headers["ETag"], headers["Last-Modified"]
    status, head_headers, head_body = await rd.get("/index.html", method="HEAD")
    assert (status, head_body) == (200, b"")
    assert head_headers["Content-Length"] == str(len(body))
    assert head_headers["ETag"] == etag
    status, _, body304 = await rd.get("/index.html", headers={"If-None-Match": etag})
    assert (status, body304) == (304, b"")
    status, _, _ = await rd.get("/index.html", headers={"If-Modified-Since": modified})
    assert status == 304
    status, _, _ = await rd.get("/index.html", headers={"If-None-Match": '"other"'})
    assert status == 200


async def test_text_files_go_gzip_compressed_to_clients_that_accept_it(start_daemon: Any) -> None:
    """A script goes gzip-compressed (own ETag, Vary) to who accepts it; images, frames never."""
    rd = await start_daemon(FAST)
    _, plain_headers, plain = await rd.get("/app.js")
    assert "Content-Encoding" not in plain_headers
    assert plain_headers["Vary"] == "Accept-Encoding"
    gz = {"Accept-Encoding": "br, gzip;q=0.8"}
    status, headers, body = await rd.get("/app.js", headers=gz)
    assert (status, headers["Content-Encoding"], headers["Vary"]) == (
        200,
        "gzip",
        "Accept-Encoding",
    )
    assert gzip.decompress(body) == plain
    assert len(body) < len(plain) / 2
    assert headers["Content-Length"] == str(len(body))
    assert headers["ETag"] != plain_headers["ETag"]
    status, head_headers, head_body = await rd.get("/app.js", method="HEAD", headers=gz)
    assert (status, head_body, head_headers["Content-Length"]) == (200, b"", str(len(body)))
    # Each representation revalidates with its own tag.
    status, _, _ = await rd.get("/app.js", headers={**gz, "If-None-Match": headers["ETag"]})
    assert status == 304
    status, _, _ = await rd.get("/app.js", headers={**gz, "If-None-Match": plain_headers["ETag"]})
    assert status == 200
    for refused in ("gzip;q=0", "identity", "deflate, br"):
        _, headers, body = await rd.get("/app.js", headers={"Accept-Encoding": refused})
        assert "Content-Encoding" not in headers and body == plain, refused
    for path in ("/icon-192.png", "/snapshot.jpg"):
        _, headers, _ = await rd.get(path, headers=gz)
        assert "Content-Encoding" not in headers, path
    reader, writer = await asyncio.open_connection("127.0.0.1", rd.port)
    writer.write(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(10))
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200") and b"content-encoding" not in head.lower()


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("GZIP", True), ("deflate, gzip ; q=0.5", True), ("gzip;q=0", False),
     ("gzip;q=0.000", False), ("gzip;q=x", False), ("x-gzip", False), ("*", False), ("", False)],
)  # fmt: skip
def test_accept_encoding_is_read_with_its_qualities(header: str, accepted: bool) -> None:
    """gzip counts only when listed by name with a quality above zero."""
    assert static.accepts_gzip(header) is accepted


async def test_pipelined_requests_are_answered_in_order(start_daemon: Any) -> None:
    """Three requests sent at once get three answers, in order, on the same connection."""
    rd = await start_daemon(FAST)
    requests = b"".join(
        f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        for p in ("/api/state", "/missing", "/index.html")
    )
    answer = await asyncio.to_thread(
        exchange,
        rd.port,
        requests + b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200", b"200"]


async def test_slow_request_head_is_dropped_after_request_timeout(start_daemon: Any) -> None:
    """A client that dribbles its request head (slowloris) is closed after request_timeout."""
    rd = await start_daemon("server: {listen: 127.0.0.1, port: 0, request_timeout: 0.5}\n" + FAST)

    def dribble() -> float:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", rd.port), timeout=timeout(10)) as sock:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\n")
                for _ in range(100):
                    sock.sendall(b"X-a: b\r\n")
                    time.sleep(0.05)
                    # The server closed: the next send or recv fails or sees EOF.
            except OSError:
                return time.monotonic() - start
            return time.monotonic() - start if sock.recv(100) == b"" else -1.0

    elapsed = await asyncio.to_thread(dribble)
    assert 0.4 < elapsed < timeout(3), elapsed
    assert (await rd.state())["refused"]["timeout"] >= 1


async def test_oversize_head_and_too_many_headers_get_431(start_daemon: Any) -> None:
    """A request head over 16 kB, or with too many header lines, is answered 431 and closed."""
    rd = await start_daemon(FAST)
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await asyncio.to_thread(exchange, rd.port, big)).startswith(b"HTTP/1.1 431")
    many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-a: b\r\n" * 100 + b"\r\n"
    assert (await asyncio.to_thread(exchange, rd.port, many)).startswith(b"HTTP/1.1 431")
    assert (await rd.state())["refused"]["oversize"] == 2


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", "oversize"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-a: b\r\n" * 100 + b"\r\n", "oversize"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token s3cr3t\r\n\r\n", "protocol_error"),
    ],
)
async def test_each_refused_head_logs_one_debug_line_without_its_bytes(
    start_daemon: Any, caplog: pytest.LogCaptureFixture, head: bytes, reason: str
) -> None:
    """An oversize or malformed head logs one DEBUG 'refused (reason)' line, not its content."""
    rd = await start_daemon(FAST)
    with caplog.at_level(logging.DEBUG):
        await asyncio.to_thread(exchange, rd.port, head)
        await rd.state()  # the connection's task has ended by the time this is answered
    refused = [r for r in caplog.records if "refused (" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.DEBUG], caplog.text
    line = refused[0].getMessage()
    assert re.fullmatch(rf"client \S+: refused \({reason}\): .{{1,100}}", line), line
    assert "s3cr3t" not in caplog.text and "aaaa" not in caplog.text


@pytest.mark.parametrize("path", ["/websocket", "/api/state", "/"])
async def test_duplicate_host_or_origin_is_400(start_daemon: Any, path: str) -> None:
    """Two Host or two Origin headers are a bad request, answered 400 with a reason."""
    rd = await start_daemon(FAST)
    for dup in (b"Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n",
                b"Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"):  # fmt: skip
        request = (
            f"GET {path} HTTP/1.1\r\n".encode() + dup + b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = await asyncio.to_thread(exchange, rd.port, request)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


async def test_methods_and_bodies_are_refused(start_daemon: Any) -> None:
    """POST/PUT get 405 with Allow; a request with a body gets 405 or 413, never a hang."""
    rd = await start_daemon(FAST)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = await rd.get("/", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    body = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
    assert (await asyncio.to_thread(exchange, rd.port, body)).startswith(b"HTTP/1.1 413")


REBIND_PATHS = ["/websocket", "/snapshot.jpg", "/api/state", "/", "/stream.mjpg", "/metrics"]


@pytest.mark.parametrize("path", REBIND_PATHS)
async def test_dns_rebinding_host_is_refused_on_every_route(start_daemon: Any, path: str) -> None:
    """Host: evil.example with a matching Origin (a rebinding page) is refused with 421."""
    rd = await start_daemon(FAST)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: evil.example:{rd.port}\r\n"
        f"Origin: http://evil.example:{rd.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    answer = await asyncio.to_thread(exchange, rd.port, request)
    assert answer.startswith(b"HTTP/1.1 421"), answer[:200]
    assert b"\xff\xd8" not in answer  # no JPEG
    assert (await rd.state())["refused"]["host"] == 1


async def test_allowed_hosts_and_local_names_are_accepted(start_daemon: Any) -> None:
    """IP literals, localhost, this machine's name and server.allowed_hosts pass the check."""
    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, allowed_hosts: [cam.example.org]}\n" + FAST
    )
    for host in ("127.0.0.1", f"127.0.0.1:{rd.port}", "[::1]:80", "localhost",
                 socket.gethostname(), f"{socket.gethostname().split('.')[0]}.local",
                 "cam.example.org", "CAM.example.org:443"):  # fmt: skip
        status, _, _ = await rd.get("/api/state", headers={"Host": host})
        assert status == 200, host
    for host in ("evil.example", "cam.example.org.evil.example", "127.0.0.1.nip.io"):
        status, _, _ = await rd.get("/api/state", headers={"Host": host})
        assert status == 421, host


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",
        "null",
        "file://",
        "http://127.0.0.1:1",
        "http://localhost:{port}",
    ],
)
async def test_websocket_origin_must_match_scheme_host_and_port(
    start_daemon: Any, origin: str
) -> None:
    """An https page, a file:// or null origin, or another port is not this server's origin."""
    rd: RunningDaemon = await start_daemon(FAST)
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(rd, origin=origin.format(port=rd.port)):
            pass
    assert info.value.response.status_code == 403
    assert (await rd.state())["refused"]["origin"] == 1
    async with ws_connect(rd, origin=f"http://127.0.0.1:{rd.port}") as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))


def test_the_rest_of_parts_after_a_partial_write_is_their_unsent_bytes() -> None:
    """Whatever the kernel took of a frame's parts, what is left is the rest of their join."""
    parts = [b"\x82\x7e", b"meta", b"", b"jpeg-bytes"]
    whole = b"".join(parts)
    for sent in range(len(whole) + 1):
        assert httpd.unsent_parts(parts, sent) == whole[sent:]
