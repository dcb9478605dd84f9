"""systemd integration over a real notification socket: READY, STATUS, watchdog on health."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningDaemon, check_jpeg, make_config, timeout, ws_connect

import pyimagestreamd.daemon
from pyimagestreamd.daemon import Daemon
from pyimagestreamd.frame import Frame
from pyimagestreamd.systemd import Notifier
from pyimagestreamd.testpattern import TestPatternSource


class NotifySocket:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            self.messages.append(data.decode("utf-8"))

    def count(self, text: str) -> int:
        return sum(text in m for m in self.messages)

    async def wait_for(self, condition: Callable[[], bool], seconds: float = 10) -> None:
        """Wait until `condition()` holds (checked as messages arrive), or fail."""
        async with asyncio.timeout(timeout(seconds)):
            while not condition():
                await asyncio.sleep(0.01)


@pytest.fixture
async def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    task = asyncio.ensure_future(ns.collect())
    yield ns
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    ns.sock.close()


async def test_notifier_keeps_non_ascii_status(notify: NotifySocket) -> None:
    """STATUS text with non-latin-1 characters reaches systemd intact (sdnotify would drop it)."""
    n = Notifier()
    n.ready("küche: live 5.0 fps, 1 viewers — 水族館")
    n.status("küche: offline (Gerät entfernt)")
    n.status("küche: offline (Gerät entfernt)")  # unchanged: not sent again
    n.close()
    await notify.wait_for(lambda: len(notify.messages) >= 2)
    assert notify.messages == [
        "READY=1\nSTATUS=küche: live 5.0 fps, 1 viewers — 水族館",
        "STATUS=küche: offline (Gerät entfernt)",
    ]


async def test_watchdog_interval_is_half_the_period(
    notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG_USEC sets the pet interval to half the period; another WATCHDOG_PID disables it."""
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    notifier = Notifier()
    assert notifier.watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert notifier.watchdog_interval() is None
    notifier.close()
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert Notifier().watchdog_interval() is None


class HangingSource(TestPatternSource):
    """A test pattern whose read can be made to hang, like a driver stuck in an ioctl."""

    hang = threading.Event()

    def read(self, timeout: float) -> Frame | None:
        while self.hang.is_set():  # stuck, without turning the capture loop
            time.sleep(0.05)
        return super().read(timeout)


async def test_daemon_ready_status_and_watchdog_follow_health(
    notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY after binding, STATUS names the camera, and pets stop while capture is hung."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pet every 0.1 s
    monkeypatch.setattr(pyimagestreamd.daemon, "STATUS_INTERVAL", 0.1)

    HangingSource.hang.clear()
    daemon = Daemon(
        make_config("cameras:\n  küche: {width: 64, height: 48, fps: 20, stop_delay: 0}\n"),
        capture_stall_timeout=1.0,
        source_factory=HangingSource,
    )
    task = asyncio.ensure_future(daemon.run())
    try:
        await asyncio.wait_for(daemon.wait_ready(), timeout(10))
        await notify.wait_for(lambda: notify.count("WATCHDOG=1") >= 2)
        assert notify.messages[0].startswith("READY=1\nSTATUS=0 clients; küche: sleeping")
        async with ws_connect(RunningDaemon(daemon, task), "/websocket/k%C3%BCche") as ws:
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
            await notify.wait_for(
                lambda: any("küche: live" in m and "1 viewers" in m for m in notify.messages)
            )
            HangingSource.hang.set()
            # Past the 1 s stall limit: the daemon sees the hang (and then stops petting).
            async with asyncio.timeout(timeout(10)):
                while not daemon.health_problem():
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.15)  # a pet sent just before is still in the socket
            pets = notify.count("WATCHDOG=1")
            # Five pet intervals in which nothing may arrive: a slow machine only makes the
            # check stricter.
            await asyncio.sleep(0.5)
            assert notify.count("WATCHDOG=1") == pets, "petted while capture was hung"
            HangingSource.hang.clear()
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, timeout(40))
    assert notify.messages[-1] == "STOPPING=1\nSTATUS=stopping"


async def test_reload_of_a_hostile_file_is_refused_and_ends_in_ready(
    notify: NotifySocket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`[` * 900 or an alias bomb on reload: one refusal line, then READY=1 after RELOADING=1."""
    path = tmp_path / "c.yaml"
    text = "server: {listen: 127.0.0.1, port: 0}\ncameras:\n  c: {width: 64, height: 48}\n"
    path.write_text(text)
    daemon = Daemon(make_config(text[text.index("cameras") :]), path)
    task = asyncio.ensure_future(daemon.run())
    bomb = "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 10) + "]\n" for i in range(9)
    )
    try:
        await asyncio.wait_for(daemon.wait_ready(), timeout(10))
        # The READY=1 datagram may still be on its way: count from after it.
        async with asyncio.timeout(timeout(5)):
            while not notify.messages:
                await asyncio.sleep(0.01)
        for hostile in ("[" * 900, bomb + "cameras: *a8\n"):
            path.write_text(hostile)
            before = len(notify.messages)
            assert await daemon.reload() is False
            async with asyncio.timeout(timeout(5)):
                while len(notify.messages) < before + 2:
                    await asyncio.sleep(0.01)
            assert notify.messages[before] == "RELOADING=1"
            assert notify.messages[before + 1].startswith("READY=1\nSTATUS=")
        refusals = [r for r in caplog.records if "reload refused" in r.getMessage()]
        assert len(refusals) == 2
        assert all(r.exc_info is None and "\n" not in r.getMessage() for r in refusals)
        assert "Traceback" not in caplog.text
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, timeout(10)) == 0


async def test_reload_parses_the_file_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reloaded file is read and validated in a worker thread, not on the event loop."""
    path = tmp_path / "c.yaml"
    text = "cameras:\n  c: {width: 64, height: 48}\n"
    path.write_text("server: {listen: 127.0.0.1, port: 0}\n" + text)
    threads: list[threading.Thread] = []
    real = pyimagestreamd.daemon.load_config

    def recording(p: Path) -> Any:
        threads.append(threading.current_thread())
        return real(p)

    monkeypatch.setattr(pyimagestreamd.daemon, "load_config", recording)
    daemon = Daemon(make_config(text), path)
    task = asyncio.ensure_future(daemon.run())
    try:
        await asyncio.wait_for(daemon.wait_ready(), timeout(10))
        assert await daemon.reload() is True
        assert threads and threads[0] is not threading.main_thread()
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, timeout(10)) == 0
