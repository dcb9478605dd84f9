"""stats.py: the counts of frames sent, and the frame-age histogram /metrics shows."""

from __future__ import annotations

import types

import pytest

from pyimagestreamd import stats
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub


def test_age_histogram_counts_each_age_at_or_below_every_bound_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ages on a bound, between bounds and above them all: the cumulative counts Prometheus reads."""
    monkeypatch.setattr(stats, "time", types.SimpleNamespace(monotonic=lambda: 0.0))
    server, hub = stats.ServerStats(), Hub("cam", 1.0)
    bounds = stats.AGE_BUCKETS
    ages = [0.0, bounds[0], bounds[0] * 1.5, bounds[3], bounds[-1] * 2]
    for age in ages:
        server.frame_sent(hub, Frame(b"j", 8, 8, -age, 0.0, seq=1), 10, "websocket")
    cam = server.cameras["cam"]
    expected = [sum(1 for a in ages if a <= bound) for bound in bounds] + [len(ages)]
    assert cam.age_counts() == expected
    assert expected[:5] == [2, 3, 3, 4, 4]  # the ages above fall where meant
    assert cam.age_sum == pytest.approx(sum(ages))
    assert cam.frames["websocket"] == hub.frames_sent == len(ages)
    assert cam.bytes["websocket"] == 10 * len(ages)
