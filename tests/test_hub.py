"""Hub semantics: latest-frame slot, no repeats, shared waits, camera on demand with a delay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from conftest import timeout

from pyimagestreamd.camera import CameraState
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub


def frame(tag: bytes = b"x") -> Frame:
    return Frame(b"\xff\xd8" + tag + b"\xff\xd9", 4, 2, time.monotonic(), time.time())


async def test_publish_numbers_frames_and_keeps_only_the_latest() -> None:
    """Each publish gets the next seq; the slot holds only the newest frame."""
    hub = Hub("c", 1.0)
    first = hub.publish(frame(b"1"))
    second = hub.publish(frame(b"2"))
    assert (first.seq, second.seq) == (1, 2)
    assert hub.latest is second


async def test_wait_frame_after_returns_newest_unseen_and_skips_missed_frames() -> None:
    """A client behind by several frames gets the newest one, never the ones in between."""
    hub = Hub("c", 1.0)
    for tag in (b"1", b"2", b"3"):
        hub.publish(frame(tag))
    got = await hub.wait_frame_after(1)
    assert got.seq == 3


async def test_wait_frame_after_waits_and_never_repeats_a_frame() -> None:
    """A client that has the newest frame waits for the next one instead of getting it again."""
    hub = Hub("c", 1.0)
    hub.publish(frame())
    waiter = asyncio.ensure_future(hub.wait_frame_after(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    hub.publish(frame())
    assert (await asyncio.wait_for(waiter, 1)).seq == 2


async def test_cancelled_waiter_does_not_cancel_others() -> None:
    """One client leaving mid-wait (its wait cancelled) must not break the others' wait."""
    hub = Hub("c", 1.0)
    leaving = asyncio.ensure_future(hub.wait_frame_after(0))
    staying = asyncio.ensure_future(hub.wait_frame_after(0))
    await asyncio.sleep(0.01)
    leaving.cancel()
    await asyncio.sleep(0.01)
    hub.publish(frame())
    assert (await asyncio.wait_for(staying, 1)).seq == 1


async def test_state_change_wakes_waiters_and_counts_versions() -> None:
    """set_state wakes wait_change() and bumps state_version only on a real change."""
    hub = Hub("c", 1.0)
    waiting = asyncio.ensure_future(hub.wait_change())
    await asyncio.sleep(0.01)
    hub.set_state(CameraState.OFFLINE, "gone")
    await asyncio.wait_for(waiting, 1)
    version = hub.state_version
    hub.set_state(CameraState.OFFLINE, "gone")
    assert hub.state_version == version
    hub.set_state(CameraState.OFFLINE, "another reason")
    assert hub.state_version == version + 1


async def test_first_viewer_wants_capture_and_last_one_stops_after_delay() -> None:
    """Capture is wanted from the first viewer until stop_delay after the last one left."""
    changes: list[bool] = []
    hub = Hub("c", 0.05, on_demand=changes.append)
    hub.add_viewer()
    hub.add_viewer()
    assert changes == [True]
    hub.remove_viewer()
    hub.remove_viewer()
    assert changes == [True]  # not yet: the stop delay runs
    async with asyncio.timeout(timeout(5)):
        while changes != [True, False]:
            await asyncio.sleep(0.01)
    assert not hub.wants_capture


async def test_viewer_returning_within_delay_cancels_the_stop() -> None:
    """A viewer coming back before stop_delay ends keeps the camera running."""
    changes: list[bool] = []
    hub = Hub("c", 0.3, on_demand=changes.append)
    hub.add_viewer()
    hub.remove_viewer()
    # One turn of the loop between leaving and coming back: far less than 0.3 s even on a
    # busy machine (a wait measured in time here could outlast the delay and flake).
    await asyncio.sleep(0)
    hub.add_viewer()
    # Past the original stop time: the cancelled stop must not happen (waiting longer on a
    # slow machine only makes the check stricter).
    await asyncio.sleep(0.45)
    assert changes == [True]
    assert hub.wants_capture


async def test_measured_fps_follows_publish_rate() -> None:
    """measured_fps reflects the capture timestamps of recent frames."""
    hub = Hub("c", 1.0)
    hub.set_state(CameraState.LIVE)
    now = time.monotonic()
    for i in range(11):
        hub.publish(Frame(b"", 2, 2, now - 1.0 + i * 0.1, 0.0))
    assert abs(hub.measured_fps - 10.0) < 0.01
    hub.set_state(CameraState.SLEEPING)
    assert hub.measured_fps == 0.0


async def test_change_future_is_taken_synchronously_and_survives_a_cancelled_shield() -> None:
    """A change right after taking change_future() is not missed; cancelling a shield is harmless."""
    hub = Hub("c", 1.0)
    mine = asyncio.shield(hub.change_future())
    other = hub.change_future()
    mine.cancel()
    hub.publish(frame())  # before anyone awaited: still seen
    await asyncio.wait_for(asyncio.shield(other), 1)
    assert other.done() and not other.cancelled()


