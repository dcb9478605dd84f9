"""Delivery: the one way a frame leaves the server, for every kind of client.

The last step of the data flow. A handler (ws_original.py, ws_v2.py, mjpegpush.py) that
has a frame for its client calls `send_newest`: it waits at the connection's pacing gate
(pacing.py) until the connection can take the frame without queueing it behind older
ones, drops a client that cannot take anything for `send_timeout`, writes, and counts the
frame and its bytes once (stats.py). `send_if_ready` is the same without the wait, for a
frame pushed from the hub's publish (mjpegpush.py): written now if the gate is open, else
left to `send_newest`. Event-loop thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from pyimagestreamd.frame import Frame
from pyimagestreamd.httpd import Connection
from pyimagestreamd.hub import Hub


async def wait_ready(conn: Connection) -> bool:
    """Wait until `conn` can take a frame; False (and the client dropped) if it never can."""
    assert conn.gate is not None
    try:
        await conn.gate.wait_ready(conn.server.config.server.send_timeout)
    except TimeoutError:
        conn.abort("stalled")
        return False
    return not conn.closed.done()


def send_if_ready(
    conn: Connection, hub: Hub, frame: Frame, write: Callable[[Frame], int], kind: str
) -> bool:
    """Write `frame` and count it if the connection can take it now; False (nothing written)
    if it cannot, or is gone."""
    assert conn.gate is not None
    if conn.closed.done() or not conn.gate.ready_now():
        return False
    conn.server.stats.frame_sent(hub, frame, write(frame), kind)
    return True


async def send_newest(
    conn: Connection, hub: Hub, frame: Frame, write: Callable[[Frame], int], kind: str
) -> Frame | None:
    """Wait at the gate, then write the newest frame (`frame` or a newer one) and count it.

    `write(frame)` writes it and returns the bytes written. Returns the frame sent, or None
    if the client is gone. Taking the newest frame only after the wait is what keeps a slow
    client's pictures fresh: while it drained, the camera moved on.
    """
    if not await wait_ready(conn):
        return None
    latest = hub.latest
    if latest is not None and latest.seq > frame.seq:
        frame = latest
    conn.server.stats.frame_sent(hub, frame, write(frame), kind)
    return frame
