"""/api/state: what the daemon is doing, as JSON for people, scripts and the tests.

Read-only view over the server: cameras (state, size, rates, viewers, capture counters), the
clients by kind, and the connection counters (stats.py): connections in the last minute,
refused and aborted connections by reason. Event-loop thread only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pyimagestreamd import __version__

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer


def clients_by_kind(server: StreamServer) -> dict[str, int]:
    kinds = {"websocket": 0, "mjpeg": 0}
    for conn in server.clients:
        kinds[conn.kind] = kinds.get(conn.kind, 0) + 1
    return kinds


def api_state(server: StreamServer) -> dict[str, Any]:
    """Everything /api/state reports."""
    now = time.monotonic()
    cameras = []
    for cam in server.config.cameras:
        runner = server.runners.get(cam.name)
        if runner is None:
            continue
        hub, source = runner.hub, runner.source
        latest = hub.latest
        cameras.append({
            "name": cam.name,
            "state": hub.state.value,
            "reason": hub.reason,
            "width": latest.width if latest else cam.width,
            "height": latest.height if latest else cam.height,
            "fps": cam.fps,
            "measured_fps": round(hub.measured_fps, 2),
            "viewers": hub.viewers,
            "capturing": source.is_running,
            "latest_seq": latest.seq if latest else 0,
            "latest_age": round(now - latest.captured_at, 3) if latest else None,
            "frames_published": hub.frames_published,
            "frames_sent": hub.frames_sent,
            **source.counters,
            "format": source.describe(),
        })  # fmt: skip
    return {
        "version": __version__,
        "uptime": round(now - server.stats.started_at, 3),
        "clients": len(server.clients),
        "clients_by_kind": clients_by_kind(server),
        "open_connections": len(server.connections),
        "max_clients": server.config.server.max_clients,
        **server.stats.summary(),
        "cameras": cameras,
    }
