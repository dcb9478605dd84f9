"""Hostile WebSocket input against the real daemon: each bad frame closes with its code, quietly.

Raw sockets send what websockets' client never would (bad masks, reserved bits and opcodes,
huge lengths, invalid UTF-8, floods of tiny frames); the daemon must close each such
connection with the close code RFC 6455 gives, log nothing above DEBUG, and keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import check_jpeg, deadline, push_a_frame, recv_v2_frame, timeout, ws_connect
from test_limits import frame, raw_websocket
from test_tls import make_ca, make_leaf
from websockets.asyncio.client import connect

from pyimagestreamd.camera import CameraState

FAST = "cameras:\n  cam: {width: 160, height: 120, fps: 30}\n"
NEXT = b'{"type":"next"}'


def v2_websocket(port: int) -> socket.socket:
    """A raw protocol-2 WebSocket (the subprotocol offered by hand)."""
    return raw_websocket(port, protocol="pyimagestream.v2")


def close_code(sock: socket.socket) -> int | None:
    """Read the server's frames until its close frame; its code (None: the TCP end came first)."""
    buf = b""

    def need(n: int) -> bool:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return False
            buf += chunk
        return True

    with sock:
        while need(2):
            size = buf[1] & 0x7F
            head = 2 + {126: 2, 127: 8}.get(size, 0)
            if not need(head):
                return None
            if size >= 126:
                (size,) = struct.unpack("!H" if size == 126 else "!Q", buf[2:head])
            if not need(head + size):
                return None
            opcode, payload, buf = buf[0] & 0x0F, buf[head : head + size], buf[head + size :]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005
    return None


def take_frame(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, the rest) of the first whole server frame in `buf`, else None."""
    if len(buf) < 2:
        return None
    size = buf[1] & 0x7F
    head = 2 + {126: 2, 127: 8}.get(size, 0)
    if len(buf) < head:
        return None
    if size >= 126:
        (size,) = struct.unpack("!H" if size == 126 else "!Q", buf[2:head])
    if len(buf) < head + size:
        return None
    return buf[0] & 0x0F, buf[head : head + size], buf[head + size :]


def unmasked(opcode: int, payload: bytes) -> bytes:
    return bytes([0x80 | opcode, len(payload)]) + payload


BAD_FRAMES = {
    "unmasked text": (unmasked(0x1, NEXT), 1002),
    "reserved opcode 3": (frame(0x3, b"x"), 1002),
    "reserved opcode 0xB": (frame(0xB, b""), 1002),
    "RSV1 on a small text": (bytes([0xC1]) + frame(0x1, NEXT)[1:], 1002),
    "a continuation out of nowhere": (frame(0x0, b"x"), 1002),
    "a final text inside a fragmented one": (bytes([0x01]) + frame(0x1, b"a")[1:] + frame(0x1, NEXT), 1002),
    "invalid UTF-8 in a small text": (frame(0x1, b"\xff\xfe"), 1007),
    "2**63 bytes announced": (bytes([0x82, 0xFF]) + struct.pack("!Q", 2**63) + os.urandom(4), 1009),
    "1025 bytes announced": (bytes([0x81, 0xFE]) + struct.pack("!H", 1025) + os.urandom(4), 1009),
    "a 126-byte ping": (bytes([0x89, 0xFE]) + struct.pack("!H", 126) + bytes(130), 1002),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_a_bad_frame_closes_with_its_code_and_logs_nothing(
    start_daemon: Any, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed client frame, after a good credit, gets its RFC close code; others go on."""
    rd = await start_daemon(FAST)
    data, code = BAD_FRAMES[name]

    def attack() -> int | None:
        sock = v2_websocket(rd.port)
        sock.sendall(frame(0x1, NEXT) + data)
        return close_code(sock)

    with caplog.at_level(logging.INFO):
        assert await asyncio.to_thread(attack) == code
        async with ws_connect(rd) as ws:  # everyone else is served as before
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.INFO] == []


async def test_a_flood_of_tiny_credits_is_a_protocol_error(start_daemon: Any) -> None:
    """10,000 credits in one write overrun the window: closed with 1008, counted, others served."""
    rd = await start_daemon(FAST)

    def flood() -> int | None:
        sock = v2_websocket(rd.port)
        sock.sendall(frame(0x1, NEXT) * 10_000)
        return close_code(sock)

    assert await asyncio.to_thread(flood) == 1008
    assert (await rd.state())["aborted"]["protocol_error"] == 1
    async with ws_connect(rd) as ws:
        await ws.send("x")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))


