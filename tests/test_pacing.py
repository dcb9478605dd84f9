"""pacing.py: the in-flight bound for push streams and protocol 2, its wait, and the kernel counts it reads."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import check_jpeg, split_v2, timeout, ws_connect
from websockets.exceptions import ConnectionClosed

from pyimagestreamd import pacing


def test_in_flight_may_reach_the_gain_times_the_bdp() -> None:
    """2 Mbit/s and 100 ms: 25,000 bytes fill the path; IN_FLIGHT_GAIN times that may wait."""
    limit = pacing.in_flight_limit(1448, 0.1, 250_000)
    assert limit == int(pacing.IN_FLIGHT_GAIN * 25_000)
    assert limit > 25_000  # an estimate below the link's rate can still grow


def test_in_flight_bound_never_drops_below_a_few_segments() -> None:
    """Without measurements yet (rate 0, RTT 0), a few segments may still be in flight."""
    assert pacing.in_flight_limit(1448, 0.0, 0.0) == pacing.MIN_IN_FLIGHT_SEGMENTS * 1448
    assert pacing.in_flight_limit(0, 0.0, 0.0) == pacing.MIN_IN_FLIGHT_SEGMENTS * 536


def test_the_rate_is_the_largest_of_the_last_seconds() -> None:
    """A low sample does not lower the estimate; a high one is forgotten after the window."""
    rate = pacing.RateMax()
    assert rate.add(1_000_000, 0.0) == 1_000_000
    assert rate.add(200_000, 0.5) == 1_000_000
    assert rate.add(300_000, 1.5) == 1_000_000
    span = pacing.RATE_BUCKET * pacing.RATE_BUCKETS
    assert rate.add(250_000, span + 0.1) == 300_000
    assert rate.add(100_000, 3 * span) == 100_000


def test_poll_delay_is_bounded_both_ways() -> None:
    """The excess's transfer time, never a busy loop, never past a quarter RTT or the maximum."""
    assert pacing.poll_delay(25_000, 250_000, 0.1) == pytest.approx(0.025)
    assert pacing.poll_delay(1, 1e9, 0.1) == pacing.IN_FLIGHT_POLL_MIN
    assert pacing.poll_delay(10**9, 250_000, 0.1) == pytest.approx(0.025)
    assert pacing.poll_delay(10**9, 250_000, 10.0) == pacing.IN_FLIGHT_POLL_MAX
    assert pacing.poll_delay(10**9, 0.0, 0.0) == pacing.IN_FLIGHT_POLL_MIN


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            yield client, peer


def test_kernel_counts_on_a_real_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    """queued_bytes and unsent_bytes see what a reader that does not read leaves (0 for what
    is not a socket); path_estimate reads tcp_info."""
    sender, reader = pair
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender.setblocking(False)
    sent = 0
    try:
        while sent < 1 << 22:
            sent += sender.send(b"x" * 65536)
    except BlockingIOError:
        pass
    queued = pacing.queued_bytes(sender.fileno())
    # The reader's window is full: some of it was not even sent.
    assert 0 < pacing.unsent_bytes(sender.fileno()) <= queued
    mss, min_rtt, rate = pacing.path_estimate(sender)
    assert mss > 0 and min_rtt >= 0 and rate >= 0
    assert pacing.path_estimate(None) == (0, 0.0, 0.0)
    read_end, write_end = os.pipe()
    try:
        assert pacing.queued_bytes(write_end) == pacing.unsent_bytes(write_end) == 0
    finally:
        os.close(read_end)
        os.close(write_end)


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


class _Out:
    """A connection's output as the gate sees it, over a real socket (nothing buffered)."""

    def __init__(self, sock: socket.socket) -> None:
        self.transport: Any = _Transport(sock)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending_output = 0

    async def drained(self) -> None:
        return None


