"""Relay: one pyimagestreamd serving another's camera through its /stream.mjpg, both real
processes on loopback, the upstream camera fed by ffmpeg (known JPEGs)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

from conftest import deadline, ffmpeg_command, pull_in_turn, timeout, ws_connect


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upstream_yaml(clip: Path, port: int) -> str:
    pi = {"source": "exec", "width": 320, "height": 240, "stop_delay": 0.5,
          "command": ffmpeg_command(clip)}  # fmt: skip
    return f"server: {{listen: 127.0.0.1, port: {port}}}\ncameras:\n  pi: {json.dumps(pi)}\n"


def relay_yaml(port: int) -> str:
    relay = {"source": f"http://127.0.0.1:{port}/stream.mjpg?camera=pi", "width": 320,
             "height": 240, "stop_delay": 0.5, "frame_timeout": 2.0, "connect_timeout": 2.0}  # fmt: skip
    return "cameras:\n  relay: " + json.dumps(relay) + "\n"


async def upstream_state(port: int) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        import urllib.request

        url = f"http://127.0.0.1:{port}/api/state"
        with urllib.request.urlopen(url, timeout=timeout(10)) as resp:
            return dict(json.load(resp))

    state = await asyncio.to_thread(fetch)
    return next(c for c in state["cameras"] if c["name"] == "pi")


async def test_relay_passes_frames_untouched_with_one_upstream_viewer(
    spawn: Any, start_daemon: Any, clip: tuple[Path, set[str]]
) -> None:
    """Three viewers downstream, one viewer upstream; every JPEG is one ffmpeg wrote."""
    path, hashes = clip
    port = free_port()
    await spawn(upstream_yaml(path, port))
    rd = await start_daemon(relay_yaml(port))
    async with (
        ws_connect(rd, "/websocket/relay") as a,
        ws_connect(rd, "/websocket/relay") as b,
        ws_connect(rd, "/websocket/relay") as c,
    ):
        seen = {hashlib.sha256(jpeg).hexdigest() for jpeg in await pull_in_turn((a, b, c), 6)}
        assert (await rd.camera_state("relay"))["viewers"] == 3
        assert (await upstream_state(port))["viewers"] == 1
    assert seen <= hashes, "a frame the upstream's producer did not write"
    assert len(seen) >= 3
    # On demand through both: the relay sleeps, then the upstream has no viewer and sleeps.
    async with deadline(15):
        while (await upstream_state(port))["state"] != "sleeping":
            await asyncio.sleep(0.1)


async def test_relay_follows_an_upstream_that_restarts(
    spawn: Any, start_daemon: Any, clip: tuple[Path, set[str]]
) -> None:
    """The upstream daemon is killed: the relay goes offline, and is live once it is back."""
    path, hashes = clip
    port = free_port()
    first = await spawn(upstream_yaml(path, port))
    rd = await start_daemon(relay_yaml(port))
    async with ws_connect(rd, "/websocket/relay") as ws:
        await ws.send("x")
        assert hashlib.sha256(await asyncio.wait_for(ws.recv(), timeout(15))).hexdigest() in hashes
        first.proc.kill()
        await first.proc.wait()
        async with deadline(15):
            while (cam := await rd.camera_state("relay"))["state"] != "offline":
                await asyncio.sleep(0.05)
        assert cam["reason"].startswith(f"http://127.0.0.1:{port}/stream.mjpg?camera=pi: ")
        await spawn(upstream_yaml(path, port))
        async with deadline(20):
            while (await rd.camera_state("relay"))["state"] != "live":
                await asyncio.sleep(0.05)
