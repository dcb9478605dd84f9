"""The installed package under a real systemd: one story, step by step, in file order.

Each test is a step that starts from where the previous one left the container: install,
serve, status, reload, refuse a bad reload, watchdog (frozen daemon, hung capture thread),
bad config at start, stop, upgrade, purge.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import statistics
import struct
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from machine import Machine, scaled
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK
from websockets.typing import Subprotocol

BASE = "http://127.0.0.1:8888"
# How long the daemon waits for clients to answer its close frame before it drops them
# (pyimagestreamd/daemon.py, shutdown step 3): not scaled, it is the daemon's own figure.
CLOSE_WAIT = 3.0
# `systemctl stop` with a client that answers, as measured by the clean stop test: the rest
# of a stop, which an unresponsive client lengthens by CLOSE_WAIT.
clean_stop: list[float] = []
WS = "ws://127.0.0.1:8888"
CONFIG = "/etc/pyimagestream.yaml"
V2 = [Subprotocol("pyimagestream.v2")]
# A camera with a non-ASCII name and device path: it is offline (no such device), and its
# name and reason must reach `systemctl status` intact (sdnotify alone would drop them).
ODD_NAME = "küche"
ODD_DEVICE = "/dev/v4l/by-id/usb-Kamera_Küche-video-index0"


def config_text(fps: int) -> str:
    return f"""\
# Written by tests/system: a small test pattern, and a camera that is not there.
server:
  port: 8888
cameras:
  pattern:
    source: testpattern
    width: 320
    height: 240
    fps: {fps}
    stop_delay: 2.0
  {ODD_NAME}:
    source: "{ODD_DEVICE}"
    width: 320
    height: 240
"""


@dataclass
class Pulled:
    seq: int
    time: float
    jpeg: bytes


async def pull(
    ws: ClientConnection, count: int | None = None, duration: float = 0.0
) -> list[Pulled]:
    """Pull frames with protocol 2, one credit at a time, for `count` frames or `duration`."""
    frames: list[Pulled] = []
    deadline = time.monotonic() + duration
    while (count is not None and len(frames) < count) or (
        count is None and time.monotonic() < deadline
    ):
        await ws.send(json.dumps({"type": "next"}))
        while True:
            message = await asyncio.wait_for(ws.recv(), scaled(10))
            if isinstance(message, bytes):
                break
        (size,) = struct.unpack(">I", message[:4])
        meta = json.loads(message[4 : 4 + size])
        frames.append(Pulled(meta["seq"], meta["time"], message[4 + size :]))
    return frames


def frame_interval(frames: list[Pulled]) -> float:
    """Median capture interval, from the frames' own capture times and sequence numbers."""
    steps = [
        (b.time - a.time) / (b.seq - a.seq)
        for a, b in itertools.pairwise(frames)
        if b.seq > a.seq and b.time > a.time
    ]
    assert len(steps) >= 3, f"too few frames to measure: {[f.seq for f in frames]}"
    return statistics.median(steps)


