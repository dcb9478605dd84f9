"""Protocol 2's wire format, I/O-free: the client's messages parsed, the frame metadata made.

Between the bytes a protocol-2 connection carries and its handler (ws_v2.py, which has the
protocol's description): `parse_client_message` turns a client's message into a
ClientMessage or a ClientProtocolError (fuzzed by the hostile-input suite), and
`meta_template` / `fill_meta` make the JSON metadata in front of each frame's JPEG, and
`frame_head` all of a frame message before the JPEG (WebSocket header, length, metadata).
No I/O, no state; any thread.
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

from pyimagestreamd.frame import Frame
from pyimagestreamd.wsframing import binary_header

MESSAGE_TYPES = ("next", "pause", "resume", "size")
# Widest "max_width" a client may ask for; wider frames than this are not made smaller.
MAX_ASKED_WIDTH = 16384


class ClientMessage(NamedTuple):
    kind: str  # "next", "pause", "resume" or "size"
    max_width: int = 0  # "size" only; 0 is the camera's own size


class ClientProtocolError(Exception):
    """A client broke protocol 2; the message is sent to it before closing."""


def parse_client_message(message: str | bytes) -> ClientMessage:
    """One client message, or ClientProtocolError."""
    known = _COMMON_MESSAGES.get(message) if isinstance(message, str) else None
    if known is not None:
        return known
    if not isinstance(message, str):
        raise ClientProtocolError("binary messages are not part of protocol 2")
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        # RecursionError: "[[[[..." deeper than the JSON parser recurses.
        raise ClientProtocolError("messages must be JSON objects") from None
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise ClientProtocolError(f"unknown message type {str(kind)[:40]!r}")
    if kind != "size":
        return ClientMessage(kind)
    width = data.get("max_width")
    # bool is an int to Python, not to the protocol.
    if not isinstance(width, int) or isinstance(width, bool) or not 0 <= width <= MAX_ASKED_WIDTH:
        raise ClientProtocolError(f"size: max_width must be an integer 0..{MAX_ASKED_WIDTH}")
    return ClientMessage(kind, width)


# One "next" per frame sent: these spellings (our page's, the benches') are answered
# without the JSON parser, with what it would return for them.
_COMMON_MESSAGES = {
    text: ClientMessage(kind)
    for kind in ("next", "pause", "resume")
    for text in (f'{{"type":"{kind}"}}', f'{{"type": "{kind}"}}')
}


def meta_template(camera_json: str, frame: Frame) -> bytes:
    """The JSON metadata of `frame` with a `%.4f` where its age and its `held` go.

    The rest is the same for every client of the camera: made once per frame and shared
    (Hub.serialized), each client's message is then one `%` of two numbers. Filled in from
    a template, not json.dumps() of a dict, which was the largest piece of Python work per
    frame sent; it reads back as the same object, keys in the same order.
    """
    return (
        f'{{"camera": {camera_json.replace("%", "%%")}, "seq": {frame.seq}, '
        f'"time": {frame.wall_time:.3f}, "age": %.4f, "width": {frame.width}, '
        f'"height": {frame.height}, "offline": {"true" if frame.is_placeholder else "false"}, '
        '"held": %.4f}'
    ).encode()


def fill_meta(template: bytes, frame: Frame, now: float, held: float) -> bytes:
    """A `meta_template` of `frame` filled in at `now`, its credit `held` seconds."""
    # Not max(0.0, x), which parses keyword arguments on every call: two of these per frame.
    age = now - frame.captured_at
    return template % (age if age > 0.0 else 0.0, held if held > 0.0 else 0.0)


def frame_head(template: bytes, frame: Frame, now: float, held: float) -> bytes:
    """Everything of one frame message in front of its JPEG, made in one step: the
    WebSocket frame header (wsframing.binary_header), the 4-byte length of the metadata
    and the metadata (`fill_meta`). Followed by `frame.jpeg`, it is the whole frame."""
    meta = fill_meta(template, frame, now, held)
    size = 4 + len(meta) + len(frame.jpeg)
    # Camera frames have a 64-bit or a 16-bit length: one pack for both headers.
    if size >= 1 << 16:
        return _HEAD_64.pack(0x82, 127, size, len(meta)) + meta
    if size >= 126:
        return _HEAD_16.pack(0x82, 126, size, len(meta)) + meta
    return binary_header(size) + len(meta).to_bytes(4, "big") + meta


# A binary frame's header with a 64-bit or 16-bit length (RFC 6455 5.2), then the
# metadata's length.
_HEAD_64 = struct.Struct("!BBQI")
_HEAD_16 = struct.Struct("!BBHI")


def frame_meta(camera_json: str, frame: Frame, now: float, held: float = 0.0) -> bytes:
    """The JSON metadata of one frame message; `camera_json` is json.dumps(camera name).

    `held`: seconds between the answered credit's arrival and `now`.
    """
    return fill_meta(meta_template(camera_json, frame), frame, now, held)


NEXT_TEXTS = frozenset(text for text, message in _COMMON_MESSAGES.items() if message.kind == "next")
