"""Pacing: when may a streaming connection take its next frame.

Between the hub's latest-frame slot and the wire. A push client (MJPEG) or a WebSocket with
credits gets the newest frame *when its connection can take it*: if frames were written
whenever we have one, they would queue in the socket send buffer (autotuned to megabytes)
and the link, and a viewer on a slow link would watch seconds-old pictures. So the next
frame is written only when (1) asyncio holds nothing unsent for the connection and (2) the
kernel holds less than NOTSENT_LOWAT bytes not yet sent. (2) is what TCP_NOTSENT_LOWAT on
the socket makes the kernel report as "writable"; we wait for that on a duplicate of the
socket's descriptor (asyncio owns the original), so the wait is event-driven, not polled.
For a WebSocket, bytes in flight (sent, not yet acknowledged) do not count: its credit
window bounds them. A push stream (MJPEG) has no window, and behind a deep link queue TCP's
congestion window grows into that queue, so (3) it also waits until the bytes unsent plus
unacknowledged fit the path's bandwidth-delay product, as tcp_info measures it: measured on
a 2 Mbit/s link with 100 ms round trip, unsent bytes alone left frames 4.6 s old at p95,
with (3) 0.40 s at µStreamer's frame rate (README, "Which send gate keeps a push client
fresh"). The kernel signals no acknowledgements, so (3) sleeps for the excess's transfer
time and looks again.

The policy lives here alone so that it can be tuned after measuring on a shaped link
(`make bench-link`). Interface: `SendGate(conn).wait_ready(timeout)`; `configure(sock)`
at accept. Event-loop thread only.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import socket
import struct
from typing import Protocol

# Unsent bytes the kernel may hold for a client when we write the next frame. Small enough
# that a frame never waits behind an old one, big enough that the wakeup comes before the
# link runs dry (the time to write 16 KiB is far below one packet time at 100 Mbit/s).
NOTSENT_LOWAT = 16 * 1024
# Linux: TCP_NOTSENT_LOWAT (not in Python's socket module before 3.12 on every build) and
# SIOCOUTQNSD (bytes in the send queue not yet sent).
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
SIOCOUTQNSD = 0x894B
# Bytes in the send queue not yet acknowledged, sent or not (TIOCOUTQ on a TCP socket).
SIOCOUTQ = 0x5411
# The in-flight bound never goes below this many segments: enough to keep TCP's
# acknowledgement clock going when the path's measurements are still small or missing.
MIN_IN_FLIGHT_SEGMENTS = 4
# Longest single sleep while waiting for in-flight bytes to be acknowledged.
IN_FLIGHT_POLL_MAX = 0.05


class _Output(Protocol):
    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def closed(self) -> asyncio.Future[None]: ...

    async def drained(self) -> None: ...


def configure(sock: socket.socket) -> None:
    """Socket options for an accepted client socket (TCP only; others are left alone)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)


def unsent_bytes(fd: int) -> int:
    """Bytes the kernel holds for this socket that were not sent yet (0 if unknown)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, SIOCOUTQNSD, buf, True)
    except OSError:
        return 0
    return int(buf[0])


def queued_bytes(fd: int) -> int:
    """Bytes the kernel holds for this socket, sent but unacknowledged or unsent (0 if unknown)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, SIOCOUTQ, buf, True)
    except OSError:
        return 0
    return int(buf[0])


def path_estimate(sock: socket.socket | None) -> tuple[int, float, float]:
    """(MSS, min RTT in s, delivery rate in bytes/s) from Linux's tcp_info; zeros if unknown."""
    if sock is None:
        return 0, 0.0, 0.0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 168)
    except OSError:
        return 0, 0.0, 0.0
    if len(info) < 168:
        return 0, 0.0, 0.0
    (mss,) = struct.unpack_from("<I", info, 16)  # tcpi_snd_mss
    (min_rtt,) = struct.unpack_from("<I", info, 148)  # tcpi_min_rtt, microseconds
    (rate,) = struct.unpack_from("<Q", info, 160)  # tcpi_delivery_rate
    return mss, min_rtt / 1e6, float(rate)


def in_flight_excess(queued: int, mss: int, min_rtt: float, rate: float) -> int:
    """Bytes above the path's bandwidth-delay product (at least a few segments) in flight.

    More than that in flight waits in the link's queue, not on the wire: a frame written
    now would wait behind it. Measured (`tests/vm/bench_pacing.py`, 2 Mbit/s, 100 ms round
    trip, netem's 1000-packet queue): gating on unsent bytes alone left p95 frame ages of
    4.6 s; gating on this as well, 0.40 s at µStreamer's frame rate within 2%.
    """
    limit = max(MIN_IN_FLIGHT_SEGMENTS * max(mss, 536), rate * min_rtt)
    return max(0, queued - int(limit))


class SendGate:
    """Waits until one connection can take a frame without queueing behind older ones."""

    def __init__(self, out: _Output) -> None:
        self.out = out
        # Push streams (MJPEG) also wait until the bytes in flight fit the path; a WebSocket
        # with credits is bounded by its window instead.
        self.bound_in_flight = False

    def _fd(self) -> int:
        transport = self.out.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        return sock.fileno() if sock is not None else -1

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109 - the interface
        """Return when the connection can take the next frame; TimeoutError after `timeout`.

        Returns at once if the connection is gone (the write is then a no-op).
        """
        async with asyncio.timeout(timeout):
            await self.out.drained()
            fd = self._fd()
            if fd < 0 or self.out.closed.done():
                return
            if unsent_bytes(fd) > NOTSENT_LOWAT:
                await self._writable(fd)
            if self.bound_in_flight:
                await self._in_flight_fits(fd)

    async def _in_flight_fits(self, fd: int) -> None:
        # The kernel wakes no one when acknowledgements arrive: sleep about as long as the
        # link needs to carry the excess, then look again (a few wake-ups per frame).
        transport = self.out.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        while not self.out.closed.done():
            mss, min_rtt, rate = path_estimate(sock)
            excess = in_flight_excess(queued_bytes(fd), mss, min_rtt, rate)
            if not excess:
                return
            delay = excess / rate if rate > 0 else IN_FLIGHT_POLL_MAX
            await asyncio.sleep(min(IN_FLIGHT_POLL_MAX, max(0.002, delay)))

    async def _writable(self, fd: int) -> None:
        # asyncio refuses add_writer on a descriptor a transport owns: watch a duplicate,
        # which refers to the same socket, for the kernel's "writable" (below the low mark).
        loop = asyncio.get_running_loop()
        try:
            dup = os.dup(fd)
        except OSError:
            # Out of descriptors: poll the kernel's count instead, at a modest rate.
            while not self.out.closed.done() and unsent_bytes(fd) > NOTSENT_LOWAT:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return
        waiter: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        try:
            loop.add_writer(dup, ready)
            await asyncio.wait({waiter, self.out.closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_writer(dup)
            os.close(dup)