def http_get(path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(BASE + path, timeout=scaled(10)) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def daemon_lines(box: Machine, since: float) -> list[tuple[int, str]]:
    """(priority, message) of what pyimagestreamd itself wrote to the journal since then."""
    lines = []
    for entry in box.journal(since):
        if entry.get("SYSLOG_IDENTIFIER") == "pyimagestreamd":
            message = entry.get("MESSAGE", "")
            if isinstance(message, list):  # journald's form for non-UTF-8 bytes
                message = bytes(message).decode("utf-8", "replace")
            lines.append((int(entry.get("PRIORITY", 6)), message))
    return lines


def installed(box: Machine, package: str) -> bool:
    status = box.run(f"dpkg-query -W -f='${{db:Status-Abbrev}}' {package}", check=False)
    return status.stdout.startswith("ii")


def debian_depends(deb: Path) -> list[str]:
    """The package names in a .deb's Depends (first of each set of alternatives)."""
    field = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    return [re.split(r"[\s:(|]", item.strip(), maxsplit=1)[0] for item in field.split(",")]


def main_pid(box: Machine) -> int:
    return int(box.unit("MainPID")["MainPID"])


def is_active(box: Machine) -> bool:
    return box.unit("ActiveState")["ActiveState"] == "active"


def write_config(box: Machine, text: str) -> None:
    box.path(CONFIG).write_text(text, encoding="utf-8")


def restart_with(box: Machine, text: str) -> None:
    write_config(box, text)
    box.run("systemctl restart pyimagestream")
    box.wait_for("the port to answer", serving, 30)


def serving() -> bool:
    try:
        return http_get("/api/state")[0] == 200
    except OSError:
        return False


# -- install ---------------------------------------------------------------------------------


def test_apt_install_and_enable_now(machine: Machine, debs: tuple[Path, Path]) -> None:
    """`apt install ./x.deb` installs, `systemctl enable --now` makes the service active."""
    deb, _ = debs
    machine.run("find / -xdev -path /proc -prune -o -print | sort >/root/files-before")
    machine.copy_in(deb, f"/root/{deb.name}")
    # The container has no network: the Debian dependencies come from apt's cache, where the
    # image put them without installing them, so a dependency the package fails to declare
    # is missing here, as on a user's machine.
    assert not installed(machine, "python3")
    machine.run(f"apt-get install -y -q /root/{deb.name}", timeout=180)
    for name in debian_depends(deb):
        assert installed(machine, name), f"{name} is not installed"
    machine.run("systemctl enable --now pyimagestream")
    machine.wait_for("the service to be active", lambda: is_active(machine), 30)
    assert machine.unit("Type")["Type"] == "notify"
    groups = machine.run("id -nG pyimagestream").stdout.split()
    assert "video" in groups
    assert machine.run("systemctl is-enabled pyimagestream").stdout.strip() == "enabled"


def test_installed_files(machine: Machine) -> None:
    """The daemon, launcher, web client, conffile and man pages are where Debian users look."""
    assert "pyimagestreamd 0.1.0" in machine.run("pyimagestreamd --version").stdout
    machine.run("test -x /usr/sbin/pyimagestreamd")
    machine.run("test -f /usr/share/pyimagestream/web/index.html")
    machine.run("test -f /usr/share/man/man8/pyimagestreamd.8.gz")
    machine.run("test -f /usr/share/man/man5/pyimagestream.yaml.5.gz")
    conffiles = machine.run("dpkg-query -W -f='${Conffiles}' pyimagestream").stdout
    assert CONFIG in conffiles
    # The shipped config is valid, and so is --check-config's verdict on it.
    machine.run(f"pyimagestreamd --check-config --config {CONFIG}")


def test_installed_unit_exposure(machine: Machine) -> None:
    """The unit as installed rates at exposure 1.5 or lower in the container's systemd too."""
    out = machine.run("systemd-analyze security --no-pager pyimagestream.service").stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out
    print(f"installed unit, online analysis: exposure {match.group(1)}")
    assert float(match.group(1)) <= 1.5


# -- serving ---------------------------------------------------------------------------------


def test_root_page_answers_from_the_host() -> None:
    """GET / returns the web client; /api/state answers JSON."""
    status, content_type, body = http_get("/")
    assert status == 200
    assert content_type.startswith("text/html")
    assert b"<" in body
    status, content_type, body = http_get("/api/state")
    assert status == 200
    assert isinstance(json.loads(body), dict)


async def test_websocket_client_pulls_frames_from_the_test_pattern(machine: Machine) -> None:
    """A websockets client pulls JPEG frames, newer each time, over both protocols."""
    restart_with(machine, config_text(fps=15))
    async with connect(f"{WS}/websocket/pattern", compression=None) as ws:
        seen = []
        for _ in range(5):
            await ws.send("next")
            jpeg = await asyncio.wait_for(ws.recv(), scaled(10))
            assert isinstance(jpeg, bytes)
            assert jpeg[:2] == b"\xff\xd8"
            seen.append(hashlib.sha256(jpeg).hexdigest())
    # The pattern moves every frame, so a frame sent twice would be two equal JPEGs.
    assert len(set(seen)) == len(seen), "the original protocol sent a frame twice"
    async with connect(f"{WS}/websocket/pattern", subprotocols=V2, compression=None) as ws:
        frames = await pull(ws, count=10)
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)), seqs
    assert all(f.jpeg[:2] == b"\xff\xd8" for f in frames)


