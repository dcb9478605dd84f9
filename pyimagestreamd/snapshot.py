"""Snapshot: one JPEG of a camera, for `/snapshot.jpg` and the spellings other tools use.

Between the hub's latest-frame slot and one HTTP reply (routes.py sends it). A snapshot is
a viewer for as long as it waits: it wakes a sleeping camera, and the camera's stop delay
applies after it. A live or offline camera answers at once with its newest frame (the
offline card while it is down); one that is starting is waited for, at most
`server.snapshot_timeout`, and a client that leaves ends the wait. Event-loop thread only.
"""

from __future__ import annotations

import asyncio

from pyimagestreamd.camera import CameraState
from pyimagestreamd.httpd import Connection
from pyimagestreamd.hub import Hub
from pyimagestreamd.static import Reply, text_reply
from pyimagestreamd.stats import ServerStats


async def snapshot(conn: Connection, hub: Hub, stats: ServerStats, wait: float) -> Reply:
    """The reply to a snapshot request: the JPEG (200) or why there is none (503).

    `wait`: how long a camera that is not live yet is waited for (snapshot_timeout).
    """
    hub.add_viewer()  # wakes a sleeping camera; the stop delay applies afterwards
    try:
        frame = hub.latest
        if frame is None or hub.state not in (CameraState.LIVE, CameraState.OFFLINE):
            seq = frame.seq if frame is not None else 0
            # Bounded by snapshot_timeout alone (any value the config allows), and ended
            # early if the client leaves.
            async with asyncio.timeout(wait):
                frame = await hub.wait_frame_after(seq, until=conn.closed)
    except TimeoutError:
        reason = hub.reason or f"no frame within {wait:g} s"
        text = f"camera {hub.name} {hub.state.value}: {reason}"
        return text_reply(503, text, ("Retry-After", "5"))
    finally:
        hub.remove_viewer()
    if frame is None:
        return text_reply(503, "client left")
    stats.frame_sent(hub, frame, len(frame.jpeg), "snapshot")
    return Reply(200, (
        ("Content-Type", "image/jpeg"),
        ("Cache-Control", "no-store"),
        ("X-Frame-Seq", str(frame.seq)),
        ("X-Frame-Time", f"{frame.wall_time:.3f}"),
        ("X-Timestamp", f"{frame.wall_time:.3f}"),
    ), frame.jpeg)  # fmt: skip
