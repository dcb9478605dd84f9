"""The original pull protocol (no subprotocol), as the first PyImageStream client speaks it.

Every text message from the client is answered by exactly one binary message holding one
JPEG, the newest frame that client has not seen yet. A client may have at most
MAX_UNANSWERED requests waiting: one that queues more is not pulling, it is flooding, and
is closed with 1008 like a protocol-2 client that overruns its window.
Event-loop thread only.
"""

from __future__ import annotations

from pyimagestreamd.delivery import send_newest
from pyimagestreamd.frame import Frame
from pyimagestreamd.hub import Hub
from pyimagestreamd.wsconn import WebSocket
from pyimagestreamd.wsframing import binary_frame

MAX_UNANSWERED = 8
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008


async def serve_original(ws: WebSocket, hub: Hub) -> None:
    """Answer each request of one client with one new frame until it leaves."""
    hub.add_viewer()
    try:
        last = 0
        while True:
            # Input is read as it comes (no defer_input, unlike protocol 2): the original
            # client has one request in flight, so while this waits for a frame it sends
            # nothing, and while this waits for a request that request is what it waits
            # for; a newer frame may be there already, which must go out at once, not at
            # the camera's next frame.
            message = await ws.recv()
            if not isinstance(message, str):
                await ws.close(CLOSE_UNSUPPORTED, "send text messages to request frames")
                return
            if 1 + len(ws.messages) > MAX_UNANSWERED or ws.overflowed:
                ws.conn.server.stats.aborted("protocol_error")
                await ws.close(CLOSE_POLICY, f"more than {MAX_UNANSWERED} requests unanswered")
                return
            frame = await hub.wait_frame_after(last, until=ws.conn.closed)
            if frame is None:
                return
            sent = await send_newest(ws.conn, hub, frame, lambda f: _send(ws, hub, f), "websocket")
            if sent is None:
                return
            last = sent.seq
    finally:
        hub.remove_viewer()


def _send(ws: WebSocket, hub: Hub, frame: Frame) -> int:
    # The message is the JPEG alone, the same bytes for every client: framed once per frame.
    ws.send_framed(hub.serialized(frame, "websocket", _frame_message))
    return len(frame.jpeg)


def _frame_message(frame: Frame) -> bytes:
    return binary_frame(frame.jpeg)