async def test_in_flight_wait_ends_at_its_bound(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledgements that never come: the push gate gives up after its timeout."""
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: 1 << 30)
    gate = pacing.SendGate(_Out(pair[0]))
    await asyncio.wait_for(gate.wait_ready(timeout(1)), timeout(5))  # WebSocket: no bound
    gate.bound_in_flight = True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gate.wait_ready(0.3), timeout(5))


async def test_in_flight_wait_ends_when_the_client_leaves(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that goes while the gate waits for acknowledgements ends the wait at once."""
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: 1 << 30)
    out = _Out(pair[0])
    gate = pacing.SendGate(out)
    gate.bound_in_flight = True
    waiting = asyncio.ensure_future(gate.wait_ready(timeout(30)))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    out.closed.set_result(None)
    await asyncio.wait_for(waiting, timeout(2))


async def test_protocol_2_waits_for_the_in_flight_bound_the_original_protocol_does_not(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledgements that never come: protocol 2 gets no frame and is dropped, the original gets its."""
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: 1 << 30)
    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, send_timeout: 1}\n"
        "cameras:\n  cam: {width: 64, height: 48, fps: 10}\n"
    )
    async with ws_connect(rd) as ws:
        await ws.send("next")
        async with asyncio.timeout(timeout(10)):
            check_jpeg(await ws.recv())
    async with ws_connect(rd, v2=True) as ws:
        await ws.send('{"type": "next"}')
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout(10)):
                while True:
                    message = await ws.recv()
                    assert isinstance(message, str), "a frame passed the in-flight bound"
    assert (await rd.state())["aborted"]["stalled"] == 1


async def test_protocol_2_frames_say_how_long_their_credit_was_held_at_the_gate(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credit held at the in-flight bound: its frame's "held" covers the hold, one sent at once not."""
    hold = 1.0
    holding = False
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: (1 << 30) if holding else 0)
    rd = await start_daemon(
        "server: {listen: 127.0.0.1, port: 0, send_timeout: 30}\n"
        "cameras:\n  cam: {width: 64, height: 48, fps: 10}\n"
    )
    async with ws_connect(rd, v2=True) as ws:

        async def frame() -> dict[str, Any]:
            async with asyncio.timeout(timeout(10)):
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        meta, jpeg = split_v2(message)
                        check_jpeg(jpeg)
                        return meta

        await ws.send('{"type": "next"}')
        at_once = await frame()
        holding = True
        await ws.send('{"type": "next"}')
        await asyncio.sleep(hold)
        holding = False
        held = await frame()
    assert held["held"] >= hold - 0.05, held
    # The frame is the newest when the gate opens, not the one waiting when the credit came.
    assert held["age"] < held["held"], held
    assert at_once["held"] < hold, at_once


async def test_a_drained_connection_passes_the_push_gate_on_one_look(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most the smallest in-flight limit queued: ready without asking unsent bytes or tcp_info."""
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: pacing.MIN_IN_FLIGHT)

    def not_asked(*args: Any) -> Any:
        raise AssertionError("asked the kernel more than the queued bytes")

    monkeypatch.setattr(pacing, "unsent_bytes", not_asked)
    monkeypatch.setattr(pacing, "path_estimate", not_asked)
    gate = pacing.SendGate(_Out(pair[0]))
    gate.bound_in_flight = True
    await asyncio.wait_for(gate.wait_ready(timeout(1)), timeout(5))


async def test_one_byte_over_the_smallest_in_flight_limit_waits_for_the_path(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte over MIN_IN_FLIGHT on a path whose limit is that smallest one: the gate stays shut."""
    monkeypatch.setattr(pacing, "queued_bytes", lambda fd: pacing.MIN_IN_FLIGHT + 1)
    monkeypatch.setattr(pacing, "unsent_bytes", lambda fd: 0)
    monkeypatch.setattr(pacing, "path_estimate", lambda sock: (536, 0.0, 0.0))
    assert pacing.in_flight_limit(536, 0.0, 0.0) == pacing.MIN_IN_FLIGHT
    gate = pacing.SendGate(_Out(pair[0]))
    gate.bound_in_flight = True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gate.wait_ready(0.3), timeout(5))
