"""Daemon life cycle: a dead core task ends the process (exit 1), reloads run one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import TOP, make_config, spawn_daemon, timeout, ws_connect

import pyimagestreamd.daemon
from pyimagestreamd.admission import Admission
from pyimagestreamd.daemon import Daemon
from pyimagestreamd.runner import CameraRunner

CAMS = "cameras:\n  cam: {width: 64, height: 48, fps: 20, stop_delay: 0}\n"


async def run_until_exit(daemon: Daemon) -> int:
    task = asyncio.ensure_future(daemon.run())
    try:
        return await asyncio.wait_for(task, timeout(10))
    finally:
        if not task.done():
            daemon.request_stop()
            await task


async def test_status_task_that_raises_exits_1_with_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The STATUS task raising stops the daemon with exit status 1 and logs the traceback."""

    async def broken(self: Daemon) -> None:
        raise RuntimeError("status broke")

    monkeypatch.setattr(Daemon, "_update_status", broken)
    caplog.set_level(logging.INFO)
    assert await run_until_exit(Daemon(make_config(CAMS))) == 1
    failed = [r for r in caplog.records if "core task status failed" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert "RuntimeError: status broke" in caplog.text
    assert "stopped" in caplog.text  # the orderly shutdown still ran


async def test_task_that_returns_is_also_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A core task that simply returns (the watchdog loop, say) is as fatal as one that raises."""

    async def quits(self: Daemon) -> None:
        return None

    monkeypatch.setattr(Daemon, "_pet_watchdog", quits)
    assert await run_until_exit(Daemon(make_config(CAMS))) == 1
    assert "core task watchdog ended unexpectedly: exiting" in caplog.text


async def test_accept_loop_that_raises_exits_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's accept loop failing ends the daemon (exit 1), not a daemon nobody reaches."""

    async def broken(self: Admission, *args: object, **kwargs: object) -> None:
        raise RuntimeError("accept broke")

    monkeypatch.setattr(Admission, "accept", broken)
    assert await run_until_exit(Daemon(make_config(CAMS))) == 1
    failed = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert failed and "core task server accept on" in failed[0].getMessage()
    assert failed[0].exc_info is not None
    assert "RuntimeError: accept broke" in caplog.text


async def test_runner_whose_reconcile_raises_exits_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera runner failing when a viewer arrives takes the daemon down with exit 1."""

    async def broken(self: CameraRunner) -> None:
        raise RuntimeError("reconcile broke")

    monkeypatch.setattr(CameraRunner, "_reconcile", broken)
    daemon = Daemon(make_config(CAMS))
    task = asyncio.ensure_future(daemon.run())
    await asyncio.wait_for(daemon.wait_ready(), timeout(10))
    daemon.runners["cam"].hub.add_viewer()  # wakes the runner, which then fails
    assert await asyncio.wait_for(task, timeout(10)) == 1
    assert "core task camera cam runner failed unexpectedly: exiting" in caplog.text
    assert "RuntimeError: reconcile broke" in caplog.text


async def test_reload_that_fails_unexpectedly_exits_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that raises something other than a config error (a bug) ends the daemon."""

    async def broken(self: Daemon) -> bool:
        raise RuntimeError("reload broke")

    monkeypatch.setattr(Daemon, "_reload", broken)
    daemon = Daemon(make_config(CAMS))
    task = asyncio.ensure_future(daemon.run())
    await asyncio.wait_for(daemon.wait_ready(), timeout(10))
    daemon.request_reload()
    assert await asyncio.wait_for(task, timeout(10)) == 1
    assert "core task reload failed unexpectedly: exiting" in caplog.text
    assert "RuntimeError: reload broke" in caplog.text


async def test_stop_signal_still_exits_0(caplog: pytest.LogCaptureFixture) -> None:
    """Cancelling the core tasks at an ordinary stop is not mistaken for a failure."""
    daemon = Daemon(make_config(CAMS))
    task = asyncio.ensure_future(daemon.run())
    await asyncio.wait_for(daemon.wait_ready(), timeout(10))
    daemon.runners["cam"].hub.add_viewer()
    daemon.request_stop()
    assert await asyncio.wait_for(task, timeout(10)) == 0
    assert "core task" not in caplog.text


def test_process_with_failing_status_task_exits_1(tmp_path: Path) -> None:
    """The real command line, with the STATUS task made to fail: exit 1, traceback in the log."""
    path = tmp_path / "c.yaml"
    path.write_text("server: {listen: 127.0.0.1, port: 0}\n" + CAMS)
    script = textwrap.dedent(f"""
        import asyncio, sys
        import pyimagestreamd.daemon as daemon
        from pyimagestreamd.cli import main

        async def broken(self):
            await asyncio.sleep(0.2)
            raise RuntimeError("status broke")

        daemon.Daemon._update_status = broken
        sys.exit(main(["--config", {str(path)!r}]))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=TOP, capture_output=True, text=True,
        timeout=timeout(30), check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "core task status failed unexpectedly: exiting" in result.stderr
    assert "Traceback" in result.stderr
    assert "RuntimeError: status broke" in result.stderr


def capture_threads(pid: int) -> dict[str, int]:
    """Kernel thread names of the process that are capture threads, counted by name."""
    counts: dict[str, int] = {}
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # the thread ended while we listed
            continue
        if name.startswith("capture-"):
            counts[name] = counts.get(name, 0) + 1
    return counts


async def pull_forever(ws: Any) -> None:
    while True:
        await ws.send("x")
        await ws.recv()


async def test_sighup_storm_leaves_one_capture_thread_per_camera(tmp_path: Path) -> None:
    """50 alternating SIGHUPs in 1 s while streaming: exactly one capture thread per camera after."""
    versions = [
        f"cameras:\n  a: {{width: 64, height: 48, fps: {fps}}}\n"
        f"  b: {{width: 64, height: 48, fps: {fps}}}\n"
        for fps in (10, 20)
    ]
    dp = await spawn_daemon(tmp_path, versions[0])
    path = tmp_path / "pyimagestream.yaml"
    head = "server: {listen: 127.0.0.1, port: 0}\n"
    try:
        async with ws_connect(dp, "/websocket/a") as wa, ws_connect(dp, "/websocket/b") as wb:
            pullers = [asyncio.ensure_future(pull_forever(ws)) for ws in (wa, wb)]
            async with asyncio.timeout(timeout(10)):
                while capture_threads(dp.proc.pid) != {"capture-a": 1, "capture-b": 1}:
                    await asyncio.sleep(0.05)
            for i in range(50):
                tmp = tmp_path / "next.yaml"
                tmp.write_text(head + versions[(i + 1) % 2])
                tmp.replace(path)  # atomically: a reload never reads half a file
                os.kill(dp.proc.pid, signal.SIGHUP)
                await asyncio.sleep(0.02)
            # Half of the storm's files have fps 10, so "fps 10" could be seen while reloads
            # of the storm are still queued: end with a file no storm step wrote (fps 7) and
            # wait until that one is applied and both cameras are live again.
            tmp.write_text(head + versions[0].replace("fps: 10", "fps: 7"))
            tmp.replace(path)
            os.kill(dp.proc.pid, signal.SIGHUP)
            async with asyncio.timeout(timeout(20)):
                while True:
                    cams = (await asyncio.to_thread(fetch_state, dp.port))["cameras"]
                    if all(c["fps"] == 7 and c["state"] == "live" for c in cams):
                        break
                    await asyncio.sleep(0.1)
            # An orphaned thread never goes away, so waiting for the expected set cannot hide
            # a leak; it only rides out a source that is still being swapped.
            threads = capture_threads(dp.proc.pid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout(5)):
                    while threads != {"capture-a": 1, "capture-b": 1}:
                        await asyncio.sleep(0.05)
                        threads = capture_threads(dp.proc.pid)
            for task in pullers:
                task.cancel()
            await asyncio.gather(*pullers, return_exceptions=True)
        reloads = sum("configuration reloaded" in line for line in dp.log)
    finally:
        dp.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(dp.proc.wait(), timeout(10))
        await dp.drain_task  # type: ignore[attr-defined]
    assert threads == {"capture-a": 1, "capture-b": 1}, threads
    assert 1 <= reloads < 50, f"{reloads} reloads for 50 signals: not coalesced"
    assert code == 0, "".join(dp.log)
    assert "Traceback" not in "".join(dp.log)


def fetch_state(port: int) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=timeout(10)) as r:
        result: dict[str, Any] = json.loads(r.read())
        return result


async def test_reloads_requested_during_a_reload_are_coalesced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten reload requests while one runs give exactly one more reload, never two at once."""
    path = tmp_path / "c.yaml"
    path.write_text("server: {listen: 127.0.0.1, port: 0}\n" + CAMS)
    daemon = Daemon(make_config(CAMS), path)
    running = 0
    most = 0
    release = asyncio.Event()
    original = Daemon._reload

    async def slow_reload(self: Daemon) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        try:
            return await original(self)
        finally:
            running -= 1

    monkeypatch.setattr(Daemon, "_reload", slow_reload)
    task = asyncio.ensure_future(daemon.run())
    try:
        await asyncio.wait_for(daemon.wait_ready(), timeout(10))
        daemon.request_reload()
        async with asyncio.timeout(timeout(5)):
            while running == 0:
                await asyncio.sleep(0.01)
        for _ in range(10):
            daemon.request_reload()
        release.set()
        async with asyncio.timeout(timeout(5)):
            while daemon.reloads_done < 2:
                await asyncio.sleep(0.01)
        # Give a wrongly queued third reload every chance to start.
        for _ in range(20):
            await asyncio.sleep(0)
        assert running == 0
        assert daemon.reloads_done == 2
        assert most == 1
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, timeout(10)) == 0


@pytest.fixture(autouse=True)
def _fast_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyimagestreamd.daemon, "STATUS_INTERVAL", 0.05)


