"""Event loop: the one loop the daemon's data flow runs on, uvloop where it is installed.

Every frame crosses the loop several times (the capture thread's hand-over, a few loop turns,
the socket writes), and uvloop does those in C: `make bench-stream` measured the daemon's CPU
per delivered frame lower on uvloop than on asyncio's own loop (README, "CPU per delivered
frame on loopback"). The .deb depends on python3-uvloop and the venv pins it. Without it the
daemon still runs, on asyncio's loop, and says so with a WARNING: the code is the same on both
(unit tests run on asyncio's loop, installed-daemon tests on uvloop), only slower.
Called once, from the main thread, by cli.py and the benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """(factory of the loop to run on, its name for the log)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: the fallback is asyncio's loop
    except ImportError as exc:
        log.warning(
            "uvloop is not installed (%s): running on asyncio's own event loop, which costs "
            "more CPU per frame; install python3-uvloop",
            exc,
        )
        return asyncio.new_event_loop, "asyncio"
    return uvloop.new_event_loop, f"uvloop {getattr(uvloop, '__version__', '')}".strip()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new loop (asyncio.run with the loop chosen above)."""
    factory, name = loop_factory()
    log.info("event loop: %s", name)
    # asyncio.Runner, not uvloop.run(): Debian bookworm's uvloop 0.17 has no run().
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
