"""websockets' own log lines, as the daemon passes them on (no sockets)."""

from __future__ import annotations

import pytest


def test_websockets_log_keeps_errors_rate_limited_and_drops_chatter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """websockets' per-connection INFO lines are dropped; its errors are logged, rate-limited."""
    import logging

    from pyimagestreamd.cli import set_log_level
    from pyimagestreamd.ratelimit import RateLimitedLog
    from pyimagestreamd.wslog import WebsocketsLog

    adapter = WebsocketsLog(RateLimitedLog(logging.getLogger("pyimagestreamd.server")))
    caplog.set_level("DEBUG")
    adapter.info("connection open")
    adapter.debug("< frame")
    assert not adapter.isEnabledFor(logging.DEBUG)
    for _ in range(3):
        adapter.error("opening handshake failed", exc_info=False)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["websockets: opening handshake failed"]
    assert not [r for r in caplog.records if r.levelno < logging.ERROR]
    root = logging.getLogger()
    saved = root.level
    try:
        set_log_level("info")  # what the daemon does at start: websockets is not silenced
        assert logging.getLogger("websockets").level != logging.CRITICAL
    finally:
        root.setLevel(saved)
