"""MJPEG push: `multipart/x-mixed-replace` over plain HTTP, for every tool that is not us.

Home Assistant, OctoPrint, Frigate, motionEye, VLC, ffmpeg and a plain `<img src>` read this.
The route (routes.py) takes the connection over after the request head; from then on the
client receives one part per frame: a boundary, `Content-Type`, `Content-Length`,
`X-Timestamp` (capture wall time, Unix seconds with ms) and `X-Frame-Seq` (the camera's
sequence number), then the JPEG. Frames are pushed, not pulled, so freshness comes from
the pacing gate (delivery.py / pacing.py): the newest frame is written only when the
connection can take it, so a slow link gets fewer frames, never old ones. While the gate
is open, each frame is written from the hub's publish (`Hub.push_frames`), in the turn of
the event loop that captured it, without waking the client's task; the task takes over
whenever the gate is closed, and waits there. `?fps=N` caps the rate further (always
through the task). The client is a viewer like any other: it wakes the camera and keeps it awake,
and while the camera is down it gets the hub's offline card.

The response is close-delimited (no chunked encoding), as µStreamer and mjpg-streamer send
it: some embedded clients cannot read chunked multipart. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pyimagestreamd.delivery import send_if_ready, send_newest
from pyimagestreamd.frame import Frame
from pyimagestreamd.httpd import Connection
from pyimagestreamd.hub import Hub
from pyimagestreamd.secheaders import Headers

BOUNDARY = "pyimagestreamframe"


def response_head(server_header: str, date: str, security: Headers) -> bytes:
    """The response head of a stream (serialized here: h11 would force chunked framing);
    `security` are the headers every response carries (secheaders.py)."""
    lines = [
        "HTTP/1.1 200 OK",
        f"Date: {date}",
        f"Server: {server_header}",
        *(f"{name}: {value}" for name, value in security),
        f"Content-Type: multipart/x-mixed-replace;boundary={BOUNDARY}",
        "Cache-Control: no-store, no-cache, must-revalidate, max-age=0",
        "Pragma: no-cache",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def part_head(frame: Frame) -> bytes:
    """The head of one part of the stream (boundary, part headers); the JPEG and a CRLF
    follow it."""
    return (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(frame.jpeg)}\r\n"
        f"X-Timestamp: {frame.wall_time:.3f}\r\n"
        f"X-Frame-Seq: {frame.seq}\r\n"
        "\r\n"
    ).encode()


async def serve_mjpeg(conn: Connection, hub: Hub, fps: float | None) -> None:
    """Push the camera's newest frames to one client until it leaves (head already sent)."""

    def write(frame: Frame) -> int:
        # The same head for every client of the camera, made once per frame; head, JPEG
        # and CRLF go out in one writev, never joined (a copy of the frame).
        head = hub.serialized(frame, "mjpeg", part_head)
        conn.writelines((head, frame.jpeg, b"\r\n"))
        return len(head) + len(frame.jpeg) + 2

    hub.add_viewer()
    try:
        if fps:
            await _serve_capped(conn, hub, write, 1.0 / fps)
        else:
            await _serve_pushed(conn, hub, write)
    finally:
        hub.remove_viewer()


async def _serve_pushed(conn: Connection, hub: Hub, write: Callable[[Frame], int]) -> None:
    """The task sends a frame (the first one, or the newest once the gate opened again),
    then hands the connection to the hub's publish until a frame finds the gate closed."""
    last = 0

    def push(frame: Frame) -> bool:
        nonlocal last
        if send_if_ready(conn, hub, frame, write, "mjpeg"):
            last = frame.seq
            return True
        return False  # the gate is closed, or the client gone: the task's turn

    while not conn.closed.done():
        frame = await hub.wait_frame_after(last, until=conn.closed)
        if frame is None:
            return
        sent = await send_newest(conn, hub, frame, write, "mjpeg")
        if sent is None:
            return
        last = sent.seq
        await hub.push_frames(push, conn.closed, at_state_change=False)


async def _serve_capped(
    conn: Connection, hub: Hub, write: Callable[[Frame], int], interval: float
) -> None:
    """At most one frame per `interval` seconds: each one through the task."""
    last = 0
    next_at = 0.0
    while not conn.closed.done():
        frame = await hub.wait_frame_after(last, until=conn.closed)
        if frame is None:
            return
        delay = next_at - time.monotonic()
        if delay > 0:
            # The ?fps cap: sleep, but not past the client leaving.
            await asyncio.wait({conn.closed}, timeout=delay)
        sent = await send_newest(conn, hub, frame, write, "mjpeg")
        if sent is None:
            return
        last = sent.seq
        next_at = time.monotonic() + interval
