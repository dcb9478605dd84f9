"""RateLimitedLog: one line per key and interval, the held-back count in the next line."""

from __future__ import annotations

import logging

import pytest

from pyimagestreamd.ratelimit import MAX_KEYS, RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(caplog: pytest.LogCaptureFixture) -> tuple[RateLimitedLog, Clock]:
    caplog.set_level(logging.DEBUG, logger="test.ratelimit")
    clock = Clock()
    return RateLimitedLog(logging.getLogger("test.ratelimit"), 60.0, clock), clock


def test_a_burst_writes_one_line(
    limited: tuple[RateLimitedLog, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 events of one key within the interval write exactly one line."""
    rl, _ = limited
    written = [rl.warning("accept", "accept failed: %s", "EMFILE") for _ in range(10_000)]
    assert written.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == ["accept failed: EMFILE"]


def test_the_next_line_after_the_interval_counts_what_was_held_back(
    limited: tuple[RateLimitedLog, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    """After the interval the next event is written with the number of events dropped."""
    rl, clock = limited
    for _ in range(38):
        rl.warning("k", "refused %s", "10.0.0.1")
    clock.now += 59.9
    assert not rl.warning("k", "refused %s", "10.0.0.1")
    clock.now += 0.2
    assert rl.warning("k", "refused %s", "10.0.0.2")
    assert caplog.records[-1].getMessage() == "refused 10.0.0.2 (38 more in the last 60 s)"
    assert caplog.records[-1].levelno == logging.WARNING


def test_keys_are_independent(
    limited: tuple[RateLimitedLog, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    """A second key is written even while the first is being held back."""
    rl, _ = limited
    assert rl.error("a", "a")
    assert rl.error("b", "b")
    assert not rl.error("a", "a")
    assert [r.getMessage() for r in caplog.records] == ["a", "b"]


def test_the_key_table_is_bounded(limited: tuple[RateLimitedLog, Clock]) -> None:
    """Invented keys never grow the table past MAX_KEYS: the oldest is forgotten."""
    rl, clock = limited
    for i in range(MAX_KEYS * 3):
        clock.now += 0.001
        rl.info(f"key{i}", "x")
    assert len(rl._keys) == MAX_KEYS
    assert "key0" not in rl._keys
