"""Protocol 2's wire format, I/O-free: the client's messages parsed, the frame metadata made.

Between the bytes a protocol-2 connection carries and its handler (ws_v2.py, which has the
protocol's description): `parse_client_message` turns a client's message into a
ClientMessage or a ClientProtocolError (fuzzed by the hostile-input suite), and
`meta_template` / `fill_meta` make the JSON metadata in front of each frame's JPEG. No I/O,
no state; any thread.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from pyimagestreamd.frame import Frame

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
    return template % (max(0.0, now - frame.captured_at), max(0.0, held))


def frame_meta(camera_json: str, frame: Frame, now: float, held: float = 0.0) -> bytes:
    """The JSON metadata of one frame message; `camera_json` is json.dumps(camera name).

    `held`: seconds between the answered credit's arrival and `now`.
    """
    return fill_meta(meta_template(camera_json, frame), frame, now, held)


NEXT_TEXTS = frozenset(text for text, message in _COMMON_MESSAGES.items() if message.kind == "next")
