"""The command line as users and systemd run it: exit codes, one-line errors, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from conftest import TOP, check_jpeg, timeout, ws_connect

import pyimagestreamd


def run(*args: str, cwd: Path = TOP) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagestreamd", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout(30), check=False,
    )  # fmt: skip


def test_version() -> None:
    """--version prints the version and exits 0."""
    result = run("--version")
    assert (result.returncode, result.stdout.strip()) == (
        0,
        f"pyimagestreamd {pyimagestreamd.__version__}",
    )


def test_check_config_accepts_shipped_file() -> None:
    """--check-config on the shipped file says OK and exits 0."""
    result = run("--check-config", "--config", "etc/pyimagestream.yaml")
    assert result.returncode == 0
    assert "configuration OK" in result.stdout


def test_dump_config_prints_effective_config(tmp_path: Path) -> None:
    """--dump-config prints the whole effective config, defaults filled in, as YAML."""
    path = tmp_path / "c.yaml"
    path.write_text("cameras:\n  aquarium: {fps: 5}\n")
    result = run("--dump-config", "--config", str(path))
    assert result.returncode == 0
    dumped = yaml.safe_load(result.stdout)
    assert dumped["cameras"]["aquarium"]["fps"] == 5
    assert dumped["cameras"]["aquarium"]["width"] == 1280
    assert dumped["server"]["port"] == 8888


def test_bad_configs_exit_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """Missing, empty, invalid-YAML, non-mapping and invalid files: one line on stderr, exit 2."""
    cases = {
        "missing.yaml": None,
        "empty.yaml": "",
        "broken.yaml": "server: [\n",
        "list.yaml": "- a\n- b\n",
        "bad.yaml": "cameras:\n  c: {fps: 0}\n",
        # Hostile documents (issue 8): formerly a hang, and a RecursionError with exit 1.
        "bomb.yaml": "".join(
            f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 10) + "]\n"
            for i in range(9)
        )
        + "cameras: *a8\n",
        "deep.yaml": "[" * 900,
        "listen.yaml": 'server: {listen: "a\\0b"}\n',
        "root.yaml": "server: {web_root: /}\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        for extra in ((), ("--check-config",)):
            result = run("--config", str(path), *extra)
            assert result.returncode == 2, (name, result)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (name, result.stderr)
            assert lines[0].startswith("pyimagestreamd: configuration error: ")
            assert str(path) in lines[0]
            assert result.stdout == ""


async def exited(pid: int) -> None:
    """Return as soon as the process has exited (its pidfd turns readable).

    Not `proc.wait()`: that also waits for asyncio's child-watcher thread and for the end of
    the stderr pipe, which a loaded machine can delay well after the process is gone.
    """
    fd = os.pidfd_open(pid)
    gone = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_reader(fd, lambda: gone.done() or gone.set_result(None))
    try:
        await gone
    finally:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)


async def test_sigterm_while_streaming_exits_0_within_2_s(spawn: Any) -> None:
    """SIGTERM during streaming: the daemon exits 0 within 2 s, without a traceback."""
    dp = await spawn("cameras:\n  cam: {width: 640, height: 480, fps: 30}\n")
    async with ws_connect(dp) as ws:
        for _ in range(5):
            await ws.send("x")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))
        await ws.send("x")  # a request in flight when the signal comes
        started = time.monotonic()
        dp.proc.send_signal(signal.SIGTERM)
        # The client answers the daemon's close (1001) meanwhile: this loop is free.
        await asyncio.wait_for(exited(dp.proc.pid), timeout(10))
        took = time.monotonic() - started
        code = await asyncio.wait_for(dp.proc.wait(), timeout(10))
    await dp.drain_task
    log = "".join(dp.log)
    assert code == 0, log
    assert took < timeout(2.0), f"exited {took:.2f} s after SIGTERM:\n{log}"
    assert "Traceback" not in log
    assert "stopped" in log


async def test_sigint_stops_cleanly(spawn: Any) -> None:
    """Ctrl-C (SIGINT) stops the daemon like SIGTERM: exit 0, no traceback."""
    dp = await spawn("cameras:\n  cam: {width: 64, height: 48, fps: 5}\n")
    dp.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(dp.proc.wait(), timeout(10)) == 0
    await dp.drain_task
    assert "Traceback" not in "".join(dp.log)


async def test_port_in_use_is_one_clear_error(spawn: Any, tmp_path: Path) -> None:
    """A port already taken: one clear error line and exit 1, not a traceback."""
    dp = await spawn("cameras:\n  cam: {width: 64, height: 48, fps: 5}\n")
    path = tmp_path / "second.yaml"
    path.write_text(f"server: {{listen: 127.0.0.1, port: {dp.port}}}\n")
    result = await asyncio.to_thread(run, "--config", str(path))
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1 port" in result.stderr
    assert "Traceback" not in result.stderr