async def test_credits_cut_into_single_bytes_still_get_frames(start_daemon: Any) -> None:
    """Credits sent a byte at a time, a ping among them: a frame for each, and the pong."""
    rd = await start_daemon(FAST)

    def slow_credits() -> tuple[int, bytes]:
        sock = v2_websocket(rd.port)
        data = frame(0x1, NEXT) + frame(0x9, b"pi") + frame(0x1, NEXT) * 2
        with sock:
            for i in range(len(data)):
                sock.sendall(data[i : i + 1])
            frames, pong, buf = 0, b"", b""
            while frames < 3 or not pong:
                buf += sock.recv(1 << 16)
                while (taken := take_frame(buf)) is not None:
                    opcode, payload, buf = taken
                    frames += opcode == 0x2
                    if opcode == 0xA:
                        pong = payload
            return frames, pong

    frames, pong = await asyncio.wait_for(asyncio.to_thread(slow_credits), timeout(20))
    assert frames == 3
    assert pong == b"pi"


async def test_a_client_keeping_credits_out_streams_on_and_its_close_is_answered(
    start_daemon: Any,
) -> None:
    """4 credits outstanding (input left in the kernel meanwhile): 60 frames, then a clean close."""
    rd = await start_daemon(FAST)
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(30):
        await ws.recv()  # hello
        for _ in range(4):
            await ws.send(NEXT.decode())
        for _ in range(60):
            _meta, jpeg = await recv_v2_frame(ws)
            check_jpeg(jpeg)
            await ws.send(NEXT.decode())
        await ws.close()
        assert ws.close_code == 1000
    await rd.wait_camera("cam", lambda c: c["viewers"] == 0)


async def frames_after_pause(ws: Any) -> int:
    """8 credits, one frame, then "pause": the frames that still come (until a second's quiet)."""
    await ws.recv()  # hello
    for _ in range(8):
        await ws.send(NEXT.decode())
    await recv_v2_frame(ws)
    await ws.send('{"type": "pause"}')
    late = 0
    with contextlib.suppress(TimeoutError):
        while True:
            if isinstance(await asyncio.wait_for(ws.recv(), timeout(1)), bytes):
                late += 1
    return late


async def test_a_pause_is_read_before_the_next_frame_while_credits_are_held(
    start_daemon: Any,
) -> None:
    """8 credits, one frame, then "pause": the server reads it at its next frame, not 7 frames on."""
    rd = await start_daemon("cameras:\n  cam: {width: 160, height: 120, fps: 10}\n")
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(30):
        # A frame or two may cross the pause on the way; 7 would mean it waited in the kernel.
        assert await frames_after_pause(ws) <= 2


async def test_a_burst_larger_than_one_deferred_read_is_read_whole(start_daemon: Any) -> None:
    """Credits held, then 40 pings (5,240 bytes, past MAX_DEFERRED_READ): 40 pongs, in order."""
    rd = await start_daemon(FAST)

    def burst() -> list[bytes]:
        sock = v2_websocket(rd.port)
        sock.sendall(frame(0x1, NEXT) * 4)
        pings = [bytes([i]) * 125 for i in range(40)]
        pongs: list[bytes] = []
        buf, sent = b"", False
        with sock:
            while len(pongs) < 40:
                buf += sock.recv(1 << 16)
                while (taken := take_frame(buf)) is not None:
                    opcode, payload, buf = taken
                    if opcode == 0x2 and not sent:  # a frame out: the server holds 3 credits
                        sock.sendall(b"".join(frame(0x9, p) for p in pings))
                        sent = True
                    elif opcode == 0xA:
                        pongs.append(payload)
        assert pongs == pings
        return pongs

    await asyncio.wait_for(asyncio.to_thread(burst), timeout(20))


def read_until_binary(sock: socket.socket) -> None:
    """Read the server's frames until the first binary one (a frame message) is whole."""
    buf = b""
    while True:
        buf += sock.recv(1 << 16)
        while (taken := take_frame(buf)) is not None:
            opcode, _payload, buf = taken
            if opcode == 0x2:
                return