async def test_status_text_is_current_and_keeps_non_ascii(machine: Machine) -> None:
    """`systemctl status` shows the cameras and their state, non-ASCII text intact."""
    # A viewer wakes that camera, which goes offline with its (non-ASCII) path as the reason.
    async with connect(f"{WS}/websocket/{quote(ODD_NAME)}", compression=None) as ws:
        await ws.send("next")
        await asyncio.wait_for(ws.recv(), scaled(15))

        def status_shows_camera() -> bool:
            text = machine.unit("StatusText")["StatusText"]
            return f"{ODD_NAME}: offline" in text and "Kamera_Küche" in text

        machine.wait_for("STATUS= with the non-ASCII name and reason", status_shows_camera, 20)
    status = machine.run("systemctl status --no-pager --full pyimagestream", check=False).stdout
    print(status)
    assert "Status:" in status
    assert "pattern" in status
    assert f"{ODD_NAME}: offline" in status
    assert "Kamera_Küche" in status


def test_journal_lines_have_priorities_and_no_timestamps(machine: Machine) -> None:
    """The daemon's journal lines carry syslog priorities and no second timestamp."""
    lines = daemon_lines(machine, time.time() - 600)
    assert lines, "no journal lines from pyimagestreamd"
    assert any(priority == 6 for priority, _ in lines)  # lifecycle at INFO
    assert any(priority == 4 and "offline" in text for priority, text in lines)  # the camera
    for _, text in lines:
        assert not re.match(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d|<\d>", text), text


# -- reload ----------------------------------------------------------------------------------


async def test_reload_changes_fps_and_keeps_the_client_connected(machine: Machine) -> None:
    """`systemctl reload` applies a new fps to a connected client, which stays connected."""
    restart_with(machine, config_text(fps=15))
    pid = main_pid(machine)
    async with connect(f"{WS}/websocket/pattern", subprotocols=V2, compression=None) as ws:
        before = frame_interval(await pull(ws, duration=scaled(2.5)))
        since = time.time()
        write_config(machine, config_text(fps=4))
        machine.run("systemctl reload pyimagestream")
        machine.wait_for(
            "the reload to be logged",
            lambda: any("reloaded" in text for _, text in daemon_lines(machine, since)),
            15,
        )
        await pull(ws, count=2)  # frames from before the change may still be in flight
        after = frame_interval(await pull(ws, duration=scaled(3)))
        print(f"frame interval before reload {before:.3f} s, after {after:.3f} s")
        assert before < 1 / 8  # 15 fps
        assert 1 / 5.5 < after < 1 / 2.5  # 4 fps
        await pull(ws, count=1)
    assert main_pid(machine) == pid


async def test_bad_reload_is_refused_and_service_keeps_serving(machine: Machine) -> None:
    """An invalid edit + reload is refused with a clear line; the old config keeps serving."""
    pid = main_pid(machine)
    since = time.time()
    write_config(machine, config_text(fps=4).replace("fps: 4", "fps: lots"))
    try:
        machine.run("systemctl reload pyimagestream")
        machine.wait_for(
            "the refusal to be logged",
            lambda: any("refused" in text for _, text in daemon_lines(machine, since)),
            15,
        )
        refusal = [(p, t) for p, t in daemon_lines(machine, since) if "refused" in t]
        print(refusal)
        assert refusal[0][0] <= 3  # error priority
        assert "fps" in refusal[0][1]
        assert is_active(machine)
        assert main_pid(machine) == pid
        async with connect(f"{WS}/websocket/pattern", subprotocols=V2, compression=None) as ws:
            frames = await pull(ws, count=6)
        assert 1 / 5.5 < frame_interval(frames) < 1 / 2.5  # still the last good config (4 fps)
    finally:
        write_config(machine, config_text(fps=15))


# -- failures --------------------------------------------------------------------------------


def wait_for_watchdog_restart(box: Machine, pid: int, restarts: int, since: float) -> None:
    """Wait until systemd's watchdog has replaced process `pid`, then check it was that."""

    def restarted() -> bool:
        now = box.unit("MainPID", "ActiveState")
        return now["ActiveState"] == "active" and now["MainPID"] not in ("0", str(pid))

    # The daemon stops petting at most 10 s after a hang; systemd waits 10 s more.
    box.wait_for("a watchdog restart", restarted, 45)
    assert int(box.unit("NRestarts")["NRestarts"]) == restarts + 1
    journal = box.run(f"journalctl --no-pager -u pyimagestream --since=@{since:.3f}").stdout
    assert "Watchdog timeout" in journal, journal
    box.wait_for("the port to answer", serving, 30)


def test_frozen_daemon_is_restarted_by_the_watchdog(machine: Machine) -> None:
    """SIGSTOP on the daemon: systemd's watchdog kills and restarts it."""
    machine.run("systemctl restart pyimagestream")
    machine.wait_for("the port to answer", serving, 30)
    pid, restarts = main_pid(machine), int(machine.unit("NRestarts")["NRestarts"])
    since = time.time()
    machine.run(f"kill -STOP {pid}")
    wait_for_watchdog_restart(machine, pid, restarts, since)


# Stops one thread of another process with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT): the
# other threads run on. It then reaps that thread when the process is killed (a traced
# thread stays a zombie until its tracer waits for it) and exits; or, after argv[2]
# seconds, exits anyway, which resumes the thread.
FREEZE_THREAD = """\
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
tid = int(sys.argv[1])
signal.alarm(int(sys.argv[2]))
for request in (0x4206, 0x4207):  # PTRACE_SEIZE, PTRACE_INTERRUPT
    if libc.ptrace(request, tid, None, None) != 0:
        raise OSError(ctypes.get_errno(), f"ptrace {request:#x} on thread {tid}")
while True:
    _, status = os.waitpid(tid, 0x40000000)  # __WALL: the tracee is a thread
    if os.WIFEXITED(status) or os.WIFSIGNALED(status):
        break
"""


def threads(box: Machine, pid: int) -> set[int]:
    return {int(tid) for tid in box.run(f"ls /proc/{pid}/task").stdout.split()}


async def test_hung_capture_thread_is_restarted_by_the_watchdog(machine: Machine) -> None:
    """A capture thread that hangs while the event loop runs on gets the service restarted."""
    pid = main_pid(machine)
    idle = threads(machine, pid)  # a fresh daemon: no viewer yet, so no capture thread
    machine.path("/root/freeze-thread.py").write_text(FREEZE_THREAD)
    async with connect(f"{WS}/websocket/pattern", compression=None) as ws:
        await ws.send("next")
        await asyncio.wait_for(ws.recv(), scaled(10))
        capture = threads(machine, pid) - idle
        assert len(capture) == 1, f"expected one new (capture) thread, got {capture}"
        restarts = int(machine.unit("NRestarts")["NRestarts"])
        since = time.time()
        freezer = machine.run(
            f"python3 /root/freeze-thread.py {capture.pop()} 120 >/dev/null 2>&1 & echo $!"
        ).stdout.strip()
        try:
            wait_for_watchdog_restart(machine, pid, restarts, since)
        finally:
            machine.run(f"kill {freezer}; rm /root/freeze-thread.py", check=False)
    lines = daemon_lines(machine, since)
    stalls = [(p, t) for p, t in lines if "not petting the watchdog" in t]
    print(stalls)
    assert stalls and stalls[0][0] <= 3 and "capture thread stalled" in stalls[0][1], lines


def test_bad_config_at_start_fails_once_without_restart_loop(machine: Machine) -> None:
    """A bad config at start: one clear journal line, exit status 2, no restart loop."""
    good = machine.path(CONFIG).read_text(encoding="utf-8")
    write_config(machine, good.replace("fps: 15", "fps: lots"))
    try:
        since = time.time()
        machine.run("systemctl restart pyimagestream", check=False)
        machine.wait_for(
            "the service to fail",
            lambda: machine.unit("ActiveState")["ActiveState"] == "failed",
            20,
        )
        time.sleep(scaled(5))  # RestartSec is 2 s: a loop would have restarted by now
        state = machine.unit("ActiveState", "ExecMainStatus", "NRestarts", "Result")
        print(state)
        assert state["ActiveState"] == "failed"
        assert state["ExecMainStatus"] == "2"
        # A manual restart resets the counter: any automatic restart would show here.
        assert state["NRestarts"] == "0"
        starts = machine.run(
            f"journalctl --no-pager -u pyimagestream --since=@{since:.3f} -g '^Starting'",
            check=False,
        ).stdout
        assert starts.count("Starting") == 1, starts
        lines = daemon_lines(machine, since)
        print(lines)
        errors = [(p, t) for p, t in lines if p <= 3]
        assert len(errors) == 1, lines
        assert "fps" in errors[0][1] and "lots" in errors[0][1]
        assert not any("Traceback" in t for _, t in lines)
    finally:
        write_config(machine, good)
        machine.run("systemctl reset-failed pyimagestream")
        machine.run("systemctl start pyimagestream")
    machine.wait_for("the port to answer", serving, 30)


async def test_stop_is_clean_and_within_the_timeout(machine: Machine) -> None:
    """`systemctl stop` with a client connected: exit 0 within seconds, client told 1001."""
    since = time.time()
    async with connect(f"{WS}/websocket/pattern", compression=None) as ws:
        await ws.send("next")
        await asyncio.wait_for(ws.recv(), scaled(10))
        started = time.monotonic()
        # In a thread: this client must stay able to answer the server's close handshake.
        await asyncio.to_thread(machine.run, "systemctl stop pyimagestream")
        took = time.monotonic() - started
        clean_stop.append(took)
        # A closing handshake with 1001 (going away), not a dropped connection.
        with pytest.raises(ConnectionClosedOK) as closed:
            await asyncio.wait_for(ws.recv(), scaled(5))
    close_code = closed.value.rcvd.code if closed.value.rcvd else None
    print(f"systemctl stop took {took:.2f} s; close code {close_code}")
    state = machine.unit("ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert close_code == 1001
    assert took < scaled(CLOSE_WAIT)  # it did not wait for the unresponsive-client bound
    journal = machine.run(f"journalctl --no-pager -u pyimagestream --since=@{since:.3f}").stdout
    assert "SIGKILL" not in journal and "timed out" not in journal, journal
    machine.run("systemctl start pyimagestream")
    machine.wait_for("the port to answer", serving, 30)


async def test_stop_with_a_client_that_never_answers_is_bounded(machine: Machine) -> None:
    """A client that ignores the closing handshake delays `systemctl stop` by 3 s, no more."""
    assert clean_stop, "the clean stop test measures the stop without this delay first"
    async with connect(f"{WS}/websocket/pattern", compression=None) as ws:
        await ws.send("next")
        await asyncio.wait_for(ws.recv(), scaled(10))
        started = time.monotonic()
        # Called without a thread on purpose: this blocks the client's event loop, so the
        # client cannot answer the server's close frame while systemd stops the service.
        machine.run("systemctl stop pyimagestream")
        took = time.monotonic() - started
    print(
        f"systemctl stop with an unresponsive client took {took:.2f} s, "
        f"with one that answers {clean_stop[0]:.2f} s"
    )
    state = machine.unit("ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    # The daemon waited for the client (so the client really did not answer), then dropped it
    # after CLOSE_WAIT: the stop took that long plus what a clean stop takes, within a second.
    assert took >= CLOSE_WAIT
    assert took < CLOSE_WAIT + clean_stop[0] + scaled(1.0)
    machine.run("systemctl start pyimagestream")
    machine.wait_for("the port to answer", serving, 30)


# -- upgrade and purge -----------------------------------------------------------------------


def test_user_add_makes_every_route_ask_and_basic_works(machine: Machine) -> None:
    """`pyimagestreamd user add` on the installed package: 401 at once, Basic gets in."""
    machine.run("printf 'fish food 42\\n' | pyimagestreamd user add anna --role admin")
    try:
        owner = machine.run("stat -c '%a %U %G' /etc/pyimagestream/users").stdout.split()
        assert owner == ["640", "root", "pyimagestream"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_get("/snapshot.jpg")
        assert refused.value.code == 401
        refused.value.close()  # the error holds the response and its socket
        token = base64.b64encode(b"anna:fish food 42").decode()
        request = urllib.request.Request(
            BASE + "/api/login",
            headers={"Authorization": f"Basic {token}", "X-PyImageStream": "1"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            assert response.status == 200
            assert "HttpOnly" in response.headers["Set-Cookie"]
        sessions = machine.run("stat -c '%a %U' /var/lib/pyimagestream/sessions.json").stdout
        assert sessions.split() == ["600", "pyimagestream"]
    finally:
        machine.run("pyimagestreamd user del anna")
    machine.wait_for("the port to answer without a user again", serving, 30)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl from the host, in the container's network namespace (as this process is)."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(scaled(15)), *args],
        capture_output=True, text=True, timeout=scaled(30), check=False,
    )  # fmt: skip


def test_tls_login_on_the_installed_package(machine: Machine, tmp_path: Path) -> None:
    """Certificate and key where the certbot hook puts them, a user, a login over https with
    curl --cacert (Secure cookie, HSTS), a snapshot with that session, the plain-HTTP
    redirect; the unit's exposure is still 1.5 or lower."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=pyimagestream system test CA", cwd=tmp_path)  # fmt: skip
    openssl("req", *ec, "-keyout", "privkey.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1",
            cwd=tmp_path)  # fmt: skip
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "fullchain.pem",
            cwd=tmp_path)  # fmt: skip
    # As tools/certbot-deploy-hook installs them: root:pyimagestream 0640, the key never
    # readable by others.
    machine.run("install -d -o root -g pyimagestream -m 0750 /etc/pyimagestream/tls")
    for name in ("fullchain.pem", "privkey.pem"):
        machine.copy_in(tmp_path / name, f"/etc/pyimagestream/tls/{name}")
        machine.run(f"chown root:pyimagestream /etc/pyimagestream/tls/{name}")
        machine.run(f"chmod 0640 /etc/pyimagestream/tls/{name}")
    plain = config_text(fps=15)
    write_config(
        machine,
        plain.replace(
            "server:\n  port: 8888\n",
            "server:\n  port: 8888\n  tls:\n"
            "    certificate: /etc/pyimagestream/tls/fullchain.pem\n"
            "    key: /etc/pyimagestream/tls/privkey.pem\n    redirect_from: 8080\n",
        ),
    )
    machine.run("printf 'fish food 42\\n' | pyimagestreamd user add anna")
    try:
        machine.run("systemctl restart pyimagestream")
        ca = ["--cacert", str(tmp_path / "ca.pem")]
        machine.wait_for(
            "the https port to answer",
            lambda: (
                curl(*ca, "-o", "/dev/null", "https://127.0.0.1:8888/login.html").returncode == 0
            ),
            30,
        )
        login = curl(*ca, "-D", "-", "-o", "/dev/null", "-u", "anna:fish food 42", "-X", "POST",
                     "-H", "X-PyImageStream: 1", "https://127.0.0.1:8888/api/login")  # fmt: skip
        assert login.returncode == 0, login.stderr
        head = login.stdout.lower()
        assert head.startswith("http/1.1 200"), login.stdout
        assert "strict-transport-security: max-age=" in head
        cookie = next(line for line in head.splitlines() if line.startswith("set-cookie:"))
        assert "; secure" in cookie and "; httponly" in cookie
        value = login.stdout[login.stdout.lower().index("set-cookie:") + 11 :].split(";")[0]
        snapshot = curl(*ca, "-o", str(tmp_path / "s.jpg"), "-w", "%{http_code}",
                        "-H", f"Cookie: {value.strip()}", "https://127.0.0.1:8888/snapshot.jpg")  # fmt: skip
        assert snapshot.stdout == "200", snapshot.stderr
        assert (tmp_path / "s.jpg").read_bytes()[:2] == b"\xff\xd8"
        refused = curl(*ca, "-o", "/dev/null", "-w", "%{http_code}",
                       "https://127.0.0.1:8888/snapshot.jpg")  # fmt: skip
        assert refused.stdout == "401"
        moved = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                     "http://127.0.0.1:8080/snapshot.jpg?x=1")  # fmt: skip
        assert moved.stdout == "301 https://127.0.0.1:8888/snapshot.jpg?x=1"
        out = machine.run("systemd-analyze security --no-pager pyimagestream.service").stdout
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        assert match, out
        print(f"installed unit serving TLS, online analysis: exposure {match.group(1)}")
        assert float(match.group(1)) <= 1.5
    finally:
        machine.run("pyimagestreamd user del anna")
        restart_with(machine, plain)


def test_upgrade_keeps_the_edited_conffile_and_restarts(
    machine: Machine, debs: tuple[Path, Path]
) -> None:
    """Upgrading to a higher version keeps the user's config and restarts the service."""
    _, upgrade = debs
    edited = machine.path(CONFIG).read_text(encoding="utf-8") + "# edited by the admin\n"
    write_config(machine, edited)
    before = machine.unit("MainPID", "InvocationID")
    machine.copy_in(upgrade, f"/root/{upgrade.name}")
    machine.run(f"apt-get install -y -q /root/{upgrade.name}", timeout=180)
    version = machine.run("dpkg-query -W -f='${Version}' pyimagestream").stdout
    assert version in upgrade.name
    assert machine.path(CONFIG).read_text(encoding="utf-8") == edited
    machine.wait_for("the service to be active", lambda: is_active(machine), 30)
    after = machine.unit("MainPID", "InvocationID")
    assert after["InvocationID"] != before["InvocationID"]
    assert after["MainPID"] != before["MainPID"]
    machine.wait_for("the port to answer", serving, 30)


def test_purge_leaves_no_files(machine: Machine) -> None:
    """`apt purge` removes the service, code, conffile and everything made at run time."""
    # --autoremove: the Debian packages the install pulled in go too, so the system is back
    # to what it was before the install.
    machine.run("apt-get purge -y -q --autoremove pyimagestream", timeout=180)
    assert not serving()
    machine.run("find / -xdev -path /proc -prune -o -print | sort >/root/files-after")
    new = machine.run("comm -13 /root/files-before /root/files-after").stdout.split()
    print("paths that exist now and did not before the install:", *new, sep="\n  ")
    # What apt and debconf keep (their logs, caches and state) and this test's own files. The
    # system user stays in /etc/passwd, by Debian convention: that is no new file.
    kept = re.compile(
        r"^/(root/(files-(before|after)|pyimagestream_[^/]*\.deb)$"
        r"|var/(log/apt|cache/(apt|debconf)|lib/(apt|dpkg))(/|$))"
    )
    leftovers = [path for path in new if not kept.match(path)]
    assert leftovers == []
    paths = [
        CONFIG, "/usr/lib/pyimagestream", "/usr/share/pyimagestream", "/usr/sbin/pyimagestreamd",
        "/lib/systemd/system/pyimagestream.service", "/usr/lib/sysusers.d/pyimagestream.conf",
    ]  # fmt: skip
    gone = machine.run(f"ls -d {' '.join(paths)} 2>&1", check=False)
    assert gone.stdout.count("No such file") == len(paths), gone.stdout
    state = machine.run("dpkg-query -W -f='${db:Status-Abbrev}' pyimagestream", check=False)
    assert state.stdout.strip() in ("", "un"), state.stdout
