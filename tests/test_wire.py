"""The bytes of a frame message as clients get them: our framing, our metadata template."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from pyimagestreamd.frame import Frame
from pyimagestreamd.v2wire import fill_meta, frame_head, meta_template
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


@settings(max_examples=300, deadline=None)
@given(
    jpeg_size=st.sampled_from([0, 1, 60, 61, 62, 65_000, 65_400, 65_500, 80_000])
    | st.integers(0, 200_000),
    captured_at=st.floats(90.0, 110.0) | st.just(100.5),
    held=st.floats(-1.0, 5.0) | st.just(0.0),
    seq=st.integers(1, 2**40),
    camera=st.text(max_size=300),
)
def test_frame_head_is_the_frame_message_as_framed_part_by_part(
    jpeg_size: int, captured_at: float, held: float, seq: int, camera: str
) -> None:
    """A frame's head and JPEG are byte for byte the message framed the long way
    (binary_frame of the length, the filled-in metadata and the JPEG), at every length
    class of the frame, metadata lengths near each class's edge included."""
    frame = Frame(b"\xa5" * jpeg_size, 640, 480, captured_at, 1764590000.25, seq=seq)
    template = meta_template(json.dumps(camera), frame)
    meta = fill_meta(template, frame, 100.5, held)
    long_way = binary_frame(struct.pack(">I", len(meta)) + meta + frame.jpeg)
    assert frame_head(template, frame, 100.5, held) + frame.jpeg == long_way


@pytest.mark.parametrize("value", [-1.5, -0.0, 0.0, 1e-9, 2.5, float("nan"), float("inf")])
def test_fill_meta_clamps_age_and_held_as_max_did(value: float) -> None:
    """Age and held below zero (or not a number) read 0, as max(0.0, x) made them."""
    frame = Frame(b"j", 4, 2, 100.0, 1.0, seq=1)
    template = meta_template('"c"', frame)
    expected = template % (max(0.0, 100.0 + value - 100.0), max(0.0, value))
    assert fill_meta(template, frame, 100.0 + value, value) == expected


@pytest.mark.parametrize("template", [b"%.4f %.4f", b'{"camera": "c", "age": %.4f, "held": %.4f}'])
@pytest.mark.parametrize("edge", [126, 1 << 16])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_frame_head_at_each_edge_of_a_length_class(template: bytes, edge: int, delta: int) -> None:
    """Frames one byte below, at and above each length class's edge are framed as the
    long way frames them (a short template reaches the shortest class too)."""
    meta_size = len(template % (0.5, 0.25))
    frame = Frame(b"\x5a" * (edge + delta - 4 - meta_size), 4, 2, 100.0, 1.0, seq=1)
    meta = fill_meta(template, frame, 100.5, 0.25)
    long_way = binary_frame(struct.pack(">I", len(meta)) + meta + frame.jpeg)
    assert frame_head(template, frame, 100.5, 0.25) + frame.jpeg == long_way
