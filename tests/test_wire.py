"""The bytes of a frame message as clients get them: our framing, our metadata template."""

from __future__ import annotations

import json

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from pyimagestreamd.frame import Frame
from pyimagestreamd.ws_v2 import ClientMessage, frame_meta, parse_client_message
from pyimagestreamd.wsframing import binary_frame, binary_header


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 300_000])
def test_binary_frame_is_what_websockets_serializes(size: int) -> None:
    """Our header and payload are byte for byte websockets' own frame, at every length class."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    theirs = WsFrame(Opcode.BINARY, payload).serialize(mask=False)
    assert binary_frame(payload) == theirs
    assert binary_header(size) + payload == theirs


@pytest.mark.parametrize(
    ("camera", "frame"),
    [
        ("cam", Frame(b"j", 1920, 1080, 100.0, 1764590000.1, seq=7)),
        ('we"ird\\ näme', Frame(b"j", 4, 2, 99.5, 1764590000.0, seq=1, is_placeholder=True)),
        ("c", Frame(b"j", 640, 480, 100.25, 1764590000.123456, seq=123456789)),
        ("c", Frame(b"j", 640, 480, 101.0, 0.0, seq=2)),  # captured "after" now: age 0
        ("100% %s %%", Frame(b"j", 8, 8, 100.0, 1.0, seq=3)),  # the template's own sign
    ],
)
def test_frame_meta_reads_back_as_json_dumps_of_the_fields(camera: str, frame: Frame) -> None:
    """The template gives the object json.dumps() gave, keys in the same order."""
    now = 100.5
    expected = {
        "camera": camera,
        "seq": frame.seq,
        "time": round(frame.wall_time, 3),
        "age": round(max(0.0, now - frame.captured_at), 4),
        "width": frame.width,
        "height": frame.height,
        "offline": frame.is_placeholder,
        "held": 0.1235,
    }
    got = json.loads(frame_meta(json.dumps(camera), frame, now, 0.12345))
    assert got == expected
    assert list(got) == list(expected)


@pytest.mark.parametrize("kind", ["next", "pause", "resume"])
@pytest.mark.parametrize("spelling", ['{{"type":"{}"}}', '{{"type": "{}"}}', '{{ "type" : "{}" }}'])
def test_common_client_messages_parse_as_the_json_parser_reads_them(
    kind: str, spelling: str
) -> None:
    """The spellings answered without the JSON parser mean what the parser says they mean."""
    assert parse_client_message(spelling.format(kind)) == ClientMessage(kind)
