"""Protocol 2 "size": smaller frames for the clients that ask, shared, never for others."""

from __future__ import annotations

import json
from typing import Any

import simplejpeg
from conftest import deadline, recv_v2_frame, ws_connect

from pyimagestreamd.ws_v2 import scaler_for

BIG = "cameras:\n  cam:\n    width: 1280\n    height: 720\n    fps: 30\n    stop_delay: 1\n"


def _size(jpeg: bytes) -> tuple[int, int]:
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    return width, height


async def _pull(
    ws: Any, count: int, max_width: int | None = None
) -> list[tuple[dict[str, Any], bytes]]:
    hello = json.loads(await ws.recv())
    assert "size" in hello["features"]
    if max_width is not None:
        await ws.send(json.dumps({"type": "size", "max_width": max_width}))
    frames = []
    for _ in range(count):
        await ws.send('{"type": "next"}')
        frames.append(await recv_v2_frame(ws))
    return frames


async def test_a_client_asking_for_a_width_gets_frames_of_that_size(start_daemon: Any) -> None:
    """max_width 320 on a 1280x720 camera: every frame decodes to 320x180, as its metadata says."""
    rd = await start_daemon(BIG)
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(30):
        for meta, jpeg in await _pull(ws, 20, 320):
            assert (meta["width"], meta["height"]) == (320, 180)
            assert _size(jpeg) == (320, 180)


async def test_clients_asking_the_same_size_share_one_encode_and_others_get_full_frames(
    start_daemon: Any,
) -> None:
    """Two clients at 640 get the same bytes per frame from one encode; a third, silent, gets 1280."""
    rd = await start_daemon(BIG)
    async with (
        ws_connect(rd, "/websocket/cam", v2=True) as a,
        ws_connect(rd, "/websocket/cam", v2=True) as b,
        ws_connect(rd, "/websocket/cam", v2=True) as full,
        deadline(30),
    ):
        frames_a = await _pull(a, 15, 640)
        frames_b = await _pull(b, 15, 640)
        for meta, jpeg in await _pull(full, 5):
            assert (meta["width"], meta["height"]) == (1280, 720)
            assert _size(jpeg) == (1280, 720)
        by_seq = {meta["seq"]: jpeg for meta, jpeg in frames_a}
        common = [seq for seq in (m["seq"] for m, _ in frames_b) if seq in by_seq]
        for meta, jpeg in frames_b:
            assert _size(jpeg) == (640, 360)
            if meta["seq"] in by_seq:
                assert jpeg == by_seq[meta["seq"]]
        hub = rd.daemon.runners["cam"].hub
        distinct = {m["seq"] for m, _ in frames_a} | {m["seq"] for m, _ in frames_b}
        # One encode per frame and size, whoever asked: never one per client.
        assert scaler_for(hub).made == len(distinct), (
            scaler_for(hub).made,
            len(distinct),
            len(common),
        )


async def test_a_bad_max_width_is_a_protocol_error(start_daemon: Any) -> None:
    """A width that is not an integer in range gets an error message and close code 1008."""
    rd = await start_daemon(BIG)
    async with ws_connect(rd, "/websocket/cam", v2=True) as ws, deadline(10):
        await ws.recv()
        await ws.send('{"type": "size", "max_width": "wide"}')
        error = json.loads(await ws.recv())
        while error["type"] == "state":  # the camera starting meanwhile
            error = json.loads(await ws.recv())
        assert error["type"] == "error"
        assert "max_width" in error["message"]
        await ws.wait_closed()
        assert ws.close_code == 1008
