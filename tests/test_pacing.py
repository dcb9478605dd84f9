"""pacing.py: the in-flight bound for push streams, and the kernel counts it reads."""

from __future__ import annotations

import socket

from pyimagestreamd import pacing


def test_in_flight_within_the_bdp_is_no_excess() -> None:
    """Up to rate x min RTT in flight may stay: the link needs that much to stay busy."""
    # 2 Mbit/s, 100 ms: 25,000 bytes.
    assert pacing.in_flight_excess(25_000, 1448, 0.1, 250_000) == 0
    assert pacing.in_flight_excess(100_000, 1448, 0.1, 250_000) == 75_000


def test_in_flight_bound_never_drops_below_a_few_segments() -> None:
    """Without measurements yet (rate 0), a few segments may still be in flight."""
    floor = pacing.MIN_IN_FLIGHT_SEGMENTS * 1448
    assert pacing.in_flight_excess(floor, 1448, 0.0, 0.0) == 0
    assert pacing.in_flight_excess(floor + 1, 1448, 0.0, 0.0) == 1


def test_kernel_counts_on_a_real_socket() -> None:
    """queued_bytes and path_estimate read a connected TCP socket; unknown sockets give 0."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"x" * 10_000)
                assert peer.recv(1 << 16)
                mss, min_rtt, rate = pacing.path_estimate(client)
                assert mss > 0 and min_rtt >= 0 and rate >= 0
                assert pacing.queued_bytes(client.fileno()) >= 0
    assert pacing.path_estimate(None) == (0, 0.0, 0.0)
