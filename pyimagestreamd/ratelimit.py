"""Rate-limited log lines: one line per key and interval, with a count of what was held back.

Used wherever a warning can repeat at the rate of the network or of a broken camera (a
refused client, an accept error, a bad frame): the journal must keep the lines that matter,
so a burst of 40,000 identical events writes one line now and one summary line
("... (39,999 more in the last 60 s)") when the next one comes after the interval.

No I/O of its own and no timers: the summary is written by the next event of the same key,
so a key that goes quiet costs nothing. Event-loop thread or a single thread per limiter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Keys are bounded: a hostile client must not grow the table with invented reasons.
MAX_KEYS = 256


class RateLimitedLog:
    """Logs at most one line per key every `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        # key -> (time of the last line written, events held back since)
        self._keys: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, msg: str, *args: object, **kwargs: object) -> bool:
        """Log `msg % args` unless `key` was logged within the interval; True if written."""
        now = self.clock()
        last = self._keys.get(key)
        if last is not None and now - last[0] < self.interval:
            self._keys[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        if len(self._keys) >= MAX_KEYS and key not in self._keys:
            self._forget_oldest()
        self._keys[key] = (now, 0)
        if held:
            msg = f"{msg} ({held} more in the last {self.interval:g} s)"
        self.logger.log(level, msg, *args, **kwargs)  # type: ignore[arg-type]
        return True

    def warning(self, key: str, msg: str, *args: object, **kwargs: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args, **kwargs)

    def error(self, key: str, msg: str, *args: object, **kwargs: object) -> bool:
        return self.log(logging.ERROR, key, msg, *args, **kwargs)

    def info(self, key: str, msg: str, *args: object, **kwargs: object) -> bool:
        return self.log(logging.INFO, key, msg, *args, **kwargs)

    def _forget_oldest(self) -> None:
        oldest = min(self._keys, key=lambda k: self._keys[k][0])
        del self._keys[oldest]
