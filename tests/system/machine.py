"""A Debian system booted with systemd-nspawn, driven from the host.

`python3 machine.py boot IMAGE NETNS LOG` (tests/system/run) boots a throw-away copy of a
cached image (tests/system/image) into a network namespace that the run script made, waits
until systemd is up, and prints the PIDs of systemd-nspawn and of the container's systemd;
nspawn keeps running after it returns. It must run outside `ip netns exec`, whose private
/sys hides the cgroup file system from nspawn. The tests then run inside that namespace, so
127.0.0.1 reaches the daemon in the container and no other network is involved. Commands
run in the container through nsenter; files are read and written through /proc/PID/root.
Not thread-safe: one test process drives one machine.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The one scale factor for every timeout of the system tests (slow or loaded machines).
SCALE = float(os.environ.get("PYIMAGESTREAM_TIMEOUT_SCALE", "1"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def scaled(seconds: float) -> float:
    return seconds * SCALE


class MachineError(AssertionError):
    """A command in the container failed, or the container did not do what was expected."""


class Machine:
    """One booted container, known by the host PID of its systemd."""

    def __init__(self, leader: int) -> None:
        self.leader = leader

    @classmethod
    def boot(cls, image: Path, netns: str, log_path: Path) -> tuple[int, Machine]:
        """Boot a fresh copy of the image; return nspawn's PID and the running machine."""
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    "systemd-nspawn", "--quiet", "--ephemeral", "--boot",
                    f"--directory={image}", f"--machine={netns}",
                    f"--network-namespace-path=/run/netns/{netns}",
                    # No machined or D-Bus on the host side is needed (or assumed).
                    "--register=no", "--keep-unit", "--console=passive",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            box = cls._wait_booted(process, log_path)
        except BaseException:
            # Nobody else knows this container yet: power it off before giving up.
            process.terminate()
            try:
                process.wait(scaled(30))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
        return process.pid, box

    @classmethod
    def _wait_booted(cls, process: subprocess.Popen[bytes], log_path: Path) -> Machine:
        """Wait for the container's systemd to appear, then for it to finish booting."""
        deadline = time.monotonic() + scaled(60)
        leader = 0
        while not leader:
            if process.poll() is not None or time.monotonic() > deadline:
                raise MachineError(f"the container did not start, see {log_path}")
            leader = cls._find_leader(process.pid)
            time.sleep(0.1)
        box = cls(leader)
        while True:
            state = box.run("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise MachineError(f"the container did not finish booting: {state}")
            time.sleep(0.2)
        if state == "degraded":
            failed = box.run("systemctl --failed --no-legend --plain").stdout
            raise MachineError(f"the fresh container has failed units:\n{failed}")
        return box

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int:
        """The container's PID 1 (systemd), as seen from the host: a child of nspawn."""
        try:
            children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text()
        except OSError:
            return 0
        for child in children.split():
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
            except OSError:
                continue
        return 0

    def run(
        self, command: str, *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root inside the container; raise if it fails and check."""
        argv = [
            "nsenter", f"--target={self.leader}", "--all",
            "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive",
            "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "/bin/sh", "-c", command,
        ]  # fmt: skip
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=scaled(timeout), check=False
        )
        if check and result.returncode != 0:
            raise MachineError(
                f"in the container: {command!r} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def copy_in(self, source: Path, inside: str) -> None:
        self.path(inside).write_bytes(source.read_bytes())

    def unit(self, *properties: str, unit: str = "pyimagestream.service") -> dict[str, str]:
        """Some properties of a unit, as `systemctl show` reports them."""
        out = self.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties))
        values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        return {p: values.get(p, "") for p in properties}

    def journal(self, since: float, unit: str = "pyimagestream.service") -> list[dict[str, Any]]:
        """The unit's journal entries since a host time.time() (the clock is shared)."""
        out = self.run(
            f"journalctl --no-pager -o json -u {shlex.quote(unit)} --since=@{since:.3f}"
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_for(self, what: str, predicate: Any, timeout: float) -> None:
        """Poll predicate() until it is true, or fail naming `what`."""
        deadline = time.monotonic() + scaled(timeout)
        while not predicate():
            if time.monotonic() > deadline:
                raise MachineError(f"timed out after {scaled(timeout):.0f} s waiting for {what}")
            time.sleep(0.2)


def main() -> None:
    """Boot a machine (see the module docstring) and print "NSPAWN_PID LEADER_PID"."""
    if len(sys.argv) != 5 or sys.argv[1] != "boot":
        raise SystemExit("usage: machine.py boot IMAGE NETNS LOG")
    nspawn, box = Machine.boot(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
    print(nspawn, box.leader)


if __name__ == "__main__":
    main()