async def test_a_connection_dropped_as_a_frame_wakes_it_is_never_read_again(
    start_daemon: Any,
) -> None:
    """Dropped in the very turn a frame wakes its handler: what it left in the kernel stays unread.

    The coincidence a ping timeout or a stall can meet (a publish and an abort in one turn
    of the loop) is staged here: the client's input is deferred (credits held, camera live),
    it sends a binary message (a protocol error, if anything read it), and the publish that
    wakes its handler aborts its connection right after. A socket being closed is never
    read: the drop is counted once, as the timeout, and no protocol error besides.
    """
    rd = await start_daemon("cameras:\n  cam: {width: 160, height: 120, fps: 5}\n")
    sock = await asyncio.to_thread(v2_websocket, rd.port)
    with sock:
        sock.sendall(frame(0x1, NEXT) * 8)
        await asyncio.wait_for(asyncio.to_thread(read_until_binary, sock), timeout(10))
        # One frame out, 7 credits held, the camera live: the handler waits for the next
        # frame with the client's input left in the kernel.
        (conn,) = rd.daemon.server.websockets
        hub = rd.daemon.runners["cam"].hub
        publish = hub.publish
        dropped: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def publish_then_drop(new: Any) -> None:
            del hub.publish  # once
            sock.send(frame(0x2, b"not part of protocol 2"))
            publish(new)  # wakes the handler: it runs in the next turn, as does the close
            conn.abort("ping_timeout")
            dropped.set_result(None)

        hub.publish = publish_then_drop  # type: ignore[method-assign]
        await asyncio.wait_for(dropped, timeout(10))
        await asyncio.wait_for(asyncio.shield(conn.closed), timeout(10))
        await rd.wait_camera("cam", lambda c: c["viewers"] == 0)
    aborted = (await rd.state())["aborted"]
    assert {reason: n for reason, n in aborted.items() if n} == {"ping_timeout": 1}


async def test_over_tls_input_is_read_as_it_comes_while_credits_are_held(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Over TLS nothing is deferred: a "pause" after one frame of 8 credits stops the stream.

    Pausing a TLS transport's reading only stops asyncio handing decrypted data over (the
    records are still read from the kernel), so a deferred "pause" would wait there until
    the credits ran out: 7 frames late.
    """
    make_ca(tmp_path)
    make_leaf(tmp_path, "leaf")
    rd = await start_daemon(
        f"server: {{listen: 127.0.0.1, port: 0, tls: {{certificate: {tmp_path}/leaf.pem,"
        f" key: {tmp_path}/leaf.key}}}}\nauth: {{users_file: {tmp_path}/none}}\n"
        "cameras:\n  cam: {width: 160, height: 120, fps: 10}\n"
    )
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    async with (
        connect(
            f"wss://127.0.0.1:{rd.port}/websocket/cam",
            ssl=context,
            subprotocols=["pyimagestream.v2"],  # type: ignore[list-item]
            compression=None,
            open_timeout=timeout(10),
        ) as ws,
        deadline(30),
    ):
        assert await frames_after_pause(ws) <= 2


async def test_protocol_2_frames_go_out_within_publish_and_a_state_change_still_reaches_the_client(
    start_daemon: Any,
) -> None:
    """Credits held, camera live: each frame is written and counted inside the hub's publish;
    a state change with no frame behind it still wakes the handler and is reported."""
    rd = await start_daemon("cameras:\n  cam: {width: 160, height: 120, fps: 5, stop_delay: 0}\n")
    hub = rd.daemon.runners["cam"].hub
    publish = hub.publish
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(30):
        for _ in range(8):
            await ws.send('{"type": "next"}')
        await recv_v2_frame(ws)
        hub.publish = lambda new: new  # type: ignore[method-assign]  # the camera's: dropped
        pushed = 0
        while pushed < 3:
            pushed += await push_a_frame(hub, publish)
            await ws.send('{"type": "next"}')
        got = [await recv_v2_frame(ws) for _ in range(pushed)]
        assert all(meta["width"] == 160 for meta, _ in got)
        while not hub._pushers:
            await asyncio.sleep(0.01)
        hub.set_state(CameraState.LIVE, "a reason of the test's")
        while True:
            message = await ws.recv()
            if isinstance(message, str) and json.loads(message)["type"] == "state":
                assert json.loads(message)["reason"] == "a reason of the test's"
                break
