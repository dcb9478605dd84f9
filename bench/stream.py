"""CPU per delivered frame on loopback, this tree against another, for send-path work.

Run with `python -m bench.stream [--against DIR]` (`make bench-stream`). The daemon of each
tree, its camera replaced by a source replaying 1080p JPEGs at 30 fps (~60 KB, as camera
passthrough does; bench/replay.py), serves 1 and 10 cheap clients
(tests/vm/guest/cheapclients.py, the readers of `make bench-vm`: WebSocket protocol 2 and
/stream.mjpg) in a process of their own. CPU is the daemon's run time over the window, all
threads, from /proc's schedstat (ns, not clock ticks), divided by the frames its clients
received. With `--against`, the other
tree's daemon (e.g. a `git archive` of main) runs the same cases, the trees alternating
round by round; the ratio is this tree's median over the other's. The µStreamer comparison
is `make bench-vm`; this is the quick loop on the host for changes to the send path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parents[1]
REPLAY = Path(__file__).resolve().with_name("replay.py")
FPS = 30.0
N_FRAMES = 8
CASES = ("websocket:1", "websocket:10", "mjpeg:1", "mjpeg:10")


def make_frames(folder: Path) -> None:
    """N_FRAMES distinct 1080p JPEGs of about the size of the VM's clip (~60 KB)."""
    from pyimagestreamd import encoder
    from pyimagestreamd.testpattern import TestPattern

    pattern = TestPattern(1920, 1080, "bench")
    for i in range(N_FRAMES):
        y, u, v = (p.copy() for p in pattern.draw(i, time.time()))
        noise = np.random.default_rng(i).integers(-3, 4, y.shape, dtype=np.int16)
        y = np.clip(y.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        (folder / f"{i}.jpg").write_bytes(encoder.encode_planes((y, u, v), 62))


async def clients(port: int, kind: str, n: int, seconds: float) -> dict[str, float]:
    sys.path.insert(0, str(HERE / "tests" / "vm" / "guest"))
    from cheapclients import MultipartCounter, RawWsCounter

    counters: list[Any] = [
        RawWsCounter(port, "/websocket") if kind == "websocket" else MultipartCounter(port, "/stream.mjpg")
        for _ in range(n)
    ]  # fmt: skip
    tasks = [asyncio.create_task(c.run()) for c in counters]
    await asyncio.sleep(1.0)  # warm-up: every client streaming
    before, started = sum(c.frames for c in counters), time.monotonic()
    print("go", flush=True)
    await asyncio.sleep(seconds)
    frames = sum(c.frames for c in counters) - before
    result = {"frames": frames, "seconds": time.monotonic() - started}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def run_seconds(pid: int) -> float:
    """CPU seconds the process's threads have run (ns resolution)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9


def measure(
    tree: Path, folder: Path, case: str, seconds: float, ticker: bool = False
) -> tuple[float, float]:
    """(ms CPU per delivered frame, fps per client) of `tree`'s daemon for one case."""
    kind, n = case.split(":")
    # This tree's replay server with the other tree's package: the other tree may predate it.
    server = subprocess.Popen(
        [sys.executable, str(REPLAY), str(folder), "--camera-fps", f"{FPS:g}",
         "--interval", str(1 / FPS), "--paced", *(["--ticker"] if ticker else [])],
        stdout=subprocess.PIPE, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        cl = subprocess.Popen(
            [sys.executable, "-m", "bench.stream", "clients", port, kind, n, str(seconds)],
            stdout=subprocess.PIPE, text=True, cwd=HERE,
        )  # fmt: skip
        assert cl.stdout is not None
        assert cl.stdout.readline().strip() == "go"
        cpu0 = run_seconds(server.pid)
        out = json.loads(cl.stdout.readline())
        cpu = run_seconds(server.pid) - cpu0
        cl.wait(30)
    finally:
        server.terminate()
        server.wait(30)
    return 1000 * cpu / out["frames"], out["frames"] / out["seconds"] / int(n)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.stream")
    sub = parser.add_subparsers(dest="cmd")
    cl = sub.add_parser("clients")
    cl.add_argument("port", type=int)
    cl.add_argument("kind")
    cl.add_argument("n", type=int)
    cl.add_argument("seconds", type=float)
    parser.add_argument("--against", type=Path, help="another tree (e.g. a git archive of main)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--ticker", action="store_true", help="a device-like camera: bench/replay.py --ticker"
    )
    args = parser.parse_args()
    if args.cmd == "clients":
        print(json.dumps(asyncio.run(clients(args.port, args.kind, args.n, args.seconds))))
    else:
        compare(args.against, args.seconds, args.rounds, args.cases.split(","), args.ticker)


def compare(
    against: Path | None, seconds: float, rounds: int, cases: list[str], ticker: bool = False
) -> None:
    trees = [HERE] + ([against.resolve()] if against else [])
    got: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_frames(Path(tmp))
        print(f"{FPS:g} fps replay of {N_FRAMES} 1080p JPEGs; {seconds:g} s per case; "
              f"{rounds} rounds, trees alternating")  # fmt: skip
        for r in range(rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                for case in cases:
                    got.setdefault((tree, case), []).append(
                        ms := measure(tree, Path(tmp), case, seconds, ticker)
                    )
                    print(f"round {r}: {tree}: {case}: {ms[0]:.3f} ms CPU/frame, {ms[1]:.1f} fps each",
                          flush=True)  # fmt: skip
    print()
    print("| case | this tree: ms CPU/frame | fps each |"
          + (" other tree: ms CPU/frame | ratio |" if against else ""))  # fmt: skip
    print("| --- | --- | --- |" + (" --- | --- |" if against else ""))
    for case in cases:
        ours = [g[0] for g in got[HERE, case]]
        row = (
            f"| {case} | {spread(ours)} | {statistics.median(g[1] for g in got[HERE, case]):.1f} |"
        )
        if against:
            theirs = [g[0] for g in got[trees[1], case]]
            row += (
                f" {spread(theirs)} | {statistics.median(ours) / statistics.median(theirs):.2f} |"
            )
        print(row)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
