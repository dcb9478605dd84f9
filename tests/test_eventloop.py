"""The daemon's event loop: uvloop when it is installed, asyncio's own loop with a warning."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from pyimagestreamd import eventloop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """With uvloop installed the coroutine runs on uvloop's loop, logged at INFO."""
    caplog.set_level(logging.INFO, "pyimagestreamd.eventloop")
    assert eventloop.run(loop_module()) == "uvloop"
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("event loop: uvloop 0.")


def test_without_uvloop_runs_on_asyncio_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without uvloop the daemon still runs, on asyncio's loop, and warns naming the package."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    caplog.set_level(logging.INFO, "pyimagestreamd.eventloop")
    assert eventloop.run(loop_module()).startswith("asyncio.")
    warning, info = caplog.records
    assert warning.levelno == logging.WARNING
    assert "python3-uvloop" in warning.getMessage()
    assert info.getMessage() == "event loop: asyncio"