async def test_stop_with_a_client_that_never_answers_the_close_is_clean_and_bounded(
    tmp_path: Path,
) -> None:
    """SIGTERM with an original-protocol client that never answers: exit 0 after the bound."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame
    from websockets.protocol import OPEN
    from websockets.uri import parse_uri

    import pyimagestreamd.server

    dp = await spawn_daemon(tmp_path, CAMS)
    reader, writer = await asyncio.open_connection("127.0.0.1", dp.port)
    client = ClientProtocol(parse_uri(f"ws://127.0.0.1:{dp.port}/websocket/cam"))
    client.send_request(client.connect())
    writer.write(b"".join(client.data_to_send()))
    async with asyncio.timeout(timeout(10)):
        while client.state is not OPEN:
            client.receive_data(await reader.read(65536))
        client.send_text(b"x")
        writer.write(b"".join(client.data_to_send()))
        while not any(isinstance(e, Frame) for e in client.events_received()):
            client.receive_data(await reader.read(65536))
    # From here on the client reads nothing and so never answers the server's close frame.
    started = asyncio.get_running_loop().time()
    dp.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(dp.proc.wait(), timeout(15))
    took = asyncio.get_running_loop().time() - started
    await dp.drain_task  # type: ignore[attr-defined]
    writer.close()
    log = "".join(dp.log)
    assert code == 0, log
    assert "Traceback" not in log
    bound = pyimagestreamd.server.CLOSE_TIMEOUT
    assert bound * 0.9 <= took < bound + timeout(2), f"stop took {took:.2f} s"
