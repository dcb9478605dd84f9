"""The reader's fast path against websockets' own parser: same messages, same errors, same output.

Client byte streams (well-formed and not, cut at random places) go both into a plain
websockets `ServerProtocol` and into a `MessageReader` in front of another one; after every
piece, both must have given the same messages and control frames in the same order, sent
the same bytes (pongs, close frames) and be in the same state with the same close codes.
"""

from __future__ import annotations

import itertools
import os
import struct
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from websockets.utils import apply_mask as reference_mask

from pyimagestreamd.wsconn import MAX_MESSAGE_SIZE
from pyimagestreamd.wsreader import MessageReader, apply_mask

Event = tuple[Any, ...]


def open_protocol() -> ServerProtocol:
    """A server protocol after a real opening handshake with websockets' client."""
    client = ClientProtocol(parse_uri("ws://localhost/websocket"))
    client.send_request(client.connect())
    server = ServerProtocol(max_size=MAX_MESSAGE_SIZE)
    for data in client.data_to_send():
        server.receive_data(data)
    server.send_response(server.accept(server.events_received()[0]))
    server.data_to_send()
    return server


class Plain:
    """websockets alone, its frames put together into messages as the reader does with them."""

    def __init__(self) -> None:
        self.protocol = open_protocol()
        self.events: list[Event] = []
        self._parts: list[bytes] = []
        self._opcode = Opcode.TEXT
        self._failed = False

    def receive_data(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._collect()

    def receive_eof(self) -> None:
        self.protocol.receive_eof()
        self._collect()

    def _collect(self) -> None:
        for frame in self.protocol.events_received():
            assert isinstance(frame, Frame)
            if self._failed:
                # RFC 6455 7.1.7: once failed, nothing more from the client is processed,
                # not even frames websockets parsed in the same read.
                break
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                if frame.opcode is not Opcode.CONT:
                    self._opcode = frame.opcode
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    data = b"".join(self._parts)
                    self._parts.clear()
                    self._message(data)
            else:
                self.events.append(("control", frame.opcode, bytes(frame.data)))

    def _message(self, data: bytes) -> None:
        if self._opcode is Opcode.BINARY:
            self.events.append(("message", data))
            return
        try:
            self.events.append(("message", data.decode()))
        except UnicodeDecodeError as exc:
            # What websockets' own connections do with invalid text.
            if self.protocol.state is OPEN:
                self.protocol.fail(1007, f"{exc.reason} at position {exc.start}")
            self._failed = True


class Ours:
    """The same, through the reader."""

    def __init__(self) -> None:
        self.protocol = open_protocol()
        self.events: list[Event] = []
        self.reader = MessageReader(
            self.protocol,
            MAX_MESSAGE_SIZE,
            lambda m: self.events.append(("message", m)),
            lambda f: self.events.append(("control", f.opcode, bytes(f.data))),
        )

        # What receive_data said and what websockets was given, for each piece.
        self.said_fed: list[bool] = []
        self.fed: list[bool] = []
        receive = self.protocol.receive_data

        def counted(data: bytes) -> None:
            self.fed[-1] = True
            receive(data)

        self.protocol.receive_data = counted  # type: ignore[method-assign]

    def receive_data(self, data: bytes) -> None:
        self.fed.append(False)
        self.said_fed.append(self.reader.receive_data(data))

    def receive_eof(self) -> None:
        self.reader.receive_eof()


def assert_same(plain: Plain, ours: Ours) -> None:
    # What wsconn relies on to skip websockets' output and state after a piece.
    assert ours.said_fed == ours.fed
    assert ours.events == plain.events
    assert b"".join(ours.protocol.data_to_send()) == b"".join(plain.protocol.data_to_send())
    assert ours.protocol.state is plain.protocol.state
    assert ours.protocol.close_rcvd == plain.protocol.close_rcvd
    assert ours.protocol.close_sent == plain.protocol.close_sent
    assert type(ours.protocol.parser_exc) is type(plain.protocol.parser_exc)


def client_frame(  # noqa: PLR0917 - every field of a frame, each one to get wrong
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_form: int = 0,
    declared: int | None = None,
) -> bytes:
    """A client frame as given, right or wrong (length_form: 0 shortest, 126 or 127)."""
    length = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    if length_form == 127 or length >= 1 << 16:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    elif length_form == 126 or length >= 126:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | length])
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + reference_mask(payload, mask)


def close_payload(code: int, reason: bytes) -> bytes:
    return struct.pack("!H", code) + reason


payloads = st.one_of(
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b'{"type":"next"}', b'{"type": "pause"}', b"\xff\xfe", b"caf\xc3", b""]),
    st.binary(max_size=130),
    st.sampled_from([125, 126, 1000, 1024, 1025, 70000]).map(lambda n: b"a" * n),
)
common_frames = st.builds(
    client_frame,
    st.sampled_from([0x1, 0x1, 0x1, 0x2, 0x0, 0x9, 0xA]),
    payloads,
    fin=st.booleans() | st.just(True),
)
odd_frames = st.builds(
    client_frame,
    st.integers(0, 15),
    payloads,
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 1, 2, 4, 7]),
    masked=st.booleans(),
    length_form=st.sampled_from([0, 0, 126, 127]),
    declared=st.none() | st.sampled_from([2**63 + 5, 2**64 - 1, 1025, 65536, 200]),
)
close_frames = st.builds(
    lambda code, reason, masked: client_frame(0x8, close_payload(code, reason), masked=masked),
    st.sampled_from([1000, 1001, 1002, 1005, 1006, 1008, 1015, 2999, 3000, 4404, 5000]),
    st.sampled_from([b"", b"bye", b"\xff"]),
    st.booleans() | st.just(True),
)
streams = st.lists(
    st.one_of(common_frames, common_frames, common_frames, odd_frames, close_frames),
    max_size=12,
).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(
    stream=streams,
    cuts=st.lists(st.integers(0, 4000), max_size=8),
    eof=st.booleans(),
)
# Found by Hypothesis: invalid text (a 126-form header) and an empty text frame in one read.
@example(stream=b"\x81\xfe\x00\x02\xbf=\xe7\xa2@\xc3\x81\x80\xdb\xf7j\xfe", cuts=[], eof=False)
def test_reader_gives_what_websockets_gives_for_any_stream_cut_anywhere(
    stream: bytes, cuts: list[int], eof: bool
) -> None:
    """Any client stream, in any pieces: the same events, output, state and close codes."""
    plain, ours = Plain(), Ours()
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for start, end in itertools.pairwise(bounds):
        plain.receive_data(stream[start:end])
        ours.receive_data(stream[start:end])
        assert_same(plain, ours)
    if eof:
        plain.receive_eof()
        ours.receive_eof()
        assert_same(plain, ours)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b'{"type":"next"}', b"x", b"\xc3\xa9"]), min_size=1, max_size=50))
