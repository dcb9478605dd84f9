"""Pipeline source: a command that writes MJPEG to stdout is a camera (`source: exec`).

`PipelineSource` is the `CaptureSource` (camera.py) for `rpicam-vid ... --codec mjpeg -o -`
(the Raspberry Pi Camera Module through libcamera), `ffmpeg ... -f mjpeg -` (RTSP cameras,
files) or `gst-launch-1.0 ... ! jpegenc ! fdsink`. Its hooks run in the camera's one capture
thread: `open()` starts the command in its own session (no shell; its own process group),
`read()` waits on its stdout and stderr with a bound, cuts JPEGs out of the byte stream
(mjpegsplit.py) and checks each like V4L2 MJPEG (mjpeg.py); `close()` ends the whole
process group, SIGTERM and then SIGKILL after `term_timeout`, and reaps it (no zombie).
camera.py does the rest exactly as for a V4L2 camera: started by the first viewer, stopped
after `stop_delay`, restarted with back-off when the command exits or goes silent for
`frame_timeout`; the command's last stderr line is the offline reason.

The exec keys are validated into `PipelineOptions` by pipelineconfig.py (registered in
sources.py), before any source exists.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shlex
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from pyimagestreamd.camera import CameraError, CaptureSource
from pyimagestreamd.frame import Frame
from pyimagestreamd.mjpeg import MjpegChecker, checked_frame
from pyimagestreamd.mjpegsplit import StreamSplitter, max_frame_bytes
from pyimagestreamd.pipelineconfig import EXEC, PipelineOptions
from pyimagestreamd.ratelimit import RateLimitedLog
from pyimagestreamd.redact import redact

if TYPE_CHECKING:
    from pyimagestreamd.config import CameraConfig

log = logging.getLogger(__name__)

# Bytes read from a pipe at a time: a 1080p JPEG is ~200-500 KB.
READ_CHUNK = 1 << 16
# Longest stderr line kept (a producer printing without newlines must not grow it).
MAX_LINE = 1000
# How long a command that closed its stdout gets to exit, for its status in the reason.
EXIT_WAIT = 1.0
# Stderr lines reach the journal at most this often per camera (ffmpeg and rpicam-vid
# print one per frame at their default verbosity).
STDERR_LOG_INTERVAL = 10.0


class PipelineSource(CaptureSource):
    """One producer command; the hooks run only in the capture thread."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        opts = config.options
        self.options = opts if isinstance(opts, PipelineOptions) else PipelineOptions()
        self.frame_timeout = self.options.frame_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._splitter = StreamSplitter(max_frame_bytes(config.width, config.height))
        self._checker = MjpegChecker()
        self._line = bytearray()
        self.last_stderr = ""
        self.pid: int | None = None
        self._stderr_log = RateLimitedLog(log, STDERR_LOG_INTERVAL)
        self.counters["frames_dropped_invalid"] = 0
        self.counters["commands_started"] = 0
        self.counters["commands_killed"] = 0

    @property
    def command_text(self) -> str:
        return redact(shlex.join(self.options.command))

    # -- hooks -----------------------------------------------------------------------------

    def open(self) -> None:
        command = self.options.command
        if not command:
            raise CameraError("exec: no command configured")
        self._splitter = StreamSplitter(self._splitter.max_frame)
        self._line.clear()
        self.last_stderr = ""
        try:
            # Own session: one process group for the command and whatever it starts (a
            # shell's children, gst-launch's threads), so close() can end all of it.
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                bufsize=0,
            )
        except FileNotFoundError:
            raise CameraError(f"exec: command not found: {command[0]}") from None
        except PermissionError:
            raise CameraError(f"exec: permission denied: {command[0]}") from None
        except OSError as exc:
            raise CameraError(f"exec: cannot start {command[0]}: {exc.strerror or exc}") from None
        self.pid = self._proc.pid
        self.counters["commands_started"] += 1
        log.info("camera %s: started %s (pid %d)", self.config.name, self.command_text, self.pid)
        for pipe in (self._proc.stdout, self._proc.stderr):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)

    def read(self, timeout: float) -> Frame | None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select((out, err), (), (), left)
            if err in ready:
                self._read_stderr(err)
            if out not in ready:
                continue
            try:
                data = os.read(out, READ_CHUNK)
            except BlockingIOError:
                continue
            if not data:
                raise CameraError(self._exit_reason(proc, err))
            jpegs = self._splitter.feed(data)
            frames = [f for j in jpegs if (f := checked_frame(self._checker, j, self.counters))]
            if frames:
                # Pictures completed by the same read are older: the newest wins, as in the
                # hub's latest-frame slot.
                self.counters["frames_dropped"] += len(frames) - 1
                return frames[-1]
        return None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._end_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    # -- inside the hooks --------------------------------------------------------------------

    def _read_stderr(self, fd: int) -> bool:
        """Take what the command wrote on stderr; False at end of file."""
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return True
        # Progress lines end in \r (ffmpeg, rpicam-vid): each one is a line too.
        self._line += data.replace(b"\r", b"\n")
        *lines, rest = self._line.split(b"\n")
        self._line = bytearray(rest[-MAX_LINE:])
        for raw in lines:
            text = redact(raw.decode("utf-8", "replace").strip())[:MAX_LINE]
            if text:
                self.last_stderr = text
                self._stderr_log.info("stderr", "camera %s: %s", self.config.name, text)
        return bool(data)

    def _exit_reason(self, proc: subprocess.Popen[bytes], err: int) -> str:
        """Why the command stopped writing: its exit status and its last stderr line."""
        try:
            status: int | None = proc.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            status = None
        # What it wrote on its way out: read to end of file, within a bound (a child that
        # keeps stderr open must not hold the capture thread).
        for _ in range(16):
            ready, _, _ = select.select((err,), (), (), 0.1)
            if not ready or not self._read_stderr(err):
                break
        if self._line:
            tail = redact(self._line.decode("utf-8", "replace").strip())[:MAX_LINE]
            self.last_stderr = tail or self.last_stderr
            self._line.clear()
        if status is None:
            what = "closed its output"
        elif status < 0:
            what = f"killed by signal {signal.Signals(-status).name}"
        else:
            what = f"exited with status {status}"
        reason = f"command {what}"
        return f"{reason}: {self.last_stderr}" if self.last_stderr else reason

    def _end_group(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process group, SIGKILL what is left after term_timeout; reap."""
        pgid = proc.pid  # start_new_session: the command leads its own group
        name = self.config.name
        if not _signal_group(pgid, signal.SIGTERM) and proc.poll() is not None:
            return
        deadline = time.monotonic() + self.options.term_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.02)
        if _signal_group(pgid, signal.SIGKILL):
            self.counters["commands_killed"] += 1
            log.warning(
                "camera %s: command did not end %.1f s after SIGTERM: killed (pid %d)",
                name, self.options.term_timeout, pgid,
            )  # fmt: skip
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            log.error("camera %s: pid %d survives SIGKILL (uninterruptible?)", name, pgid)

    # -- what the daemon shows ---------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        proc = self._proc
        return {
            "source": EXEC,
            "command": [redact(arg) for arg in self.options.command],
            "mode": "passthrough",
            "format": "MJPG",
            "pid": proc.pid if proc is not None else None,
            "last_stderr": self.last_stderr,
            "frames": {**self._checker.counters(), **self._splitter.counters()},
        }

    def format_summary(self) -> str:
        width, height = self.last_size
        return f"{self.command_text} (pid {self.pid}): MJPEG {width}x{height}, passthrough"


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group; False if no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:  # a member changed its uid: nothing more we may do
        log.debug("killpg(%d, %s): %r", pgid, sig.name, exc)
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
