"""make bench-link: frame age on a slow link, µStreamer and pyimagestreamd side by side.

Runs inside the test VM (tests/vm/run --bench-link), as root, from the read-only source
share; the guest's Debian kernel has netem (the host's has not). v4l2loopback is fed the
prepared 1080p30 MJPEG clip; µStreamer and pyimagestreamd serve it in turn on the guest's
end of a veth pair whose other end is in a network namespace, and one viewer at a time
watches from that namespace (tests/vm/guest/linkclients.py). Both ends of the veth are
shaped alike, `netem delay 50ms rate R` (about 100 ms round trip), with netem's default
queue (1000 packets) and with a shallow one (`limit 50`).

Per link, in one run and in this order: µStreamer's `/stream`, our `/stream.mjpg` (when
this build serves it), our WebSocket original protocol (one request in flight), protocol 2
with web/flow.js choosing the window (under Node; its decisions are printed as trace lines,
once a second and at each change of window), and protocol 2 with fixed windows
(BENCH_WINDOWS, default 1,2,4). Each case: BENCH_SECONDS (default 60) measured after a
WARMUP that is not counted; between cases the link's queues are left to drain. BENCH_ROUNDS=N repeats the protocol-2 cases (flow.js and the fixed windows) N
times per link in alternating order (the reverse every other round), and ends with a table
of their medians and ranges: one run differs from the next by about the gaps between them.
Each protocol-2 case also prints when its oldest 5% of frames arrived (its "tail" line), to
tell a start-up ramp or a cut from noise spread over the minute.

Frame age = arrival time - capture time, both on the guest's clock (namespaces share
clocks): µStreamer's grab time is CLOCK_MONOTONIC_RAW and is compared with that clock, ours
are wall-clock times and are compared with the wall clock. The original protocol's frames
carry no time: an observer on the unshaped loopback (protocol 2, 8 credits, every frame)
records when each JPEG was captured, and an arrival is matched with the latest capture of
the same JPEG before it (the clip repeats every 3 s: a match 2.9 s or more back is taken
for a capture the observer missed and counted as unmatched, which the table says). Link use = bytes received per second (HTTP/WebSocket framing included,
TCP/IP headers not) over the link's rate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "guest"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import vmlib
from websockets.sync.client import connect

SECONDS = float(os.environ.get("BENCH_SECONDS") or 60)
# BENCH_ONLY=mjpeg,flow (say): only those kinds of case (ustreamer, mjpeg, original, flow,
# windows), for a shorter run after a change to one of them; `flow,windows` compares the
# browser's policy with the fixed windows.
ONLY = {k for k in (os.environ.get("BENCH_ONLY") or "").split(",") if k}
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 1)
FIXED_WINDOWS = tuple(int(n) for n in (os.environ.get("BENCH_WINDOWS") or "1,2,4").split(","))


def wanted(kind: str) -> bool:
    return not ONLY or kind in ONLY


WARMUP = 5.0
NETNS = "pis-client"
SERVER_IF, CLIENT_IF = "pis-srv", "pis-cli"
SERVER_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"
USTREAMER_PORT = 8081
CLIP_PERIOD = 3.0  # the clip: 90 distinct frames at 30 fps
CLIENTS = Path(__file__).resolve().parent / "guest" / "linkclients.py"


@dataclass(frozen=True)
class Link:
    rate: str  # netem's spelling
    bits: float
    limit: int | None  # netem queue in packets; None: its default (1000)

    @property
    def name(self) -> str:
        return f"{self.rate.replace('mbit', ' Mbit/s')}, {'queue ' + str(self.limit) if self.limit else 'default queue'}"


LINKS = (Link("2mbit", 2e6, None), Link("2mbit", 2e6, 50),
         Link("10mbit", 10e6, None), Link("10mbit", 10e6, 50))  # fmt: skip


def sh(*args: str) -> str:
    return vmlib.run(*args).stdout


def setup_network() -> None:
    sh("modprobe", "sch_netem")
    sh("ip", "netns", "add", NETNS)
    sh("ip", "link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF)
    sh("ip", "link", "set", CLIENT_IF, "netns", NETNS)
    sh("ip", "addr", "add", f"{SERVER_IP}/24", "dev", SERVER_IF)
    sh("ip", "link", "set", SERVER_IF, "up")
    inside = ("ip", "netns", "exec", NETNS)
    sh(*inside, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", CLIENT_IF)
    sh(*inside, "ip", "link", "set", CLIENT_IF, "up")
    sh(*inside, "ip", "link", "set", "lo", "up")


def shape(link: Link) -> None:
    netem = ["netem", "delay", "50ms", "rate", link.rate]
    if link.limit:
        netem += ["limit", str(link.limit)]
    sh("tc", "qdisc", "replace", "dev", SERVER_IF, "root", *netem)
    sh("ip", "netns", "exec", NETNS, "tc", "qdisc", "replace", "dev", CLIENT_IF, "root", *netem)


def backlog() -> int:
    """Packets still queued in both netem qdiscs."""
    out = sh("tc", "-s", "qdisc", "show", "dev", SERVER_IF)
    out += sh("ip", "netns", "exec", NETNS, "tc", "-s", "qdisc", "show", "dev", CLIENT_IF)
    return sum(int(p) for p in re.findall(r"backlog \S+ (\d+)p", out))


def drain() -> None:
    """Let what the last case left in the link go, so the next starts on an empty one."""
    deadline = time.monotonic() + 30
    while backlog() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)


class Observer(threading.Thread):
    """Every frame's capture time by JPEG hash, seen over the unshaped loopback."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.captured: dict[str, list[float]] = defaultdict(list)
        self.stopping = threading.Event()

    def run(self) -> None:
        with connect(self.url, subprotocols=["pyimagestream.v2"], max_size=2**25) as ws:  # type: ignore[list-item]
            ws.recv(30)  # hello
            for _ in range(8):
                ws.send('{"type": "next"}')
            while not self.stopping.is_set():
                message = ws.recv(30)
                if isinstance(message, str):
                    continue
                (size,) = struct.unpack(">I", message[:4])
                meta = json.loads(message[4 : 4 + size])
                self.captured[hashlib.md5(message[4 + size :]).hexdigest()].append(meta["time"])
                ws.send('{"type": "next"}')

    def ages(self, arrivals: list[tuple[float, str]]) -> tuple[list[float], int]:
        ages, unmatched = [], 0
        for at, md5 in arrivals:
            times = self.captured.get(md5, [])
            i = bisect_right(times, at)
            # A capture a whole clip period back is the same picture an earlier time round:
            # the observer missed the real one. Such a frame is counted as unmatched.
            if i and at - times[i - 1] < CLIP_PERIOD - 0.1:
                ages.append(at - times[i - 1])
            else:
                unmatched += 1
        return ages, unmatched


