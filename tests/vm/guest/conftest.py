"""Fixtures for the in-guest tests (tests/vm/guest): drivers loaded, daemons cleaned up.

These tests need root and the guest's kernel drivers: they run only inside the test VM
(`make vm-test`), and fail loudly anywhere else rather than skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import vmlib


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0 or not vmlib.CLIP.exists():
        raise pytest.UsageError(
            "tests/vm/guest runs only inside the test VM (as root, with the prepared clip): "
            "use `make vm-test`"
        )


@pytest.fixture(scope="session")
def loopback() -> None:
    """v4l2loopback with the three test nodes, loaded once."""
    vmlib.load_v4l2loopback()


@pytest.fixture
def vivid() -> Iterator[None]:
    """A freshly loaded vivid (a test may have unplugged it or changed its input)."""
    vmlib.load_vivid()
    yield
    vmlib.run("modprobe", "-r", "vivid", check=False)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., vmlib.Daemon]]:
    """Start pyimagestreamd with the given cameras YAML; stopped and its log shown after."""
    daemons: list[vmlib.Daemon] = []

    def start(cameras: str, log_level: str = "info", **more: Any) -> vmlib.Daemon:
        sub = tmp_path / f"daemon{len(daemons)}"
        sub.mkdir()
        daemon = vmlib.Daemon(cameras, sub, log_level, **more)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()
        print(f"--- daemon log ({daemon.config}) ---\n{daemon.log()}")


@pytest.fixture
def purged_after() -> Iterator[None]:
    """Whatever happens, the service must not outlive the test (it holds port 8888)."""
    yield
    subprocess.run(
        ["apt-get", "purge", "-y", "-q", "pyimagestream"], capture_output=True, check=False
    )