def test_serialized_is_made_once_per_frame_and_kind() -> None:
    """Every client of a kind shares one serialization of a frame; a new frame makes a new one."""
    hub = Hub("c", 1.0)
    made: list[tuple[str, int]] = []

    def make(kind: str) -> Callable[[Frame], bytes]:
        def serialize(f: Frame) -> bytes:
            made.append((kind, f.seq))
            return kind.encode() + f.jpeg

        return serialize

    first = hub.publish(frame(b"1"))
    for _ in range(3):
        assert hub.serialized(first, "a", make("a")) == b"a" + first.jpeg
        assert hub.serialized(first, "b", make("b")) == b"b" + first.jpeg
    second = hub.publish(frame(b"2"))
    assert hub.serialized(second, "a", make("a")) == b"a" + second.jpeg
    assert made == [("a", 1), ("b", 1), ("a", 2)]


async def test_waits_ended_by_until_or_cancelled_leave_no_waiter_behind() -> None:
    """A client woken by its own messages between frames, or leaving, leaves nothing queued."""
    hub = Hub("c", 1.0)
    loop = asyncio.get_running_loop()
    for _ in range(1000):
        until = loop.create_future()
        waiting = asyncio.ensure_future(hub.wait_change(until=until))
        await asyncio.sleep(0)
        until.set_result(None)
        assert await waiting is False
    leaving = asyncio.ensure_future(hub.wait_change(until=loop.create_future()))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    assert hub._waiters == {}
    staying = asyncio.ensure_future(hub.wait_change(until=loop.create_future()))
    await asyncio.sleep(0)
    hub.publish(frame())
    assert await asyncio.wait_for(staying, timeout(1)) is True


async def test_pushes_get_each_frame_within_publish_until_they_refuse_one() -> None:
    """A push is called inside publish() with the numbered frame, in the order the pushes
    came, until it returns False: its task's wait then returns and it is not called again,
    while the others still are."""
    hub = Hub("c", 1.0)
    loop = asyncio.get_running_loop()
    got: list[tuple[str, int]] = []

    def first(f: Frame) -> bool:
        got.append(("first", f.seq))
        return False

    def second(f: Frame) -> bool:
        got.append(("second", f.seq))
        return True

    pushing = [
        asyncio.ensure_future(hub.push_frames(push, loop.create_future(), at_state_change=False))
        for push in (first, second)
    ]
    await asyncio.sleep(0)
    hub.publish(frame(b"1"))
    assert got == [("first", 1), ("second", 1)]
    hub.publish(frame(b"2"))
    assert got == [("first", 1), ("second", 1), ("second", 2)]
    await asyncio.wait_for(pushing[0], timeout(1))
    assert not pushing[1].done()
    pushing[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await pushing[1]
    hub.publish(frame(b"3"))
    assert len(got) == 3
    assert hub._pushers == {}


async def test_a_push_ends_at_until_and_at_a_state_change_only_if_asked() -> None:
    """`until` completing hands the client back before the next publish; a state change
    (a new reason is one, a repeat is not) only the pushes that asked for it."""
    hub = Hub("c", 1.0)
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    def stays(f: Frame) -> bool:
        calls.append("stays")
        return True

    def reports(f: Frame) -> bool:
        calls.append("reports")
        return True

    hub.set_state(CameraState.LIVE)
    until = loop.create_future()
    staying = asyncio.ensure_future(hub.push_frames(stays, until, at_state_change=False))
    reporting = asyncio.ensure_future(
        hub.push_frames(reports, loop.create_future(), at_state_change=True)
    )
    await asyncio.sleep(0)
    hub.set_state(CameraState.LIVE)  # no change
    hub.publish(frame())
    assert calls == ["stays", "reports"]
    hub.set_state(CameraState.LIVE, "new reason")
    hub.publish(frame())
    assert calls == ["stays", "reports", "stays"]
    await asyncio.wait_for(reporting, timeout(1))
    until.set_result(None)
    await asyncio.sleep(0)
    hub.publish(frame())
    assert calls == ["stays", "reports", "stays"]
    await asyncio.wait_for(staying, timeout(1))
    # An `until` that is done already: no push at all.
    await hub.push_frames(stays, until, at_state_change=False)
    hub.publish(frame())
    assert calls == ["stays", "reports", "stays"]


async def test_an_error_in_a_push_is_raised_in_its_task_and_publish_goes_on() -> None:
    """A push that raises is taken out and its task's wait raises the error; publish
    returns normally and the other pushes still get the frame."""
    hub = Hub("c", 1.0)
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def broken(f: Frame) -> bool:
        raise RuntimeError("planted")

    def fine(f: Frame) -> bool:
        got.append(f.seq)
        return True

    failing = asyncio.ensure_future(hub.push_frames(broken, loop.create_future(), False))
    going = asyncio.ensure_future(hub.push_frames(fine, loop.create_future(), False))
    await asyncio.sleep(0)
    hub.publish(frame())
    hub.publish(frame())
    assert got == [1, 2]
    assert list(hub._pushers) == [fine]
    with pytest.raises(RuntimeError, match="planted"):
        await asyncio.wait_for(failing, timeout(1))
    going.cancel()
    await asyncio.gather(going, return_exceptions=True)
