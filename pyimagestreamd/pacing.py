"""Pacing: when may a streaming connection take its next frame.

Between the hub's latest-frame slot and the wire. A push client (MJPEG) or a WebSocket with
credits gets the newest frame *when its connection can take it*: if frames were written
whenever we have one, they would queue in the socket send buffer (autotuned to megabytes)
and the link, and a viewer on a slow link would watch seconds-old pictures. So the next
frame is written only when (1) asyncio holds nothing unsent for the connection and (2) the
kernel holds less than NOTSENT_LOWAT bytes not yet sent. (2) is what TCP_NOTSENT_LOWAT on
the socket makes the kernel report as "writable"; we wait for that on a duplicate of the
socket's descriptor (asyncio owns the original), so the wait is event-driven, not polled.
Behind a deep link queue TCP's congestion window grows into that queue: unsent bytes
alone left a push stream's frames 4.6 s old at p95 on a 2 Mbit/s link (README, "Which send
gate keeps a push client fresh"). So for a push stream (MJPEG, no window) and for protocol
2 (whose client's window may be larger than the path holds: README, "Slow links") (3) the
bytes unsent *plus unacknowledged* (SIOCOUTQ) must also fit IN_FLIGHT_GAIN
times the path's bandwidth-delay product, from tcp_info: the largest delivery rate of the
last few seconds times the minimum RTT. The kernel signals no acknowledgements, so (3)
sleeps about as long as the link needs to carry the excess (never longer than a quarter
of the RTT, nor than IN_FLIGHT_POLL_MAX) and looks again: a few wake-ups per frame.
A connection whose queued bytes are at most MIN_IN_FLIGHT (below every limit (3) can
compute, and below NOTSENT_LOWAT) passes on that one ioctl, without tcp_info: the common
case of a link that carried the last frame before the next one came.

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
import time
from collections import deque
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
# In flight may reach this many times the estimated bandwidth-delay product. Above 1 so
# that an estimate taken while the stream did not fill the link (the delivery rate is then
# below the link's) grows towards the link's rate instead of holding itself down; the
# price is at most (gain - 1) RTTs of queue, 50 ms on a 100 ms path.
IN_FLIGHT_GAIN = 1.5
# The in-flight bound never goes below this many segments: enough to keep TCP's
# acknowledgement clock going while the path's measurements are still small or missing.
MIN_IN_FLIGHT_SEGMENTS = 4
# The smallest in-flight limit there can be (segments of TCP's smallest MSS). A connection
# whose queued bytes (unsent ones included) are no more than this is ready whatever tcp_info
# says: one ioctl then answers the gate instead of three system calls, the common case of a
# client whose link takes a frame before the next one comes.
MIN_IN_FLIGHT = MIN_IN_FLIGHT_SEGMENTS * 536
# Delivery rate: the largest sample of the last RATE_BUCKETS buckets of RATE_BUCKET s.
RATE_BUCKET = 1.0
RATE_BUCKETS = 3
# Sleeps while waiting for acknowledgements: at least this long (no busy loop), at most
# this long or a quarter of the minimum RTT, whichever is shorter.
IN_FLIGHT_POLL_MIN = 0.002
IN_FLIGHT_POLL_MAX = 0.05


class _Output(Protocol):
    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def closed(self) -> asyncio.Future[None]: ...

    @property
    def pending_output(self) -> int: ...

    async def drained(self) -> None: ...


def configure(sock: socket.socket) -> None:
    """Socket options for an accepted client socket (TCP only; others are left alone)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)


