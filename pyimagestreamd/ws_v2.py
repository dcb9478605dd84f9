"""Protocol 2 (subprotocol "pyimagestream.v2"): credits, pause/resume, state messages.

The client sends {"type": "next"} for each frame it wants (up to `window` outstanding),
{"type": "pause"} / {"type": "resume"} when it stops / starts watching, and
{"type": "size", "max_width": N} to get frames at most N pixels wide from then on (0: the
camera's own size). The server sends
{"type": "hello", ...} first, then {"type": "state", ...} on every camera state change, and
for each credit one binary message: a 4-byte big-endian length N, N bytes of JSON metadata
(camera, seq, time, age, width, height, offline, held), then the JPEG. `held` is how long
the credit the frame answers waited here (for a newer frame, at the pacing gate): a client
that times its round trip from credit to frame takes it out, since it is no network time.

`parse_client_message` (v2wire.py) is the I/O-free parser of the client's messages (fuzzed by the
hostile-input suite). Smaller frames come from the camera's Scaler (scaler.py), shared by
every client of that camera that asked the same size; a client that never sent "size" gets
the camera's frames untouched.

A client's task serves it, except while it holds credits for a live camera with its input
left in the kernel (wsconn.py, `defer_input`): then the hub's publish serves it (`_push`,
Hub.push_frames), reading its credits and writing its frame in the turn that captured it,
without waking the task; anything but "credits, then the frame" hands it back to the task,
which goes on as if that frame had woken it. Event-loop thread only.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import weakref
from collections import deque
from typing import Any

from pyimagestreamd.camera import CameraState
from pyimagestreamd.delivery import send_if_ready, send_newest
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub
from pyimagestreamd.scaler import Scaler
from pyimagestreamd.v2wire import (
    MAX_ASKED_WIDTH,
    MESSAGE_TYPES,
    NEXT_TEXTS,
    ClientMessage,
    ClientProtocolError,
    frame_head,
    frame_meta,
    meta_template,
    parse_client_message,
)
from pyimagestreamd.wsconn import WebSocket

log = logging.getLogger(__name__)

# Most frame requests a client may have outstanding: enough to fill a long fat link, small
# enough that a stalled client holds little.
MAX_WINDOW = 8
CLOSE_POLICY = 1008
# What the hello tells a client this server understands beyond next/pause/resume.
FEATURES = ("size",)

# One Scaler per camera, for as long as its hub lives.
_scalers: weakref.WeakKeyDictionary[Hub, Scaler] = weakref.WeakKeyDictionary()


def scaler_for(hub: Hub) -> Scaler:
    """The Scaler of `hub`'s camera (made at the first client that asks for a size)."""
    scaler = _scalers.get(hub)
    if scaler is None:
        scaler = _scalers[hub] = Scaler()
    return scaler


