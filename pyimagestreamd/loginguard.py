"""Brute-force guard: failed logins slow down, then lock, per client address and per user.

Every password check (login form or HTTP Basic) asks `retry_after(address, user)` first: a
positive answer means "refuse without checking, come back in that many seconds" (429 with
Retry-After), so a locked client costs no scrypt time. After each check the server reports
`failed()` or `succeeded()`, and an attempt refused unchecked as `refused()`: a client that
ignores Retry-After reaches the lock all the sooner.

Per address: the first `free_failures` mistakes are free (typos), then each further one
doubles the wait from `base_delay`, and at `lock_after` failures the address is locked for
`lock_duration`. Per user: the same with thresholds twice as high, so one address hammering a
name locks itself (its refused attempts are not counted against the user) long before the
user is slowed for everyone, while many addresses guessing one name are slowed down together.
A success clears that address and that user.

Burst logging: one WARNING when an address starts failing and one when it is locked, with
the address and never the password, rate-limited by RateLimitedLog. I/O-free, injectable
monotonic clock; event-loop thread only. The tables are bounded (oldest entries forgotten).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyimagestreamd.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

MAX_ENTRIES = 10000


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


class LoginGuard:
    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        lock_after: int = 10,
        lock_duration: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lock_after = lock_after
        self.lock_duration = lock_duration
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._log = RateLimitedLog(log, interval=60.0, clock=clock)

    def _wait(self, key: str, scale: int, now: float) -> float:
        record = self._records.get(key)
        if record is None:
            return 0.0
        if record.locked_until > now:
            return record.locked_until - now
        extra = record.failures - self.free_failures * scale
        if extra <= 0:
            return 0.0
        if record.locked_until and record.failures >= self.lock_after * scale:
            # The lock has run out: start again from a clean slate.
            del self._records[key]
            return 0.0
        delay = min(self.base_delay * 2.0 ** (extra - 1), self.max_delay)
        return max(0.0, record.last_at + delay - now)

    def retry_after(self, address: str, user: str | None) -> float:
        """Seconds before this address may try (this user's) password again; 0: go ahead."""
        now = self.clock()
        wait = self._wait("a:" + address, 1, now)
        if user is not None:
            wait = max(wait, self._wait("u:" + user, 2, now))
        return wait

    def is_locked(self, address: str) -> bool:
        record = self._records.get("a:" + address)
        return record is not None and record.locked_until > self.clock()

    def failed(self, address: str, user: str | None) -> None:
        now = self.clock()
        self._count("a:" + address, 1, now, address)
        if user is not None:
            self._count("u:" + user, 2, now, address)

    def refused(self, address: str) -> None:
        """An attempt refused by `retry_after`: it counts towards the address's lock only."""
        self._count("a:" + address, 1, self.clock(), address)

    def succeeded(self, address: str, user: str) -> None:
        self._records.pop("a:" + address, None)
        self._records.pop("u:" + user, None)

    def _count(self, key: str, scale: int, now: float, address: str) -> None:
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= MAX_ENTRIES:
                oldest = min(self._records, key=lambda k: self._records[k].last_at)
                del self._records[oldest]
            record = self._records[key] = _Record()
        record.failures += 1
        record.last_at = now
        what = "address" if key.startswith("a:") else "user"
        if record.failures == self.free_failures * scale + 1:
            self._log.warning(
                "fail:" + key, "failed logins: %s %s is being slowed down", what, key[2:]
            )
        if record.failures >= self.lock_after * scale and record.locked_until <= now:
            record.locked_until = now + self.lock_duration
            self._log.warning(
                "lock:" + key,
                "failed logins: %s %s locked for %g s (last from %s)",
                what,
                key[2:],
                self.lock_duration,
                address,
            )
