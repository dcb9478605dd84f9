"""/metrics: the Prometheus text exposition of the server's counters, via prometheus_client.

Read-only, like /api/state (state.py), from the same sources: each camera's hub and source
(frames captured, published, dropped and sent, state, fps, viewers), the clients by kind,
bytes sent and the frame age at send (a histogram, stats.py), refused and aborted
connections by reason. Built at scrape time by one collector on a registry of this server
(never prometheus_client's global one: tests run several servers in one process).
Event-loop thread only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pyimagestreamd.camera import CameraState
from pyimagestreamd.state import clients_by_kind
from pyimagestreamd.stats import AGE_BUCKETS, KINDS

if TYPE_CHECKING:
    from pyimagestreamd.server import StreamServer

P = "pyimagestream_"


class _Collector:
    def __init__(self, server: StreamServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server, stats = self.server, self.server.stats
        labels = ["camera"]
        captured = CounterMetricFamily(
            P + "frames_captured", "Frames from the camera", labels=labels
        )
        dropped = CounterMetricFamily(
            P + "frames_dropped", "Camera frames dropped (bad or late)", labels=labels
        )
        published = CounterMetricFamily(
            P + "frames_published", "Frames put in the hub, offline cards included", labels=labels
        )
        sent = CounterMetricFamily(
            P + "frames_sent", "Frames sent to clients", labels=["camera", "kind"]
        )
        sent_bytes = CounterMetricFamily(
            P + "sent_bytes", "Bytes of frames sent to clients", labels=["camera", "kind"]
        )
        state = GaugeMetricFamily(
            P + "camera_state", "1 for the camera's current state", labels=["camera", "state"]
        )
        fps = GaugeMetricFamily(P + "camera_fps", "Measured capture rate", labels=labels)
        viewers = GaugeMetricFamily(
            P + "camera_viewers", "Clients watching the camera", labels=labels
        )
        age = HistogramMetricFamily(
            P + "frame_age_at_send_seconds", "Frame age when sent", labels=labels
        )
        for name, runner in server.runners.items():
            hub, counters = runner.hub, runner.source.counters
            captured.add_metric([name], counters.get("frames_captured", 0))
            dropped.add_metric([name], counters.get("frames_dropped", 0))
            published.add_metric([name], hub.frames_published)
            for s in CameraState:
                state.add_metric([name, s.value], 1.0 if hub.state is s else 0.0)
            fps.add_metric([name], hub.measured_fps)
            viewers.add_metric([name], hub.viewers)
            cam = stats.cameras.get(name)
            for kind in KINDS:
                sent.add_metric([name, kind], cam.frames[kind] if cam else 0)
                sent_bytes.add_metric([name, kind], cam.bytes[kind] if cam else 0)
            counts = cam.age_counts() if cam else [0] * (len(AGE_BUCKETS) + 1)
            buckets = [(f"{b:g}", float(c)) for b, c in zip(AGE_BUCKETS, counts, strict=False)]
            buckets.append(("+Inf", float(counts[-1])))
            age.add_metric([name], buckets, cam.age_sum if cam else 0.0)
        yield from (captured, dropped, published, sent, sent_bytes, state, fps, viewers, age)
        clients = GaugeMetricFamily(P + "clients", "Streaming clients by kind", labels=["kind"])
        for kind, count in clients_by_kind(server).items():
            clients.add_metric([kind], count)
        yield clients
        yield GaugeMetricFamily(
            P + "open_connections", "Open TCP connections", value=len(server.connections)
        )
        yield CounterMetricFamily(
            P + "connections", "Connections accepted", value=stats.connections
        )
        refused = CounterMetricFamily(
            P + "refused_connections", "Requests or connections refused", labels=["reason"]
        )
        for reason, count in stats.refusals.items():
            refused.add_metric([reason], count)
        aborted = CounterMetricFamily(
            P + "aborted_connections", "Connections dropped while served", labels=["reason"]
        )
        for reason, count in stats.aborts.items():
            aborted.add_metric([reason], count)
        yield refused
        yield aborted


def make_registry(server: StreamServer) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(server))
    return registry


def render(server: StreamServer) -> tuple[bytes, str]:
    """The exposition text and its Content-Type."""
    return generate_latest(server.metrics_registry), CONTENT_TYPE_LATEST
