"""Outgoing WebSocket frames, framed by us: the server's binary messages as bytes.

The last step before a frame message is written (wsconn.py, ws_original.py). websockets'
serializer copies each payload twice (into a BytesIO, then out of it); we offer no
extension, so an unfragmented, unmasked binary frame is its header and the payload as they
are, the same bytes on the wire (tests/test_wire.py checks every length class against
websockets' `Frame.serialize`). No I/O.
"""

from __future__ import annotations

import struct


def binary_header(size: int) -> bytes:
    """The header of one unfragmented, unmasked binary frame of `size` bytes (RFC 6455 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


def binary_frame(payload: bytes) -> bytes:
    """One whole binary message frame: what `send_binary((payload,))` writes."""
    return binary_header(len(payload)) + payload
