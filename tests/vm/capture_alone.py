"""make bench-vm's "capture alone": frames per CPU-second of `V4L2Source.read()` in a loop.

Run as `python capture_alone.py TREE DEVICE SECONDS` (by tests/vm/bench.py, in the guest):
TREE is the source tree whose pyimagestreamd is measured, so that another tree's capture
(`BENCH_AGAINST`) is measured in the same run, the same way. Prints one number.
"""

from __future__ import annotations

import resource
import sys
import time


def main() -> None:
    tree, device, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sys.path.insert(0, tree)
    # Imported here: from TREE, not from wherever this script is.
    from pyimagestreamd.config import parse_config
    from pyimagestreamd.v4l2 import V4L2Source

    config = parse_config(
        f"cameras:\n  cam: {{source: {device}, width: 1920, height: 1080, fps: 30}}\n"
    )
    source = V4L2Source(config.cameras[0])
    source.open()
    try:
        source.read(5.0)  # the first frame after STREAMON: not counted
        n = 0
        started = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        while time.monotonic() < t0 + seconds:
            if source.read(1.0) is not None:
                n += 1
        ended = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        source.close()
    cpu = (ended.ru_utime - started.ru_utime) + (ended.ru_stime - started.ru_stime)
    print(n / cpu)


if __name__ == "__main__":
    main()
