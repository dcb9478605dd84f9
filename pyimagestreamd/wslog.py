"""websockets' log lines for our WebSocket connections: errors kept, rate-limited; chatter dropped.

Handed to each connection's sans-I/O protocol (wsconn.py) as its logger. Event-loop thread
only.
"""

from __future__ import annotations

import logging

from pyimagestreamd.ratelimit import RateLimitedLog


class WebsocketsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' log lines for a connection: its errors (real bugs) at ERROR, rate-limited.

    Its INFO lines ("connection open", "connection rejected") are one per connection: the
    counters in /api/state say the same without flooding the journal.
    """

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__(logging.getLogger("websockets.server"), {})
        self.limiter = limiter

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return level >= logging.ERROR

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if level >= logging.ERROR:
            self.limiter.error(f"websockets:{msg}", f"websockets: {msg}", *args, **kwargs)
