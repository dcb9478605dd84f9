"""Pacing: when may a streaming connection take its next frame.

Between the hub's latest-frame slot and the wire. A push client (MJPEG) or a WebSocket with
credits gets the newest frame *when its connection can take it*: if frames were written
whenever we have one, they would queue in the socket send buffer (autotuned to megabytes)
and the link, and a viewer on a slow link would watch seconds-old pictures. So the next
frame is written only when (1) asyncio holds nothing unsent for the connection and (2) the
kernel holds less than NOTSENT_LOWAT bytes not yet sent. (2) is what TCP_NOTSENT_LOWAT on
the socket makes the kernel report as "writable"; we wait for that on a duplicate of the
socket's descriptor (asyncio owns the original), so the wait is event-driven, not polled.
Bytes in flight (sent, not yet acknowledged) do not count: the link stays full.

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
from typing import Protocol

# Unsent bytes the kernel may hold for a client when we write the next frame. Small enough
# that a frame never waits behind an old one, big enough that the wakeup comes before the
# link runs dry (the time to write 16 KiB is far below one packet time at 100 Mbit/s).
NOTSENT_LOWAT = 16 * 1024
# Linux: TCP_NOTSENT_LOWAT (not in Python's socket module before 3.12 on every build) and
# SIOCOUTQNSD (bytes in the send queue not yet sent).
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
SIOCOUTQNSD = 0x894B


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


class SendGate:
    """Waits until one connection can take a frame without queueing behind older ones."""

    def __init__(self, out: _Output) -> None:
        self.out = out

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
            if fd < 0 or self.out.closed.done() or unsent_bytes(fd) <= NOTSENT_LOWAT:
                return
            await self._writable(fd)

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
