"""The pipeline source with real producers: ffmpeg writing MJPEG to stdout, and shell scripts
that crash, stall, write garbage or ignore SIGTERM. A real daemon, real WebSocket clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from conftest import deadline, ffmpeg_command, timeout, ws_connect


def camera_yaml(command: list[str], **keys: Any) -> str:
    settings = {"source": "exec", "width": 320, "height": 240, "stop_delay": 0.3,
                "frame_timeout": 2.0, "term_timeout": 1.0, **keys, "command": command}  # fmt: skip
    return "cameras:\n  pipe: " + json.dumps(settings) + "\n  other: {width: 64, height: 48}\n"


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return [str(path)]


def process_gone(pid: int) -> bool:
    """True when no process (not even a zombie waiting to be reaped) has this pid."""
    return not Path(f"/proc/{pid}").exists()


async def test_frames_are_byte_identical_and_the_producer_runs_only_on_demand(
    start_daemon: Any, clip: tuple[Path, set[str]]
) -> None:
    """ffmpeg's JPEGs reach the viewer untouched; it starts with the viewer and is gone after."""
    path, hashes = clip
    rd = await start_daemon(camera_yaml(ffmpeg_command(path)))
    cam = await rd.camera_state("pipe")
    assert (cam["state"], cam["capturing"], cam["format"]["pid"]) == ("sleeping", False, None)
    seen = set()
    async with ws_connect(rd, "/websocket/pipe") as ws:
        for _ in range(15):
            await ws.send("x")
            data = await asyncio.wait_for(ws.recv(), timeout(10))
            seen.add(hashlib.sha256(data).hexdigest())
        cam = await rd.camera_state("pipe")
        pid = cam["format"]["pid"]
        assert cam["state"] == "live" and pid is not None
        assert cam["format"]["frames"]["dropped"] == 0
    assert seen <= hashes, "a frame the producer did not write"
    assert len(seen) >= 5
    cam = await rd.wait_camera("pipe", lambda c: c["state"] == "sleeping")
    async with deadline(5):
        while not process_gone(pid):
            await asyncio.sleep(0.05)
    assert cam["format"]["pid"] is None


async def test_producer_crash_is_offline_with_its_stderr_line_then_back(
    start_daemon: Any, clip: tuple[Path, set[str]], tmp_path: Path
) -> None:
    """A producer that dies: offline with its last stderr line, then restarted by itself."""
    path, _ = clip
    marker = tmp_path / "crashed"
    command = script(
        tmp_path,
        "crashy",
        f"""
if [ ! -e {marker} ]; then
    touch {marker}
    head -c 30000 {path}
    echo "starting sensor" >&2
    echo "sensor exploded" >&2
    exit 3
fi
exec {" ".join(ffmpeg_command(path))}
""",
    )
    rd = await start_daemon(camera_yaml(command))
    async with ws_connect(rd, "/websocket/pipe") as ws:
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), timeout(10))
        cam = await rd.wait_camera("pipe", lambda c: c["state"] == "offline")
        assert cam["reason"] == "command exited with status 3: sensor exploded"
        cam = await rd.wait_camera("pipe", lambda c: c["state"] == "live")
        assert cam["format"]["frames"]["frames"] > 0


async def test_a_stalled_producer_is_ended_and_started_again(
    start_daemon: Any, clip: tuple[Path, set[str]], tmp_path: Path
) -> None:
    """A producer that goes silent: after frame_timeout it is killed and a new one started."""
    path, _ = clip
    command = script(tmp_path, "staller", f"head -c 30000 {path}\nexec sleep 1000\n")
    rd = await start_daemon(camera_yaml(command, frame_timeout=1.0))
    async with ws_connect(rd, "/websocket/pipe") as ws:
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), timeout(10))
        first = (await rd.camera_state("pipe"))["format"]["pid"]
        cam = await rd.wait_camera("pipe", lambda c: c["state"] == "offline")
        assert cam["reason"] == "no frames for 1 s"
        cam = await rd.wait_camera("pipe", lambda c: c["format"]["pid"] not in (None, first))
        assert process_gone(first)


async def test_garbage_from_a_producer_stays_bounded_and_others_keep_serving(
    start_daemon: Any, clip: tuple[Path, set[str]], tmp_path: Path
) -> None:
    """A producer writing a start marker and then endless zeros: bounded buffer, offline."""
    path, _ = clip
    head = tmp_path / "head.jpg"
    head.write_bytes(path.read_bytes()[:600])  # header and a little scan data, no end
    command = script(tmp_path, "garbage", f"cat {head} /dev/zero\n")
    rd = await start_daemon(camera_yaml(command, frame_timeout=3.0))
    async with ws_connect(rd, "/websocket/pipe") as ws, ws_connect(rd, "/websocket/other") as other:
        await ws.send("x")  # the viewer that starts the producer; it gets the offline card
        most = 4 << 20  # pipeline.max_frame_bytes for 320x240
        cam = await rd.wait_camera(
            "pipe", lambda c: c["format"]["frames"]["skipped_bytes"] > 3 * most
        )
        assert cam["format"]["frames"]["oversize"] == 1
        assert cam["format"]["frames"]["buffered"] <= most + (1 << 16)
        for _ in range(3):
            await other.send("x")
            await asyncio.wait_for(other.recv(), timeout(10))
        cam = await rd.wait_camera("pipe", lambda c: c["state"] == "offline")
        assert cam["reason"] == "no frames for 3 s"


async def test_a_producer_ignoring_sigterm_is_killed_after_term_timeout(
    start_daemon: Any, clip: tuple[Path, set[str]], tmp_path: Path
) -> None:
    """SIGTERM ignored by the whole group: SIGKILL after term_timeout, nothing left behind."""
    path, _ = clip
    frame = tmp_path / "one.jpg"
    frame.write_bytes(path.read_bytes()[: path.read_bytes().index(b"\xff\xd9") + 2])
    command = script(
        tmp_path, "stubborn", f"trap '' TERM\nwhile :; do cat {frame}; sleep 0.1; done\n"
    )
    rd = await start_daemon(camera_yaml(command, term_timeout=0.5, stop_delay=0))
    async with ws_connect(rd, "/websocket/pipe") as ws:
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), timeout(10))
        pid = (await rd.wait_camera("pipe", lambda c: c["state"] == "live"))["format"]["pid"]
        kids = await asyncio.to_thread(Path(f"/proc/{pid}/task/{pid}/children").read_text)
        children = [int(p) for p in kids.split()]
    runner = rd.daemon.runners["pipe"]
    await rd.wait_camera("pipe", lambda c: c["state"] == "sleeping")
    assert runner.source.counters["commands_killed"] == 1
    for each in [pid, *children]:
        assert process_gone(each), each
    assert os.getpgid(os.getpid()) != pid


async def test_daemon_shutdown_ends_the_producer(
    start_daemon: Any, clip: tuple[Path, set[str]]
) -> None:
    """Stopping the daemon while a producer streams ends and reaps the producer too."""
    path, _ = clip
    rd = await start_daemon(camera_yaml(ffmpeg_command(path), stop_delay=60))
    async with ws_connect(rd, "/websocket/pipe") as ws:
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), timeout(10))
        pid = (await rd.camera_state("pipe"))["format"]["pid"]
        assert await rd.stop() == 0
    assert process_gone(pid)