def watch(kind: str, url: str) -> dict[str, Any]:
    """One viewer in the client namespace for one case; its JSON report."""
    proc = subprocess.run(
        ["ip", "netns", "exec", NETNS, sys.executable, str(CLIENTS), kind, url,
         str(SECONDS), str(WARMUP)],
        capture_output=True, text=True, timeout=SECONDS + WARMUP + 120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    link: Link
    who: str
    fps: float = 0.0
    p50: float = float("nan")
    p95: float = float("nan")
    max: float = float("nan")
    use: float = 0.0
    note: str = ""

    def line(self) -> str:
        if self.note and not self.fps:
            return f"| {self.link.name} | {self.who} | {self.note} | | | | |"
        return (f"| {self.link.name} | {self.who} | {self.fps:.2f} | {self.p50:.2f} | "
                f"{self.p95:.2f} | {self.max:.2f} | {100 * self.use:.0f}%{self.note} |")  # fmt: skip


def row(link: Link, who: str, got: dict[str, Any], ages: list[float] | None = None) -> Row:
    if "error" in got:
        return Row(link, who, note=f"failed: {got['error']}")
    ages = got["ages"] if ages is None else ages
    r = Row(link, who, fps=got["frames"] / got["seconds"],
            use=got["bytes"] * 8 / got["seconds"] / link.bits)  # fmt: skip
    if ages:
        r.p50, r.p95, r.max = percentile(ages, 0.5), percentile(ages, 0.95), max(ages)
    if got.get("windows"):
        r.note = f"; window p50 {percentile(got['windows'], 0.5)}, max {max(got['windows'])}"
    print(f"bench-link: {r.line()}", flush=True)
    return r


def main() -> None:
    print(f"bench-link: {SECONDS:g} s per case after a {WARMUP:g} s warm-up", flush=True)
    vmlib.load_v4l2loopback()
    setup_network()
    rows: list[Row] = []
    # Per link and client: each round's row and ages, for the medians over rounds.
    rounds: dict[tuple[Link, str], list[tuple[Row, list[float]]]] = defaultdict(list)
    tmp = Path(tempfile.mkdtemp())
    camera = vmlib.camera_yaml("cam", source=vmlib.LOOP_MJPEG, width=1920, height=1080,
                               fps=30, stop_delay=0.5)  # fmt: skip
    with vmlib.clip_feeder():
        time.sleep(2)
        daemon = vmlib.Daemon(camera, tmp, listen="0.0.0.0")
        try:
            ws_url = f"ws://{SERVER_IP}:{daemon.port}/websocket/cam"
            mjpeg_url = f"http://{SERVER_IP}:{daemon.port}/stream.mjpg"
            has_mjpeg = mjpeg_served(daemon)
            for link in LINKS:
                shape(link)
                drain()
                if wanted("ustreamer"):
                    # µStreamer may open the device only once our camera has gone to sleep.
                    daemon.wait_camera("cam", lambda c: c["state"] == "sleeping", 30, "sleep")
                    with vmlib.ustreamer(vmlib.LOOP_MJPEG, "0.0.0.0", USTREAMER_PORT):
                        got = watch(
                            "mjpeg", f"http://{SERVER_IP}:{USTREAMER_PORT}/stream?extra_headers=1"
                        )
                    rows.append(row(link, "µStreamer /stream", got))
                    drain()
                if wanted("mjpeg") and has_mjpeg:
                    rows.append(row(link, "ours /stream.mjpg", watch("mjpeg", mjpeg_url)))
                    drain()
                elif wanted("mjpeg"):
                    rows.append(Row(link, "ours /stream.mjpg", note="not served by this build"))
                if wanted("original"):
                    observer = Observer(f"ws://127.0.0.1:{daemon.port}/websocket/cam")
                    observer.start()
                    got = watch("original", ws_url)
                    observer.stopping.set()
                    observer.join(30)
                    ages, unmatched = observer.ages(got.get("arrivals", []))
                    r = row(link, "ours WS original, 1 in flight", got, ages)
                    if unmatched:
                        r.note += f"; {unmatched} frames unmatched"
                    rows.append(r)
                    drain()
                cases = [("flow", "ours WS protocol 2, flow.js")] if wanted("flow") else []
                if wanted("windows"):
                    cases += [(f"window:{n}", f"ours WS protocol 2, window {n}")
                              for n in FIXED_WINDOWS]  # fmt: skip
                for turn in range(ROUNDS):
                    # Alternating, so that no client always comes first (or last) on a link.
                    for kind, who in cases if turn % 2 == 0 else cases[::-1]:
                        got = watch(kind, ws_url)
                        named = who + (f", round {turn + 1}" if ROUNDS > 1 else "")
                        rows.append(row(link, named, got))
                        rounds[(link, who)].append((rows[-1], got.get("ages", [])))
                        if kind == "flow":
                            print_trace(link, named, got)
                        print_tail(link, named, got)
                        drain()
        finally:
            daemon.stop()
    print()
    print(f"{SECONDS:g} s per case, guest under {os.environ.get('PYIMAGESTREAM_VM_ACCEL', 'tcg').upper()}; "
          "age in seconds, capture to arrival:")  # fmt: skip
    print_table("client", rows)
    if ROUNDS > 1:
        print_rounds(rounds)
    print("bench-link: done")


def print_tail(link: Link, who: str, got: dict[str, Any]) -> None:
    """When the case's oldest 5% of frames arrived (s since it connected, as the trace)."""
    ages, at = got.get("ages", []), got.get("age_at", [])
    if not ages or len(at) != len(ages):
        return
    p95 = percentile(ages, 0.95)
    tail = " ".join(f"{t:.1f}:{a * 1000:.0f}" for t, a in zip(at, ages, strict=True) if a >= p95)
    print(f"bench-link: tail {link.name}, {who}: first frame at {got.get('first', float('nan')):.2f} s, "
          f"p95 {p95 * 1000:.0f} ms, frames at or over it (s:ms): {tail}", flush=True)  # fmt: skip


def print_rounds(rounds: dict[tuple[Link, str], list[tuple[Row, list[float]]]]) -> None:
    """Medians of the rounds per client, [range], and p95 over all rounds' frames pooled."""
    print()
    print(f"Medians of {ROUNDS} alternating rounds [min-max]; pooled: p95 of all rounds' frames:")
    print()
    print("| link (50 ms each way) | client | fps | age p50 | p95 | max | link use | p95 pooled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def spread(values: list[float], fmt: str) -> str:
        return f"{median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"

    for (link, who), got in rounds.items():
        rs = [r for r, _ in got if r.fps]
        if not rs:
            continue
        pooled = percentile([a for _, ages in got for a in ages], 0.95)
        print(f"| {link.name} | {who} | {spread([r.fps for r in rs], '.2f')} | "
              f"{spread([r.p50 for r in rs], '.3f')} | {spread([r.p95 for r in rs], '.3f')} | "
              f"{spread([r.max for r in rs], '.3f')} | {spread([100 * r.use for r in rs], '.0f')}% | "
              f"{pooled:.3f} |")  # fmt: skip


def print_trace(link: Link, who: str, got: dict[str, Any]) -> None:
    """flow.js's window over time and what it decided on (linkclients' trace)."""
    for step in got.get("trace", []):
        print(f"bench-link: trace {link.name}, {who}: " + " ".join(
            f"{k}={v}" for k, v in step.items()), flush=True)  # fmt: skip


def print_table(who: str, rows: list[Row]) -> None:
    """The rows as the README's Markdown table; `who` heads the column of what was measured."""
    print()
    print(f"| link (50 ms each way) | {who} | fps | age p50 | p95 | max | link use |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(r.line())


def mjpeg_served(daemon: vmlib.Daemon) -> bool:
    """Whether this build has /stream.mjpg (the front door): the status line tells."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return s.recv(64).split(b"\r\n")[0].split(b" ")[1:2] == [b"200"]


if __name__ == "__main__":
    main()
