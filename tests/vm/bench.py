"""make bench-vm: CPU per delivered frame against µStreamer, and YUYV re-encode throughput.

Runs inside the test VM (tests/vm/run --bench), as root, from the read-only source share.

1. MJPEG passthrough: v4l2loopback fed with the prepared 1080p30 clip; pyimagestreamd and
   µStreamer (Debian's ustreamer, --encoder=HW: the camera's JPEGs as they are) serve the
   same device in turn, each to 1 and then 10 clients taking every frame they can: ours
   over WebSocket protocol 2 and over /stream.mjpg (when this build serves it), µStreamer
   over /stream. CPU is the streamer process's utime+stime (all threads) over the measuring
   window; frames are what its clients received in that window. Ratio = ours / µStreamer.
2. YUYV re-encode: v4l2loopback fed with 1920x1080 YUYV at 10 fps; frames per CPU-second
   of the daemon (capture + encode + 1 client), of `V4L2Source.read()` alone on the same
   feed, and of the same conversion (YUYV -> planes -> range -> simplejpeg) in a bare loop
   paced at the same 10 fps: all three at one rate, so per-frame costs compare.

`BENCH_AGAINST=DIR` (a folder inside this tree, e.g. a `git archive` of main unpacked
under build/): that tree's daemon and capture run the MJPEG cases too, in the same rounds
(the contenders' order rotating), so a change is measured against its base in one run;
`BENCH_ONLY=mjpeg` skips the YUYV part.

The clients are the same cheap readers for both streamers (guest/cheapclients.py): a
multipart counter, and a raw-socket WebSocket reader as cheap as it. The guest's two CPUs
are shared by everything, so a costly client would tax the streamer it watches.
/api/state is asked only outside the CPU windows. Medians of ROUNDS rounds, the
contenders' order alternating. Under TCG (see the banner) absolute figures are ~10x those
of real hardware; the ratios are what to read.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "guest"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import feeder
import vmlib
from cheapclients import MultipartCounter, RawWsCounter

from pyimagestreamd import encoder

WARMUP = 3.0
WINDOW = 8.0
ROUNDS = 3
CLIENT_COUNTS = (1, 10)
USTREAMER_PORT = 8081


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, all threads


@dataclass
class Window:
    """What happened in one measuring window (the warm-up before it is not counted)."""

    frames: int = 0  # received by all clients together
    seconds: float = 0.0
    cpu: float = 0.0  # the streamer's CPU seconds
    captured: int = 0  # frames the streamer captured, when it says (pyimagestreamd)


class Probe:
    """Samples the streamer's CPU time at the window's edges; the capture count outside them.

    The count comes from /api/state: an HTTP request the daemon answers, so it is asked
    before the CPU is first read and after it is read last.
    """

    def __init__(self, pid: int, captured: Callable[[], int] = lambda: 0) -> None:
        self.pid, self.captured = pid, captured

    def start(self) -> tuple[float, float, int]:
        captured = self.captured()
        return time.monotonic(), cpu_seconds(self.pid), captured

    def stop(self, start: tuple[float, float, int], frames: int) -> Window:
        t0, cpu0, captured0 = start
        seconds, cpu = time.monotonic() - t0, cpu_seconds(self.pid) - cpu0
        return Window(frames, seconds, cpu, self.captured() - captured0)


Counter = MultipartCounter | RawWsCounter


async def watch(counters: list[Counter], probe: Probe) -> Window:
    """Run the clients: warm up, then measure one window; then stop them."""
    tasks = [asyncio.create_task(c.run()) for c in counters]
    await asyncio.sleep(WARMUP)
    before = sum(c.frames for c in counters)
    start = probe.start()
    await asyncio.sleep(WINDOW)
    window = probe.stop(start, sum(c.frames for c in counters) - before)
    for t in tasks:
        t.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if not isinstance(result, asyncio.CancelledError):
            raise RuntimeError(f"a client stopped before the window ended: {result!r}")
    return window


def measure(counters: list[Counter], probe: Probe) -> tuple[float, float]:
    """CPU ms per delivered frame and delivered fps per client, for one client run."""
    w = asyncio.run(watch(counters, probe))
    per_client = w.frames / w.seconds / len(counters)
    return (1000 * w.cpu / w.frames if w.frames else float("inf")), per_client


def serves_mjpeg(port: int) -> bool:
    """Whether this build of the daemon has /stream.mjpg (the front door)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return s.recv(64).split(b" ")[1:2] == [b"200"]