def test_small_messages_come_out_whole_one_byte_at_a_time(messages: list[bytes]) -> None:
    """Credits fed byte by byte come out as the same messages, the same as websockets'."""
    stream = b"".join(client_frame(0x1, m) for m in messages)
    plain, ours = Plain(), Ours()
    for i in range(len(stream)):
        plain.receive_data(stream[i : i + 1])
        ours.receive_data(stream[i : i + 1])
        assert_same(plain, ours)
    assert [e[1] for e in ours.events] == [m.decode() for m in messages]


def test_a_flood_of_credits_is_read_without_websockets_parser() -> None:
    """Small final masked text frames never reach websockets (what the fast path is for)."""
    ours = Ours()
    ours.receive_data(client_frame(0x1, b'{"type":"next"}') * 10_000)
    ours.receive_data(client_frame(0x1, b'{"type":"next"}'))  # one alone: the quickest way
    assert len(ours.events) == 10_001
    assert ours.fed == ours.said_fed == [False, False]
    ours.receive_data(client_frame(0x9, b"ping"))  # a ping still goes to websockets
    assert ours.fed[-1] and ours.said_fed[-1] and ours.protocol.data_to_send()


class SplitOnly(Ours):
    """The reader with every piece cut by `_split`: what the one-frame shortcut stands for."""

    def receive_data(self, data: bytes) -> None:
        reader = self.reader
        self.fed.append(False)
        if reader._passthrough:
            self.said_fed.append(reader.receive_data(data))
            return
        if reader._partial:
            data, reader._partial = reader._partial + data, b""
        self.said_fed.append(reader._split(data))


one_frames = st.builds(
    client_frame,
    st.sampled_from([0x1, 0x2, 0x0, 0x9]) | st.integers(0, 15),
    st.binary(max_size=127) | st.sampled_from([b'{"type":"next"}', b"\xff", b""]),
    fin=st.booleans() | st.just(True),
    rsv=st.just(0) | st.sampled_from([1, 4]),
    masked=st.booleans() | st.just(True),
    length_form=st.just(0) | st.sampled_from([126, 127]),
)


@settings(max_examples=1000, deadline=None)
@given(
    before=st.lists(st.one_of(common_frames, close_frames), max_size=3).map(b"".join),
    frames=st.lists(one_frames, min_size=1, max_size=4),
    max_size=st.sampled_from([MAX_MESSAGE_SIZE, 125, 16, 15, 3, 0]),
)
def test_one_whole_frame_is_read_as_cutting_it_reads_it(
    before: bytes, frames: list[bytes], max_size: int
) -> None:
    """A piece that is one whole frame gives the same messages, output, state and "fed"
    answer as `_split` gives it, whatever the frame, the size limit and what came before
    (a fragmented message under way, a close, a failed connection)."""
    fast, cut = Ours(), SplitOnly()
    for reader in (fast, cut):
        reader.reader.max_size = max_size
        reader.receive_data(before)
    for frame in frames:
        fast.receive_data(frame)
        cut.receive_data(frame)
        assert fast.said_fed == cut.said_fed
        assert fast.events == cut.events
        assert b"".join(fast.protocol.data_to_send()) == b"".join(cut.protocol.data_to_send())
        assert fast.protocol.state is cut.protocol.state
        assert fast.protocol.close_sent == cut.protocol.close_sent


def test_a_huge_declared_length_is_refused_at_its_header() -> None:
    """A header announcing 2**63 bytes is not waited for: websockets closes with 1009 at once."""
    plain, ours = Plain(), Ours()
    data = client_frame(0x2, b"", declared=2**63)[:14]
    plain.receive_data(data)
    ours.receive_data(data)
    assert_same(plain, ours)
    assert ours.protocol.close_sent is not None
    assert ours.protocol.close_sent.code == 1009


def test_unmasking_is_websockets_own() -> None:
    """The unmasking used is byte for byte websockets' documented one, at every small size."""
    mask = os.urandom(4)
    for size in range(130):
        data = os.urandom(size)
        assert apply_mask(data, mask) == reference_mask(data, mask)


def test_nothing_after_invalid_text_in_the_same_read_is_delivered() -> None:
    """Invalid UTF-8 fails the connection (1007); a credit right behind it is not acted on."""
    for head_form in (0, 126):  # the fast path's header and websockets' own parse
        ours = Ours()
        ours.receive_data(
            client_frame(0x1, b"caf\xc3", length_form=head_form)
            + client_frame(0x1, b'{"type":"next"}')
            + client_frame(0x9, b"ping")
        )
        assert ours.events == []
        assert ours.protocol.close_sent is not None
        assert ours.protocol.close_sent.code == 1007
