"""Faults on real drivers: unplug and re-plug, a stopped producer, a busy device, no device.

In each case the daemon keeps running, viewers stay connected and see the offline state and
card, and frames resume by themselves on the same connections once the device is back.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable

import pytest
import vmlib


def offline_reasons(client: vmlib.V2Client) -> list[str]:
    return [
        s["reason"] for s in client.states if s.get("type") == "state" and s["state"] == "offline"
    ]


def offline_log_reasons(log: str, camera: str) -> list[str]:
    """The reasons of the daemon's "camera NAME offline: REASON" lines, in order."""
    marker = f"camera {camera} offline: "
    return [line.split(marker, 1)[1].strip() for line in log.splitlines() if marker in line]


def has_live_frame_after(client: vmlib.V2Client, index: int) -> bool:
    return any(not f.meta["offline"] for f in client.frames[index:])


async def original_protocol_frame(url: str) -> bytes:
    return (await vmlib.original_client_frames(url, 1))[0]


@pytest.mark.usefixtures("vivid")
async def test_unplug_and_replug_resume_on_the_same_connections(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """vivid unbound while streaming: offline (ENODEV) with the card; rebound: frames resume."""
    daemon = start_daemon(
        vmlib.camera_yaml("cam", source=vmlib.VIVID, width=640, height=480, fps=25)
    )
    async with (
        vmlib.V2Client(daemon.url("cam")) as v2,
        vmlib.connect_original(daemon.url("cam")) as v1,
    ):
        await v2.pump(vmlib.timeout(30), until=lambda c: has_live_frame_after(c, 0))
        assert has_live_frame_after(v2, 0), daemon.log()
        await v1.next_jpeg()

        vmlib.vivid_unplug()
        await v2.pump(
            vmlib.timeout(20),
            until=lambda c: bool(offline_reasons(c)) and c.frames[-1].meta["offline"],
        )
        reasons = offline_reasons(v2)
        assert reasons and "disconnected" in reasons[0], v2.states
        card = v2.frames[-1]
        assert card.meta["offline"] and (card.meta["width"], card.meta["height"]) == (640, 480)
        # The original protocol and /snapshot.jpg get the same cards: the very same bytes.
        v1_card = await v1.next_jpeg()
        status, snapshot = daemon.get("/snapshot/cam.jpg")
        assert status == 200
        await v2.pump(1.5)
        cards = {f.jpeg for f in v2.frames if f.meta["offline"]}
        assert v1_card in cards and snapshot in cards

        await asyncio.sleep(2)  # a few retries against a missing device
        # One log line per fault, not one per retry: more attempts than lines, and never
        # the same reason twice in a row.
        retries = daemon.camera("cam")["errors"]
        logged = offline_log_reasons(daemon.log(), "cam")
        assert 1 <= len(logged) < retries, (logged, retries)
        assert all(a != b for a, b in itertools.pairwise(logged)), logged
        vmlib.vivid_replug()
        mark = len(v2.frames)
        await v2.pump(vmlib.timeout(30), until=lambda c: has_live_frame_after(c, mark))
        assert has_live_frame_after(v2, mark), daemon.log()
        assert v2.states[-1]["state"] == "live"
        assert await v1.next_jpeg() not in cards
    assert daemon.proc.poll() is None


@pytest.mark.usefixtures("vivid")
async def test_by_path_link_follows_a_replug_that_renumbers_the_device(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """Configured by its udev by-path link, vivid re-plugged as /dev/video7: frames resume."""
    link = vmlib.vivid_by_path()
    vmlib.wait_until(
        lambda: os.path.realpath(link) == vmlib.VIVID, 10, f"udev's {link} -> {vmlib.VIVID}"
    )
    daemon = start_daemon(vmlib.camera_yaml("cam", source=link, width=640, height=480, fps=25))
    async with vmlib.V2Client(daemon.url("cam"), keep_jpeg=False) as client:
        await client.pump(vmlib.timeout(30), until=lambda c: has_live_frame_after(c, 0))
        assert has_live_frame_after(client, 0), daemon.log()
        assert daemon.camera("cam")["format"]["device"] == vmlib.VIVID

        # The re-plug: the device goes away (the daemon sees ENODEV and closes it, so the
        # module can be unloaded), and comes back under another number.
        vmlib.vivid_unplug()
        await client.pump(vmlib.timeout(20), until=lambda c: bool(offline_reasons(c)))
        assert offline_reasons(client), client.states
        # In a thread: the client's connection keeps answering the server's pings meanwhile.
        await asyncio.to_thread(
            vmlib.wait_until,
            lambda: vmlib.run("modprobe", "-r", "vivid", check=False).returncode == 0,
            20, "vivid to unload (the daemon to close the gone device)",
        )  # fmt: skip
        node = await asyncio.to_thread(vmlib.load_vivid, 7)
        await asyncio.to_thread(
            vmlib.wait_until, lambda: os.path.realpath(link) == node, 10, f"{link} -> {node}"
        )
        assert node != vmlib.VIVID and "video0" not in os.listdir("/dev")

        mark = len(client.frames)
        await client.pump(vmlib.timeout(40), until=lambda c: has_live_frame_after(c, mark))
        assert has_live_frame_after(client, mark), daemon.log()
        assert client.states[-1]["state"] == "live"
        assert daemon.camera("cam")["format"]["device"] == node
    assert daemon.proc.poll() is None


@pytest.mark.usefixtures("loopback")
async def test_stopped_producer_is_a_timeout_and_a_new_one_resumes(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """No frames from v4l2loopback for a while: offline "no frames"; a new producer resumes it."""
    daemon = start_daemon(
        vmlib.camera_yaml("cam", source=vmlib.LOOP_MJPEG, width=1920, height=1080, fps=30)
    )
    async with vmlib.V2Client(daemon.url("cam"), keep_jpeg=False) as client:
        with vmlib.clip_feeder():
            await client.pump(vmlib.timeout(30), until=lambda c: has_live_frame_after(c, 0))
            assert has_live_frame_after(client, 0), daemon.log()
        # Only offline states after the stream was live count (the node may have had no
        # producer yet when the camera started).
        before = len(offline_reasons(client))
        await client.pump(vmlib.timeout(30), until=lambda c: len(offline_reasons(c)) > before)
        reasons = offline_reasons(client)[before:]
        assert reasons and "no frames" in reasons[0], client.states
        mark = len(client.frames)
        with vmlib.clip_feeder():
            await client.pump(vmlib.timeout(40), until=lambda c: has_live_frame_after(c, mark))
        assert has_live_frame_after(client, mark), daemon.log()


@pytest.mark.usefixtures("vivid")
async def test_busy_device_is_reported_and_taken_over_when_released(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """Another program streaming from the camera: offline "busy"; when it exits, frames come."""
    holder = vmlib.busy_holder(vmlib.VIVID)
    try:
        await asyncio.sleep(2)  # let it reach STREAMON
        assert holder.poll() is None, "v4l2-ctl could not start streaming"
        daemon = start_daemon(vmlib.camera_yaml("cam", source=vmlib.VIVID, width=640, height=480))
        async with vmlib.V2Client(daemon.url("cam"), keep_jpeg=False) as client:
            await client.pump(vmlib.timeout(20), until=lambda c: bool(offline_reasons(c)))
            assert offline_reasons(client) and "busy" in offline_reasons(client)[0], client.states
            holder.kill()
            holder.wait()
            mark = len(client.frames)
            await client.pump(vmlib.timeout(30), until=lambda c: has_live_frame_after(c, mark))
            assert has_live_frame_after(client, mark), daemon.log()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.usefixtures("loopback")
async def test_missing_device_at_start_is_offline_and_appears_later(
    start_daemon: Callable[..., vmlib.Daemon],
) -> None:
    """A configured device that does not exist yet: offline "no such device" until it does."""
    path = "/dev/pyimagestream-late-camera"
    daemon = start_daemon(vmlib.camera_yaml("cam", source=path, width=1920, height=1080, fps=30))
    async with vmlib.V2Client(daemon.url("cam"), keep_jpeg=False) as client:
        await client.pump(vmlib.timeout(20), until=lambda c: bool(offline_reasons(c)))
        assert offline_reasons(client) and "no such device" in offline_reasons(client)[0], (
            client.states
        )
        # "Plugging it in": the stable name appears, as udev would make a by-id link.
        os.symlink(vmlib.LOOP_MJPEG, path)
        try:
            with vmlib.clip_feeder():
                mark = len(client.frames)
                await client.pump(vmlib.timeout(40), until=lambda c: has_live_frame_after(c, mark))
                assert has_live_frame_after(client, mark), daemon.log()
                assert daemon.camera("cam")["format"]["device"] == vmlib.LOOP_MJPEG
        finally:
            os.unlink(path)
