"""Daemon: the life cycle that ties config, capture runners, server and systemd together.

start: one runner (capture thread + hub) per configured camera, then the server; READY=1
only once the listening socket is bound. run: until SIGTERM/SIGINT, keeping STATUS= current
and petting the watchdog only while the process is healthy; SIGHUP reloads the YAML.
stop: in order, see `_shutdown`.

Every task the daemon depends on (the camera runners, the server's accept loops and access
revalidation, STATUS, the watchdog, the reload worker) is started and cancelled through its
`Supervisor` (supervisor.py): one that ends while the daemon is not shutting down is logged
with its traceback and takes the process down (exit 1), so systemd restarts it rather than
leaving a half-working daemon. Reloads run one at a time in the reload worker: a burst of SIGHUPs
while one runs is coalesced into one more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pyimagestreamd import controlfile
from pyimagestreamd.camera import CameraState
from pyimagestreamd.config import Config, ConfigError, default_web_root, load_config
from pyimagestreamd.runner import CameraRunner
from pyimagestreamd.server import StreamServer
from pyimagestreamd.sources import SourceFactory, create_source
from pyimagestreamd.supervisor import Supervisor
from pyimagestreamd.systemd import Notifier

log = logging.getLogger(__name__)

# How often STATUS= is refreshed (only sent when the text changed).
STATUS_INTERVAL = 2.0
# A running capture thread that has not turned for this long is hung: stop petting the
# watchdog. Its loop turns at least every READ_TIMEOUT, or in back-off every half second.
CAPTURE_STALL_TIMEOUT = 10.0


class Daemon:
    """One pyimagestreamd process."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        on_log_level: Callable[[str], None] | None = None,
        capture_stall_timeout: float = CAPTURE_STALL_TIMEOUT,
        source_factory: SourceFactory = create_source,
    ) -> None:
        self.config = config
        # Builds each camera's capture source (sources.py's registry unless a test swaps in
        # its own), at start and when a reload adds or changes a camera.
        self.source_factory = source_factory
        self.capture_stall_timeout = capture_stall_timeout
        self.config_path = config_path
        self.on_log_level = on_log_level
        self.notifier = Notifier()
        self.runners: dict[str, CameraRunner] = {}
        self.server: StreamServer | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        # The core tasks (supervisor.py): one that ends unexpectedly stops the daemon.
        self._core = Supervisor(self._stop.set)
        self._runner_tasks: dict[str, asyncio.Task[None]] = {}
        # Set by SIGHUP; the reload worker clears it just before it reads the file, so a
        # signal that arrives during a reload causes exactly one more.
        self._reload_wanted = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.reloads_done = 0
        # Control values saved from the page (controlfile.py), read once at start.
        self._saved_controls: dict[str, dict[str, int]] = {}

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """Ask for a reload (the SIGHUP handler); a burst of requests is coalesced."""
        self._reload_wanted.set()

    async def run(self) -> int:
        """Run until a stop signal; return the process exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            path = self.config.auth.state_path(controlfile.FILE_NAME)
            self._saved_controls = await asyncio.to_thread(controlfile.restore, path)
            for cam in self.config.cameras:
                self._add_runner(cam.name)
            web_root = self.config.server.web_root or default_web_root()
            self.server = StreamServer(self.config, self.runners, web_root)
            try:
                await self.server.start(self._core.spawn)
            except OSError as exc:
                srv = self.config.server
                log.error(
                    "cannot listen on %s port %d: %s", srv.listen, srv.port, exc.strerror or exc
                )
                return 1
            self.notifier.ready(self.status_text())
            self._ready.set()
            self._core.spawn("status", self._update_status())
            self._core.spawn("watchdog", self._pet_watchdog())
            self._core.spawn("reload", self._reload_worker())
            await self._stop.wait()
            return 1 if self._core.failure else 0
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _shutdown(self) -> None:
        # 1. Tell systemd we are on our way out, so it doesn't read the pause as a hang.
        self.notifier.stopping()
        # 2. No more STATUS, pets or reloads: a reload cut short does not matter any more.
        runner_tasks = set(self._runner_tasks.values())
        await self._core.cancel([t for t in self._core.tasks if t not in runner_tasks])
        # 3. Stop accepting, close every WebSocket with 1001 and wait for the handlers.
        if self.server is not None:
            # The server bounds the closing handshakes itself, then drops who is left.
            await self.server.close()
        # 4. Stop the runners, then the capture threads (each returns within its bounded
        # read wait).
        await self._core.cancel(list(self._runner_tasks.values()))
        self._runner_tasks.clear()
        await asyncio.gather(*(r.close() for r in self.runners.values()))
        self.notifier.close()
        log.info("stopped")

    def _add_runner(self, name: str) -> None:
        cam = self.config.camera(name)
        assert cam is not None
        runner = CameraRunner(self.source_factory(cam), asyncio.get_running_loop())
        runner.controls.restore(self._saved_controls.get(name, {}))
        self.runners[name] = runner
        self._runner_tasks[name] = self._core.spawn(f"camera {name} runner", runner.run())

    async def _remove_runner(self, name: str) -> None:
        runner = self.runners.pop(name)
        await self._core.cancel([self._runner_tasks.pop(name)])
        await runner.close()

    # -- health ----------------------------------------------------------------------------

    def health_problem(self) -> str:
        """Empty if healthy, else why the watchdog must not be petted."""
        for runner in self.runners.values():
            if not runner.source.is_healthy(self.capture_stall_timeout):
                stalled = time.monotonic() - runner.source.progress_at
                return f"camera {runner.name}: capture thread stalled for {stalled:.0f} s"
        return ""

    async def _pet_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            await asyncio.Event().wait()  # no watchdog: just wait to be cancelled
            return
        # Petting from a loop task proves the event loop turns; the check proves capture does.
        was_healthy = True
        while True:
            problem = self.health_problem()
            if problem and was_healthy:
                log.error("unhealthy, not petting the watchdog: %s", problem)
            elif not problem:
                if not was_healthy:
                    log.warning("healthy again, petting the watchdog")
                self.notifier.watchdog()
            was_healthy = not problem
            await asyncio.sleep(interval)

    def status_text(self) -> str:
        parts = []
        for name, runner in self.runners.items():
            hub = runner.hub
            text = f"{name}: {hub.state.value}"
            if hub.state is CameraState.LIVE:
                text += f" {hub.measured_fps:.1f} fps"
            elif hub.reason:
                text += f" ({hub.reason})"
            parts.append(f"{text}, {hub.viewers} viewers")
        if self.server is None:
            return "0 clients; " + "; ".join(parts)
        clients = len(self.server.clients)
        return "; ".join([f"{clients} clients", *parts, self.server.stats.status_text()])

    async def _update_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            self.notifier.status(self.status_text())

    # -- reload ----------------------------------------------------------------------------

    async def _reload_worker(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file and apply it without dropping viewers; False if refused.

        One reload at a time: two overlapping ones could both replace the same camera's
        source and leave a capture thread nobody stops.
        """
        async with self._reload_lock:
            result = await self._reload()
            self.reloads_done += 1
            return result

    async def _reload(self) -> bool:
        if self.config_path is None:
            log.warning("reload requested, but there is no config file to re-read")
            return False
        self.notifier.reloading()
        try:
            # Off the event loop: parsing is bounded (config.py), but even a bounded
            # document must not stall streaming while it is read and validated.
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.reloaded(self.status_text())
            return False
        old = self.config
        if (new.server.listen, new.server.port) != (old.server.listen, old.server.port):
            log.warning("server.listen/server.port changes take effect at the next restart")
            new = _replace_server_address(new, old)
        if new.log_level != old.log_level and self.on_log_level is not None:
            self.on_log_level(new.log_level)
        self.config = new
        for name in [n for n in self.runners if new.camera(n) is None]:
            if self.server is not None:
                self.server.disconnect_camera(name)
            await self._remove_runner(name)
            log.info("camera %s removed", name)
        for cam in new.cameras:
            existing = self.runners.get(cam.name)
            if existing is None:
                self._add_runner(cam.name)
                log.info("camera %s added", cam.name)
            elif existing.source.config != cam:
                await existing.replace_source(self.source_factory(cam))
                log.info("camera %s reconfigured", cam.name)
        if self.server is not None:
            self.server.set_config(new)
            if new.server.web_root != old.server.web_root:
                self.server.web_root = new.server.web_root or default_web_root()
        log.info("configuration reloaded from %s", self.config_path)
        self.notifier.reloaded(self.status_text())
        return True


def _replace_server_address(new: Config, old: Config) -> Config:
    import dataclasses  # noqa: PLC0415

    server = dataclasses.replace(new.server, listen=old.server.listen, port=old.server.port)
    return dataclasses.replace(new, server=server)


async def run_daemon(
    config: Config, config_path: Path | None, on_log_level: Callable[[str], None]
) -> int:
    daemon = Daemon(config, config_path, on_log_level)
    with contextlib.suppress(asyncio.CancelledError):
        return await daemon.run()
    return 0
