"""Unit tests for pyimagestreamd.v4l2buffers: the per-frame DQBUF / copy / QBUF cycle.

The driver is a fake ioctl over bytearrays standing for the mapped buffers (the real
device runs in tests/vm); the poll is on a real pipe.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any

import pytest
from linuxpy.video import raw

from pyimagestreamd.v4l2buffers import StreamBuffers

DQBUF, QBUF = int(raw.IOC.DQBUF), int(raw.IOC.QBUF)


class FakeDriver:
    """Hands out buffers in a scripted order; records every ioctl with the buffer index."""

    def __init__(self, filled: list[tuple[int, int, int]]) -> None:
        self.filled = filled  # (index, bytesused, sequence) per DQBUF
        self.calls: list[tuple[str, int]] = []
        self.queued: set[int] = {0, 1}
        self.fail: OSError | None = None

    def ioctl(self, fd: int, request: int, buf: Any) -> None:
        if request == DQBUF:
            if self.fail is not None:
                raise self.fail
            if not self.filled:
                raise BlockingIOError(errno.EAGAIN, "no buffer")
            buf.index, buf.bytesused, buf.sequence = self.filled.pop(0)
            assert buf.index in self.queued, "dequeued a buffer the driver does not hold"
            self.queued.discard(buf.index)
            self.calls.append(("DQBUF", buf.index))
        elif request == QBUF:
            assert buf.type == raw.BufType.VIDEO_CAPTURE and buf.memory == raw.Memory.MMAP
            self.queued.add(buf.index)
            self.calls.append(("QBUF", buf.index))
        else:
            raise AssertionError(f"unexpected ioctl {request:#x}")


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def maps() -> list[bytearray]:
    return [bytearray(b"A" * 8), bytearray(b"B" * 8)]


def test_read_copies_the_used_bytes_and_queues_the_same_buffer_again(
    pipe: tuple[int, int],
) -> None:
    """read() returns a copy of bytesused bytes of the dequeued buffer, which goes back."""
    driver = FakeDriver([(1, 3, 7), (0, 5, 8)])
    mapped = maps()
    buffers = StreamBuffers(pipe[0], mapped, driver.ioctl)
    first = buffers.read()
    assert first == b"BBB" and buffers.sequence == 7
    mapped[1][:3] = b"xyz"  # the driver reuses the buffer: the frame read must not change
    assert first == b"BBB"
    assert buffers.read() == b"AAAAA" and buffers.sequence == 8
    assert driver.calls == [("DQBUF", 1), ("QBUF", 1), ("DQBUF", 0), ("QBUF", 0)]
    assert driver.queued == {0, 1}


def test_a_buffer_goes_back_even_when_reading_it_fails(pipe: tuple[int, int]) -> None:
    """A failure after DQBUF still queues the buffer again, or capture would run dry."""
    driver = FakeDriver([(1, 3, 1)])
    buffers = StreamBuffers(pipe[0], [bytearray(4)], driver.ioctl)  # no mapping for index 1
    with pytest.raises(IndexError):
        buffers.read()
    assert driver.calls == [("DQBUF", 1), ("QBUF", 1)]


def test_no_buffer_ready_and_a_vanished_device_raise_without_queueing(
    pipe: tuple[int, int],
) -> None:
    """EAGAIN (poll woke for something else) and ENODEV (unplugged) reach the caller as is."""
    driver = FakeDriver([])
    buffers = StreamBuffers(pipe[0], maps(), driver.ioctl)
    with pytest.raises(BlockingIOError):
        buffers.read()
    driver.fail = OSError(errno.ENODEV, "No such device")
    with pytest.raises(OSError) as caught:
        buffers.read()
    assert caught.value.errno == errno.ENODEV
    assert driver.calls == []


def test_dequeue_gives_a_view_into_the_buffer_until_requeue(pipe: tuple[int, int]) -> None:
    """Raw frames are read in place: the view shows the driver's memory, requeue returns it."""
    driver = FakeDriver([(0, 4, 3)])
    mapped = maps()
    buffers = StreamBuffers(pipe[0], mapped, driver.ioctl)
    view = buffers.dequeue()
    assert bytes(view) == b"AAAA" and buffers.sequence == 3
    assert driver.queued == {1}
    mapped[0][0] = ord("z")
    assert bytes(view[:1]) == b"z"
    view.release()
    buffers.requeue()
    assert driver.calls == [("DQBUF", 0), ("QBUF", 0)]


def test_wait_says_whether_the_device_is_readable(pipe: tuple[int, int]) -> None:
    """wait() is False when nothing comes within the timeout and True once there is data."""
    r, w = pipe
    buffers = StreamBuffers(r, maps(), FakeDriver([]).ioctl)
    assert buffers.wait(0.0001) is False
    os.write(w, b"x")
    assert buffers.wait(0.0001) is True
