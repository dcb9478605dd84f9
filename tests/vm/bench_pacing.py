"""Which send gate keeps a push (MJPEG) client fresh on a slow link: measured, not guessed.

Runs inside the test VM (`tests/vm/run --exec tests/vm/bench-pacing`), on the shaped veth
of bench_link.py, with the same multipart client (guest/linkclients.py `mjpeg`). The
server here is a small asyncio MJPEG push server, not the daemon: it replays the clip's
JPEGs at 30 fps (capture time = when a frame becomes the newest) and gives every client
the newest frame each time its gate opens, so that only the gate differs between cases:

- `none`: write the next frame as soon as asyncio has handed the last to the kernel
  (what a push streamer does by default; the send buffer autotunes to MBs).
- `sndbuf64k`: the same with SO_SNDBUF bounded to 64 KiB.
- `notsent16k`: wait until the kernel holds under 16 KiB not yet sent
  (tcp_info's notsent bytes: what TCP_NOTSENT_LOWAT=16384 would wake on).
- `outq-bdp`: wait until the bytes unsent plus unacknowledged (SIOCOUTQ) are under the
  path's bandwidth-delay product (tcp_info delivery rate x min RTT, at least 4 segments).

Gates are checked every 5 ms (a measurement, not how the daemon should wait).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "guest"))

import bench_link
import vmlib

PORT = 8090
SIOCOUTQ = 0x5411
MODES = ("none", "sndbuf64k", "notsent16k", "outq-bdp")


def tcp_info(sock: socket.socket) -> tuple[int, float, float]:
    """(notsent bytes, min RTT s, delivery rate bytes/s) from Linux's struct tcp_info."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    notsent, min_rtt = struct.unpack_from("<II", info, 144)
    (rate,) = struct.unpack_from("<Q", info, 160)
    return notsent, min_rtt / 1e6, float(rate)


def outq(sock: socket.socket) -> int:
    return struct.unpack("<i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0"))[0]


def gate_for(mode: str, sock: socket.socket) -> Callable[[], bool]:
    if mode == "notsent16k":
        return lambda: tcp_info(sock)[0] < 16384
    if mode == "outq-bdp":

        def open_() -> bool:
            _, min_rtt, rate = tcp_info(sock)
            return outq(sock) < max(4 * 1448, rate * min_rtt)

        return open_
    return lambda: True


class Replay:
    """The clip's JPEGs, one newer every 1/30 s."""

    def __init__(self, jpegs: list[bytes]) -> None:
        self.jpegs = jpegs
        self.seq, self.at = 0, time.time()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, t0 + (self.seq + 1) / 30 - time.monotonic()))
            self.seq, self.at = self.seq + 1, time.time()
            self.changed.set()
            self.changed = asyncio.Event()

    async def after(self, seq: int) -> tuple[int, float, bytes]:
        while self.seq <= seq:
            await self.changed.wait()
        return self.seq, self.at, self.jpegs[self.seq % len(self.jpegs)]


async def serve(replay: Replay, mode: list[str]) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock: socket.socket = writer.get_extra_info("socket")
        if mode[0] == "sndbuf64k":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        writer.transport.set_write_buffer_limits(0)  # drain(): everything is in the kernel
        gate = gate_for(mode[0], sock)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;"
                     b"boundary=frame\r\n\r\n")  # fmt: skip
        seq = 0
        try:
            while True:
                while not gate():
                    await asyncio.sleep(0.005)
                seq, at, jpeg = await replay.after(seq)
                writer.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n"
                             b"X-Timestamp: %.3f\r\n\r\n" % (len(jpeg), at) + jpeg + b"\r\n")  # fmt: skip
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    await asyncio.start_server(client, "0.0.0.0", PORT)
    await replay.run()


def clip_jpegs() -> list[bytes]:
    out = Path(tempfile.mkdtemp())
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(vmlib.CLIP),
                    "-c:v", "copy", str(out / "f%03d.jpg")], check=True)  # fmt: skip
    return [p.read_bytes() for p in sorted(out.glob("f*.jpg"))]


def main() -> None:
    print(f"bench-pacing: {bench_link.SECONDS:g} s per case", flush=True)
    bench_link.setup_network()
    jpegs = clip_jpegs()
    print(
        f"bench-pacing: {len(jpegs)} JPEGs, {sum(map(len, jpegs)) // len(jpegs) // 1024} KiB each"
    )
    mode = ["none"]
    loop = asyncio.new_event_loop()
    threading.Thread(target=lambda: loop.run_until_complete(serve(Replay(jpegs), mode)),
                     daemon=True).start()  # fmt: skip
    time.sleep(1)
    rows = []
    for link in bench_link.LINKS:
        bench_link.shape(link)
        for m in MODES:
            bench_link.drain()
            mode[0] = m
            got = bench_link.watch("mjpeg", f"http://{bench_link.SERVER_IP}:{PORT}/")
            rows.append(bench_link.row(link, f"push, gate {m}", got))
    bench_link.print_table("server", rows)
    print("bench-pacing: done")


if __name__ == "__main__":
    main()
