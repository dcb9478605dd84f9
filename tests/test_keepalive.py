"""A kept-alive HTTP connection between requests over real sockets: idle, half a head, the next."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any

import pytest
from conftest import timeout

from pyimagestreamd import httpd

FAST = "cameras:\n  cam:\n    width: 320\n    height: 240\n    fps: 100\n    stop_delay: 0.3\n"
KEEP = "server: {listen: 127.0.0.1, port: 0, request_timeout: 0.5, idle_timeout: 1.5}\n" + FAST
STATE = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def answered(sock: socket.socket) -> bytes:
    """One response read off a kept-alive socket: its head, after its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return head


def seconds_until_closed(sock: socket.socket) -> float:
    start = time.monotonic()
    assert sock.recv(100) == b""
    return time.monotonic() - start


def timeout_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    return [line for line in lines if "timeout" in line]


async def test_idle_kept_alive_connection_closes_quietly_after_idle_timeout(
    start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A kept-alive connection that sends nothing more is closed after idle_timeout, unrefused."""
    rd = await start_daemon(KEEP)

    def idle() -> float:
        with socket.create_connection(("127.0.0.1", rd.port), timeout=timeout(10)) as sock:
            sock.sendall(STATE)
            assert answered(sock).startswith(b"HTTP/1.1 200")
            return seconds_until_closed(sock)

    with caplog.at_level(logging.DEBUG):
        elapsed = await asyncio.to_thread(idle)
    assert 1.4 < elapsed < timeout(4), elapsed
    assert (await rd.state())["refused"]["timeout"] == 0
    assert timeout_lines(caplog) == []


async def test_half_sent_next_head_is_closed_and_refused_after_request_timeout(
    start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """After two requests served, half a third head is closed after request_timeout, refused."""
    rd = await start_daemon(KEEP)

    def half() -> float:
        with socket.create_connection(("127.0.0.1", rd.port), timeout=timeout(10)) as sock:
            for _ in range(2):
                sock.sendall(STATE)
                assert answered(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /api/state HTTP/1.1\r\nHost: 12")
            return seconds_until_closed(sock)

    with caplog.at_level(logging.DEBUG):
        elapsed = await asyncio.to_thread(half)
    assert 0.4 < elapsed < 1.4, elapsed  # request_timeout, not idle_timeout
    state = await rd.state()
    assert state["refused"]["timeout"] == 1
    assert state["http_requests"] == 3  # the two on that connection, and this one
    assert len(timeout_lines(caplog)) == 1, caplog.text
    _, _, metrics = await rd.get("/metrics")
    assert b'pyimagestream_refused_connections_total{reason="timeout"} 1.0' in metrics


async def test_rest_of_a_pipelined_burst_gets_request_timeout_and_is_refused(
    start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """One request and half the next in one send: the half is closed after request_timeout."""
    rd = await start_daemon(KEEP)

    def burst() -> float:
        with socket.create_connection(("127.0.0.1", rd.port), timeout=timeout(10)) as sock:
            sock.sendall(STATE + b"GET /api/state HTTP/1.1\r\nHost: 12")
            assert answered(sock).startswith(b"HTTP/1.1 200")
            return seconds_until_closed(sock)

    with caplog.at_level(logging.DEBUG):
        elapsed = await asyncio.to_thread(burst)
    assert 0.3 < elapsed < 1.3, elapsed  # request_timeout from the answer on, not idle_timeout
    assert (await rd.state())["refused"]["timeout"] == 1
    assert len(timeout_lines(caplog)) == 1, caplog.text


async def test_unread_input_is_what_arrived_since_the_last_read() -> None:
    """has_unread_input is true from an arrival until read() takes it (the timeout's race)."""
    conn = httpd.Connection(None, "peer", None)  # type: ignore[arg-type]
    assert not conn.has_unread_input
    conn.data_received(b"GET / HT")
    assert conn.has_unread_input
    assert await conn.read() == b"GET / HT"
    assert not conn.has_unread_input
