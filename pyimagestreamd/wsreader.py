"""WebSocket input: the client's bytes in, its messages and control frames out, in order.

Between the connection's socket (wsconn.py) and websockets' sans-I/O `ServerProtocol`. A
protocol-2 client sends one small "next" per frame it gets, and websockets' parser (Python
generators, a frame object and an event list per message) was most of the cost of taking
one in. So the bytes are first cut into whole frames here, from their headers alone, and
the common case is read here: a final, unfragmented, masked text or binary frame of fewer
than 126 bytes, no reserved bit, while the protocol is OPEN and no fragmented message is
under way (we negotiate no extension, so no reserved bit is ever allowed). Text must be
UTF-8, which websockets' sans-I/O layer leaves to its caller: invalid text fails the
connection with 1007, wherever it was parsed. Every other frame
(ping, pong, close, fragments, longer frames, anything malformed) is handed to websockets
whole, so that its parser always starts at a frame boundary and keeps doing what it did:
pongs, the closing handshake, protocol errors and their close codes, size limits. A header
declaring more than `max_size` bytes, a reserved opcode or an unmasked frame, all of which
websockets refuses at once, ends the cutting: from then on every byte goes to websockets as
it comes. A partial frame waits here, at most
14 + `max_size` bytes. Event-loop thread only; no I/O (unit-tested against websockets).
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import CLOSED, OPEN
from websockets.server import ServerProtocol

try:
    # websockets' own C unmasking, as websockets itself imports it.
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

# Longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
MAX_HEADER = 14
_TEXT, _BINARY, _CONT = 0x1, 0x2, 0x0
_OPCODES = frozenset(int(opcode) for opcode in Opcode)


class MessageReader:
    """Feeds one connection's input to `protocol`, reading common small messages itself.

    `on_message(message)` gets each whole message (str for text, bytes for binary) and
    `on_control(frame)` each ping, pong and close websockets parsed, in the order they came.
    The caller then takes websockets' output (`data_to_send`) as before.
    """

    def __init__(
        self,
        protocol: ServerProtocol,
        max_size: int,
        on_message: Callable[[str | bytes], None],
        on_control: Callable[[Frame], None],
    ) -> None:
        self.protocol = protocol
        self.max_size = max_size
        self.on_message = on_message
        self.on_control = on_control
        self._partial = b""
        # True once a frame too long to wait for came: websockets gets everything as it comes.
        self._passthrough = False
        # The size so far of the fragmented message under way in websockets (None: none is):
        # its next data frame is websockets', and it counts against `max_size`.
        self._fragmented: int | None = None
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragment_opcode = Opcode.TEXT

    def receive_data(self, data: bytes) -> bool:
        """Take the bytes the client sent; call back with what they complete.

        True if websockets was given any of them: only then can it have output to send
        or a new state (what was read here alone changes neither).
        """
        if self._passthrough:
            self._feed(data)
            return True
        if self._partial:
            data = self._partial + data
            self._partial = b""
        elif (
            # The commonest input of all, one credit: exactly one whole frame that `_split`
            # would read here (below), read without cutting. Any other bytes, and this
            # frame whenever `_split` would not read it itself, go to `_split`.
            6 <= (size := len(data)) <= 131
            and data[1] == 0x80 | (size - 6)  # masked, its length is the rest of `data`
            and ((first := data[0]) == 0x81 or first == 0x82)  # FIN, no RSV, text or binary
            and size - 6 <= self.max_size
            and self._fragmented is None
            and self.protocol.state is OPEN
        ):
            payload = apply_mask(data[6:], data[2:6])
            if first == 0x82:
                self.on_message(payload)
                return False
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                pass  # `_split` fails the connection as it does for such a frame
            else:
                self.on_message(text)
                return False
        return self._split(data)

    def receive_eof(self) -> None:
        """The client is done sending: websockets gets the end.

        A partial frame kept here is dropped: websockets fails the connection at an end in
        the middle of a frame (1006) the same with or without its first bytes.
        """
        if self.protocol.state is not CLOSED:
            self.protocol.receive_eof()
            self._events()

    def _split(self, data: bytes) -> bool:
        # True if websockets was given bytes (see receive_data).
        view = memoryview(data)
        end = len(data)
        pos = 0
        raw_from = 0  # start of the frames not yet given to websockets
        fed = False
        while end - pos >= 2:
            first, second = data[pos], data[pos + 1]
            if first & 0x0F not in _OPCODES or not second & 0x80:
                # websockets refuses a reserved opcode or an unmasked frame (1002) at its
                # first two bytes: it gets them now, not once the frame is whole.
                self._passthrough = True
                self._feed(view[raw_from:])
                return True
            length = second & 0x7F
            header = 2  # then the mask, 4 bytes
            if length == 126:
                header = 4
                if end - pos < header:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 4], "big")
            elif length == 127:
                header = 10
                if end - pos < header:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 10], "big")
            limit = self.max_size if self._fragmented is None else self.max_size - self._fragmented
            if length > limit:
                # websockets refuses it (1009) once it has the length, before the mask.
                self._passthrough = True
                self._feed(view[raw_from:])
                return True
            header += 4
            frame_end = pos + header + length
            if frame_end > end:
                break
            if (
                first in {0x81, 0x82}  # FIN, no RSV bit, text or binary
                and header == 6  # masked, length < 126
                and self._fragmented is None
                and self.protocol.state is OPEN
            ):
                payload = apply_mask(view[pos + 6 : frame_end], data[pos + 2 : pos + 6])
                message: str | bytes = payload
                if first == 0x81:
                    try:
                        message = payload.decode()
                    except UnicodeDecodeError:
                        # The connection fails (1007) in `_on_frame`; websockets parses this
                        # and all that follows, as it would have without us.
                        self._passthrough = True
                        self._feed(view[raw_from:])
                        return True
                if raw_from < pos:
                    self._feed(view[raw_from:pos])
                    fed = True
                    if self.protocol.state is not OPEN:
                        # What came before ended the connection (a close, an error):
                        # websockets gets the rest too, and discards it as it always did.
                        self._feed(view[pos:end])
                        return True
                self.on_message(message)
                pos = raw_from = frame_end
                continue
            self._track_fragments(first, length)
            pos = frame_end
        if raw_from < pos:
            self._feed(view[raw_from:pos])
            fed = True
        if pos < end:
            self._partial = bytes(view[pos:end])
        return fed

    def _track_fragments(self, first: int, length: int) -> None:
        # What websockets' own count of a fragmented message will be once it has this frame;
        # a frame out of place makes it fail, after which no frame is read here again.
        opcode, fin = first & 0x0F, first & 0x80
        if opcode in (_TEXT, _BINARY):
            self._fragmented = None if fin else length
        elif opcode == _CONT and self._fragmented is not None:
            self._fragmented = None if fin else self._fragmented + length

    def _feed(self, data: bytes | memoryview) -> None:
        self.protocol.receive_data(bytes(data))
        self._events()

    def _events(self) -> None:
        for frame in self.protocol.events_received():
            if isinstance(frame, Frame) and not self._on_frame(frame):
                # We failed the connection (1007): RFC 6455 7.1.7 says to process nothing
                # more from the client, so frames parsed in the same read are dropped too.
                return

    def _on_frame(self, frame: Frame) -> bool:
        """Handle one frame; False when it made us fail the connection."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragment_opcode = opcode
            self._fragments.append(frame.data)
            if not frame.fin:
                return True  # max_size bounds the sum of the fragments
            data = b"".join(bytes(f) for f in self._fragments)
            self._fragments.clear()
            if self._fragment_opcode is Opcode.BINARY:
                self.on_message(data)
                return True
            # websockets' sans-I/O layer leaves UTF-8 to its caller.
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                if self.protocol.state is OPEN:
                    self.protocol.fail(
                        CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}"
                    )
                return False
            self.on_message(text)
        else:
            self.on_control(frame)
        return True
