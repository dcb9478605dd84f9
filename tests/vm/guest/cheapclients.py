"""Viewers for `make bench-vm` that cost the guest next to nothing per frame.

The streamers are measured against each other on the guest's two emulated CPUs, which the
clients share: a client that spends milliseconds per frame (the websockets library spends
~5.8 ms under TCG) takes CPU from whichever streamer it watches. So both kinds of stream
are read the same cheap way: bytes are read in large chunks and only counted.

- MultipartCounter: GET a multipart/x-mixed-replace stream (µStreamer's /stream, our
  /stream.mjpg) and count its boundaries.
- RawWsCounter: protocol 2 over a plain socket, the handshake written here, frames skipped
  by their WebSocket header after their small JSON metadata (to tell live frames from the
  offline card), one credit sent back per frame (`window` outstanding); pings are answered
  so the server does not drop it.

Event-loop only; cancel the task to stop a client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct

CREDIT = b'{"type": "next"}'


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame; the all-zero mask leaves the payload as it is (RFC 6455 5.3)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class MultipartCounter:
    """Reads a multipart/x-mixed-replace stream and counts its parts."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.frames = 0

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            header = await reader.readuntil(b"\r\n\r\n")
            boundary = header.split(b"boundary=")[1].split(b"\r\n")[0].strip().strip(b'"')
            boundary = b"--" + boundary
            tail = b""
            while chunk := await reader.read(1 << 20):
                data = tail + chunk
                self.frames += data.count(boundary)
                tail = data[-len(boundary) + 1 :]
        finally:
            writer.close()


class RawWsCounter:
    """A protocol-2 viewer keeping `window` credits out, reading frames without parsing them."""

    def __init__(self, port: int, path: str, window: int = 4) -> None:
        self.port, self.path, self.window = port, path, window
        self.frames = 0  # live frames
        self.offline = 0  # the offline card

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pyimagestream.v2\r\n\r\n"
                .encode()
            )  # fmt: skip
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(f"no WebSocket: {head.splitlines()[0]!r}")
            credit = client_frame(0x1, CREDIT)
            writer.write(credit * self.window)
            while True:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack(">H", await reader.readexactly(2))
                elif size == 127:
                    (size,) = struct.unpack(">Q", await reader.readexactly(8))
                opcode = first & 0x0F
                if opcode == 0x9:  # ping: pong with its payload
                    writer.write(client_frame(0xA, await reader.readexactly(size)))
                    continue
                if opcode == 0x2:
                    (meta_size,) = struct.unpack(">I", await reader.readexactly(4))
                    meta = json.loads(await reader.readexactly(meta_size))
                    size -= 4 + meta_size
                while size:  # skipped in chunks: nothing as big as a frame is kept
                    chunk = await reader.read(min(size, 1 << 20))
                    if not chunk:
                        raise ConnectionError("closed in the middle of a frame")
                    size -= len(chunk)
                if opcode == 0x2:
                    if meta.get("offline"):
                        self.offline += 1
                    else:
                        self.frames += 1
                    writer.write(credit)
                elif opcode == 0x8:
                    return
        finally:
            writer.close()