def paced(seconds: float, fps: float, step: Callable[[], object]) -> float:
    """Frames per CPU-second of `step` called at `fps` for `seconds` (this process's CPU)."""
    n = 0
    started = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    while time.monotonic() < t0 + seconds:
        if step() is not None:
            n += 1
        if fps:
            time.sleep(max(0.0, t0 + n / fps - time.monotonic()))
    ended = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ended.ru_utime - started.ru_utime) + (ended.ru_stime - started.ru_stime)
    return n / cpu


def source_alone(device: str, seconds: float, tree: Path = vmlib.SRC) -> float:
    """Frames per CPU-second of V4L2Source.read() on the feed, without the daemon around it
    (tree's pyimagestreamd, in a process of its own: capture_alone.py)."""
    script = Path(__file__).resolve().parent / "capture_alone.py"
    out = subprocess.run(
        [sys.executable, str(script), str(tree), device, str(seconds)],
        capture_output=True, text=True, check=True, cwd=tree,
    ).stdout  # fmt: skip
    return float(out.split()[-1])


YUYV_FPS = 10
# Fed at 10 fps: under TCG the daemon encodes ~5-6 fps of 1080p per core, and a feeder
# copying 4 MB frames at 30 fps would only take CPU away from every measurement.


def main() -> None:
    accel = os.environ.get("PYIMAGESTREAM_VM_ACCEL", "tcg")
    print(f"bench: guest with {os.cpu_count()} CPUs under {accel.upper()}; "
          f"window {WINDOW:g} s per run, {ROUNDS} rounds")  # fmt: skip
    vmlib.load_v4l2loopback()
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    tmp = Path(tempfile.mkdtemp())
    camera = vmlib.camera_yaml("cam", source=vmlib.LOOP_MJPEG, width=1920, height=1080,
                               fps=30, stop_delay=0.5)  # fmt: skip

    against = os.environ.get("BENCH_AGAINST", "")
    only = os.environ.get("BENCH_ONLY", "")

    def daemon_of(who: str, src: Path) -> Callable[[int], None]:
        def run(r: int) -> None:
            folder = tmp / f"passthrough-{who}{r}"
            folder.mkdir()
            daemon = vmlib.Daemon(camera, folder, src=src)
            try:
                serve(r, who, daemon)
            finally:
                daemon.stop()

        return run

    def serve(r: int, who: str, daemon: vmlib.Daemon) -> None:
        kinds: list[tuple[str, Callable[[], Counter]]] = [
            (f"{who} WebSocket", lambda: RawWsCounter(daemon.port, "/websocket/cam"))
        ]
        if serves_mjpeg(daemon.port):
            daemon.wait_camera("cam", lambda c: c["state"] == "sleeping", 30, "sleep")
            kinds.append((f"{who} /stream.mjpg",
                          lambda: MultipartCounter(daemon.port, "/stream.mjpg")))  # fmt: skip
        for kind, make in kinds:
            for n in CLIENT_COUNTS:
                got = measure([make() for _ in range(n)], Probe(daemon.proc.pid))
                runs.setdefault((kind, n), []).append(got)
                report(r, kind, n, got)

    def theirs(r: int) -> None:
        with vmlib.ustreamer(vmlib.LOOP_MJPEG, port=USTREAMER_PORT) as ustreamer:
            for n in CLIENT_COUNTS:
                counters: list[Counter] = [
                    MultipartCounter(USTREAMER_PORT, "/stream") for _ in range(n)
                ]
                got = measure(counters, Probe(ustreamer.pid))
                runs.setdefault(("µStreamer /stream", n), []).append(got)
                report(r, "µStreamer /stream", n, got)

    contenders = [daemon_of("ours", vmlib.SRC), theirs]
    trees = {"ours": vmlib.SRC}
    if against:
        contenders.append(daemon_of("against", vmlib.SRC / against))
        trees["against"] = vmlib.SRC / against
        print(f"bench: 'against' is the tree in {against}")
    capture_ms: dict[str, list[float]] = {who: [] for who in trees}
    with vmlib.clip_feeder():
        time.sleep(2)
        for r in range(ROUNDS):
            # Rotating who goes first: the 2-core host is shared, and a guest under TCG
            # counts time its virtual CPUs were descheduled as CPU time of whatever ran.
            for contender in contenders[r % len(contenders) :] + contenders[: r % len(contenders)]:
                contender(r)
            # Where our per-frame cost starts: capture alone (DQBUF, copy, check, QBUF).
            for who, tree in trees.items():
                capture_ms[who].append(1000 / source_alone(vmlib.LOOP_MJPEG, WINDOW, tree))
                print(f"round {r}: {who} V4L2Source.read() alone on the clip: "
                      f"{capture_ms[who][-1]:.2f} ms CPU/frame", flush=True)  # fmt: skip

    print_mjpeg(runs, capture_ms, accel)
    if only == "mjpeg":
        print("bench: done")
        return
    yuyv: dict[str, list[float]] = {"daemon": [], "source": [], "bare": []}
    delivered: list[float] = []
    frame = feeder.yuyv_bars(1920, 1080)
    with vmlib.python_feeder(vmlib.LOOP_YUYV, "yuyv-bars", fps=YUYV_FPS):
        time.sleep(2)
        for r in range(ROUNDS):
            (tmp / f"yuyv{r}").mkdir()
            daemon = vmlib.Daemon(
                vmlib.camera_yaml("cam", source=vmlib.LOOP_YUYV, width=1920, height=1080,
                                  fps=30, stop_delay=0.5),
                tmp / f"yuyv{r}",
            )  # fmt: skip
            try:
                probe = Probe(daemon.proc.pid, lambda d=daemon: d.camera("cam")["frames_captured"])
                w = asyncio.run(watch([RawWsCounter(daemon.port, "/websocket/cam")], probe))
                yuyv["daemon"].append(w.captured / w.cpu)
                delivered.append(w.frames / w.seconds)
                daemon.wait_camera("cam", lambda c: c["state"] == "sleeping", 30, "sleep")
            finally:
                daemon.stop()
            # With the feeder still writing: the same load as the daemon had.
            yuyv["source"].append(source_alone(vmlib.LOOP_YUYV, WINDOW))

            def convert() -> bytes:
                planes = encoder.expand_range(encoder.yuyv_to_planes(frame, 1920, 1080))
                return encoder.encode_planes(planes, 80)

            yuyv["bare"].append(paced(WINDOW, YUYV_FPS, convert))
            print(f"round {r}: YUYV frames/CPU-s: daemon {yuyv['daemon'][-1]:.2f} "
                  f"({delivered[-1]:.1f} fps delivered), V4L2Source alone {yuyv['source'][-1]:.2f}, "
                  f"bare loop {yuyv['bare'][-1]:.2f}")  # fmt: skip

    print()
    print(f"| YUYV 1080p re-encode, fed at {YUYV_FPS} fps | frames per CPU-second |")
    print("| --- | --- |")
    print(f"| pyimagestreamd (capture + encode + 1 client, {statistics.median(delivered):.1f} fps "
          f"delivered) | {spread(yuyv['daemon'])} |")  # fmt: skip
    print(f"| `V4L2Source.read()` alone | {spread(yuyv['source'])} |")
    print(
        f"| bare loop at {YUYV_FPS} fps: YUYV -> planes -> range -> simplejpeg | {spread(yuyv['bare'])} |"
    )
    ratio = statistics.median(yuyv["daemon"]) / statistics.median(yuyv["bare"])
    print(f"| ratio daemon / bare loop | {ratio:.2f} |")
    print("bench: done")


def print_mjpeg(
    runs: dict[tuple[str, int], list[tuple[float, float]]],
    capture_ms: dict[str, list[float]],
    accel: str,
) -> None:
    print()
    print(
        f"Medians of {ROUNDS} alternating rounds (range in brackets), guest under {accel.upper()}:"
    )
    print()
    print("| MJPEG 1080p30 passthrough | clients | ms CPU/frame | fps each | ratio to µStreamer |")
    print("| --- | --- | --- | --- | --- |")
    for (who, n), got in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ms = [g[0] for g in got]
        ref = statistics.median(g[0] for g in runs["µStreamer /stream", n])
        print(f"| {who} | {n} | {spread(ms)} | {statistics.median(g[1] for g in got):.1f} "
              f"| {statistics.median(ms) / ref:.2f}x |")  # fmt: skip
    for who, ms in capture_ms.items():
        print(f"| {who} `V4L2Source.read()` alone (capture, no daemon) | 1 | {spread(ms)} | | |")
    print(flush=True)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(r: int, who: str, clients: int, got: tuple[float, float]) -> None:
    print(f"round {r}: {who:<18} {clients:2d} clients: {got[0]:6.2f} ms CPU/frame, "
          f"{got[1]:5.1f} fps per client", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
