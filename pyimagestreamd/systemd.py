"""systemd integration: READY, STATUS, WATCHDOG and STOPPING through sdnotify.

The daemon (daemon.py) reports here; nothing here decides anything. Outside systemd
(no NOTIFY_SOCKET) every call is a no-op, so the same code runs from a terminal.

sdnotify encodes messages as latin-1 and silently drops one it cannot encode; systemd reads
the datagram as UTF-8. So text is handed over as its UTF-8 bytes spelled as latin-1
characters: sdnotify's encoding then produces exactly those bytes, and a camera named
"aquarium-küche" shows up intact in `systemctl status`.
"""

from __future__ import annotations

import logging
import os

import sdnotify

log = logging.getLogger(__name__)


def _wire(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


class Notifier:
    """Talks to systemd's notification socket, if there is one."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier() if self.enabled else None
        self._last_status = ""

    def _send(self, text: str) -> None:
        if self._sd is not None:
            self._sd.notify(_wire(text))

    def ready(self, status: str) -> None:
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """Update the STATUS= line, only when it changed (it goes over a socket each time)."""
        if status != self._last_status:
            self._last_status = status
            self._send(f"STATUS={status}")

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def reloaded(self, status: str) -> None:
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def close(self) -> None:
        if self._sd is not None and self._sd.socket is not None:
            self._sd.socket.close()
        self._sd = None

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pets (half the period systemd set), or None if off."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not self.enabled or not usec:
            return None
        if pid and pid != str(os.getpid()):
            return None  # the watchdog is meant for another process (e.g. a wrapper)
        try:
            period = int(usec) / 1_000_000
        except ValueError:
            log.warning("ignoring invalid WATCHDOG_USEC=%r", usec)
            return None
        return period / 2 if period > 0 else None