class ProtocolV2:
    """One protocol-2 connection."""

    def __init__(self, ws: WebSocket, hub: Hub, cameras: list[str]) -> None:
        self.ws = ws
        self.hub = hub
        self.cameras = cameras
        # Arrival times (monotonic) of the outstanding credits, oldest first: a frame
        # answers the oldest, and its metadata says how long that one was held. Its length
        # is the credit count. No maxlen: both places that add one refuse past MAX_WINDOW
        # first (a maxlen would drop the oldest silently instead of showing a bug).
        self.credit_times: deque[float] = deque()
        self.last_seq = 0
        self.watching = False
        self.reported_version = -1
        self.max_width = 0
        self._camera_json = json.dumps(hub.name)
        self._make_meta = functools.partial(meta_template, self._camera_json)
        # True while the handler itself reads the input it deferred (it acts on it next).
        self._reading = False

    async def run(self) -> None:
        hub, ws = self.hub, self.ws
        self._send_json({
            "type": "hello",
            "protocol": 2,
            "camera": hub.name,
            "cameras": self.cameras,
            "window": MAX_WINDOW,
            "state": hub.state.value,
            "reason": hub.reason,
            "features": list(FEATURES),
        })  # fmt: skip
        self.reported_version = hub.state_version
        self._watch(True)
        ws.take_message = self._take_credit
        try:
            while ws.is_open:
                while ws.messages:
                    try:
                        if ws.overflowed:
                            raise ClientProtocolError("too many messages without waiting")
                        self._handle(parse_client_message(ws.messages.popleft()))
                    except ClientProtocolError as exc:
                        log.debug("client %s: protocol error: %s", ws.conn.peer, exc)
                        ws.conn.server.stats.aborted("protocol_error")
                        self._send_json({"type": "error", "message": str(exc)})
                        await ws.close(CLOSE_POLICY, str(exc))
                        return
                if hub.state_version != self.reported_version:
                    self.reported_version = hub.state_version
                    self._send_json({
                        "type": "state",
                        "camera": hub.name,
                        "state": hub.state.value,
                        "reason": hub.reason,
                    })  # fmt: skip
                    continue
                latest = hub.latest
                if self.credits > 0 and latest is not None and latest.seq > self.last_seq:
                    sent = await send_newest(ws.conn, hub, latest, self._send_frame, "websocket")
                    if sent is None:
                        return
                    continue
                # Credits in hand and a camera that sends frames: its next frame wakes us,
                # and what the client sends meanwhile is read then, before we act on it.
                if self.credits > 0 and hub.state is CameraState.LIVE:
                    ws.defer_input()
                else:
                    ws.take_input()
                if ws.input_deferred:
                    # The hub's publish reads it and sends while it can (_push), and hands
                    # the connection back for anything else: a message that is not a
                    # credit, the last credit spent, a closed gate, input read as it comes
                    # again, a state change, the connection closing. We then go on as if
                    # woken by that frame.
                    await hub.push_frames(self._push, ws.incoming(), at_state_change=True)
                else:
                    # A hub change or a client message (or the end of the connection) wakes us.
                    await hub.wait_change(until=ws.incoming())
                self._read_deferred()
        finally:
            ws.take_message = None
            ws.take_input()
            self._watch(False)

    def _push(self, frame: Frame) -> bool:
        """In the hub's publish: what the task would do on waking for `frame`, if that is only
        reading credits and sending it; False (the task's turn) for anything else."""
        ws = self.ws
        # _read_deferred, spelled out: this runs for every frame of every pushed client.
        self._reading = True
        try:
            deferred = ws.read_deferred()
        finally:
            self._reading = False
        if (
            not deferred
            or ws.messages
            or not ws.is_open
            or self.hub.state_version != self.reported_version
            or not self.credit_times
            or frame.seq <= self.last_seq
        ):
            return False
        if not send_if_ready(ws.conn, self.hub, frame, self._send_frame, "websocket"):
            return False
        return bool(self.credit_times)

    def _read_deferred(self) -> None:
        # The handler reads what the client sent and acts on it next: credits count at once.
        self._reading = True
        try:
            self.ws.read_deferred()
        finally:
            self._reading = False

    @property
    def credits(self) -> int:
        """The frame requests outstanding (at most MAX_WINDOW)."""
        return len(self.credit_times)

    def _take_credit(self, message: str | bytes) -> bool:
        """Count a "next" as it arrives when that is all it does: the handler sleeps on.

        Only while watching (a "next" after "pause" also resumes), under the window, and when
        the handler has no frame to send with it, or is reading its deferred input (it looks
        at its credits next); any other message is queued for the handler, which answers it
        (or the protocol error) as before.
        """
        if type(message) is not str or message not in NEXT_TEXTS:
            return False
        if not self.watching or len(self.credit_times) >= MAX_WINDOW:
            return False
        if not self._reading:
            latest = self.hub.latest
            if latest is not None and latest.seq > self.last_seq:
                return False
        self.credit_times.append(time.monotonic())
        return True

    def _watch(self, watching: bool) -> None:
        if watching and not self.watching:
            self.hub.add_viewer()
        elif not watching and self.watching:
            self.hub.remove_viewer()
        self.watching = watching

    def _handle(self, message: ClientMessage) -> None:
        kind = message.kind
        if kind == "size":
            self.max_width = message.max_width
        elif kind == "next":
            if self.credits >= MAX_WINDOW:
                raise ClientProtocolError(f"more than {MAX_WINDOW} frame requests outstanding")
            self.credit_times.append(time.monotonic())
            self._watch(True)  # a request is as good as a resume
        elif kind == "pause":
            self.credit_times.clear()
            self._watch(False)
        else:
            self._watch(True)

    def _send_json(self, data: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(data))

    def _send_frame(self, frame: Frame) -> int:
        if self.max_width and frame.width > self.max_width:
            frame = scaler_for(self.hub).scaled(frame, self.max_width)
        now = time.monotonic()
        # Sent only with a credit in hand (run() checks): the oldest is the one answered.
        credit_at = self.credit_times.popleft() if self.credit_times else now
        template = self.hub.serialized(frame, "websocket-v2-meta", self._make_meta)
        self.last_seq = frame.seq
        return self.ws.send_framed_parts(
            frame_head(template, frame, now, now - credit_at), frame.jpeg
        )


# What the wire format module holds, importable from here as before the split.
__all__ = [
    "MAX_ASKED_WIDTH",
    "MAX_WINDOW",
    "MESSAGE_TYPES",
    "ClientMessage",
    "ClientProtocolError",
    "ProtocolV2",
    "frame_meta",
    "parse_client_message",
    "scaler_for",
]