def _ioctl_int(fd: int, request: int) -> int:
    """The int a socket ioctl answers (0 if unknown: not a socket, or not Linux)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError:
        return 0
    return int(buf[0])


def unsent_bytes(fd: int) -> int:
    """Bytes the kernel holds for this socket that were not sent yet (0 if unknown)."""
    return _ioctl_int(fd, SIOCOUTQNSD)


def queued_bytes(fd: int) -> int:
    """Bytes the kernel holds for this socket, unsent or unacknowledged (0 if unknown)."""
    return _ioctl_int(fd, SIOCOUTQ)


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


def in_flight_limit(mss: int, min_rtt: float, rate: float) -> int:
    """Bytes that may be unsent or in flight before the next frame is written."""
    return max(MIN_IN_FLIGHT_SEGMENTS * max(mss, 536), int(IN_FLIGHT_GAIN * rate * min_rtt))


# Below both bounds, so that MIN_IN_FLIGHT answers for both.
assert MIN_IN_FLIGHT <= NOTSENT_LOWAT


def poll_delay(excess: int, rate: float, min_rtt: float) -> float:
    """How long to sleep before looking again at `excess` bytes too many in flight."""
    longest = min(IN_FLIGHT_POLL_MAX, max(IN_FLIGHT_POLL_MIN, min_rtt / 4))
    wanted = excess / rate if rate > 0 else longest
    return min(longest, max(IN_FLIGHT_POLL_MIN, wanted))


class RateMax:
    """The largest delivery rate seen over the last few seconds (bucketed: cheap per sample).

    The kernel's delivery rate is one sample per acknowledgement, low whenever the stream
    briefly left the link idle; the link's rate is the largest recent one.
    """

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque(maxlen=RATE_BUCKETS)  # [start, max]

    def add(self, rate: float, now: float) -> float:
        """Record a sample taken at monotonic time `now`; returns the current maximum."""
        if self.buckets and now - self.buckets[-1][0] < RATE_BUCKET:
            self.buckets[-1][1] = max(self.buckets[-1][1], rate)
        else:
            self.buckets.append([now, rate])
        while now - self.buckets[0][0] >= RATE_BUCKET * RATE_BUCKETS:
            self.buckets.popleft()
        return max(b[1] for b in self.buckets)


class SendGate:
    """Waits until one connection can take a frame without queueing behind older ones."""

    def __init__(self, out: _Output) -> None:
        self.out = out
        # Push streams (MJPEG) and protocol-2 WebSockets also wait until the bytes in flight
        # fit the path; the original protocol's one request bounds them itself.
        self.bound_in_flight = False
        self._rate = RateMax()
        self._fileno = -1

    def _sock(self) -> socket.socket | None:
        transport = self.out.transport
        return transport.get_extra_info("socket") if transport is not None else None

    def _fd(self) -> int:
        # The socket is closed only after the connection's `closed` is done, which every
        # use of the number checks first: it cannot be another socket's by then.
        if self._fileno < 0:
            sock = self._sock()
            self._fileno = sock.fileno() if sock is not None else -1
        return self._fileno

    def ready_now(self) -> bool:
        """True if the connection can take the next frame now, the common case (or is gone:
        the write is then a no-op); answered without a timer or a wait."""
        out = self.out
        if out.pending_output != 0:
            return False
        fd = self._fd()
        if fd < 0 or out.closed.done():
            return True
        if not self.bound_in_flight:
            return unsent_bytes(fd) <= NOTSENT_LOWAT
        queued = queued_bytes(fd)
        # Unsent bytes are queued bytes too: at most MIN_IN_FLIGHT passes (2) and (3)
        # whatever the path. The rate sample not taken then is a drained link's.
        return queued <= MIN_IN_FLIGHT or (
            unsent_bytes(fd) <= NOTSENT_LOWAT and self._in_flight_excess(fd, queued)[0] <= 0
        )

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109 - the interface
        """Return when the connection can take the next frame; TimeoutError after `timeout`.

        Returns at once if the connection is gone (the write is then a no-op).
        """
        if self.ready_now():
            return
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
        while not self.out.closed.done():
            excess, rate, min_rtt = self._in_flight_excess(fd)
            if excess <= 0:
                return
            await asyncio.wait({self.out.closed}, timeout=poll_delay(excess, rate, min_rtt))

    def _in_flight_excess(self, fd: int, queued: int | None = None) -> tuple[int, float, float]:
        """(bytes queued beyond the path's limit, delivery rate, min RTT), one look;
        `queued`: queued_bytes(fd) if the caller just asked."""
        mss, min_rtt, rate = path_estimate(self._sock())
        rate = self._rate.add(rate, time.monotonic())
        if queued is None:
            queued = queued_bytes(fd)
        return queued - in_flight_limit(mss, min_rtt, rate), rate, min_rtt

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
