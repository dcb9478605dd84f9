"""The keys of a network MJPEG camera (`source: http(s)://...`): validated into NetworkOptions.

Called by config.py through the source registry (sources.py) while a configuration is read,
before any source exists: the URL must be http(s) with a host, and the credentials come
either in it or as `username`/`password`, never both. What is kept is the URL without its
user-info and the options (the password out of repr and redacted in --dump-config); the
source (netcam.py) connects with them. Pure: no I/O, no sockets.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pyimagestreamd.redact import REDACTED
from pyimagestreamd.schema import Checker, Path, SourceOptions

KEYS = ("username", "password", "frame_timeout", "connect_timeout")


@dataclass(frozen=True, slots=True)
class NetworkOptions(SourceOptions):
    username: str | None = None
    # Not in repr: a config printed in a traceback or a debug line must not show it.
    password: str | None = field(default=None, repr=False)
    frame_timeout: float = 5.0
    connect_timeout: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": None if self.password is None else REDACTED,
            "frame_timeout": self.frame_timeout,
            "connect_timeout": self.connect_timeout,
        }


def claims(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def parse_options(
    check: Checker, path: Path, source: str, cam: dict[str, Any]
) -> tuple[str, NetworkOptions]:
    spath = (*path, "source")
    # Shown without its password if it is refused.
    shown = _without_userinfo(source)
    try:
        url = urllib.parse.urlsplit(source)
        port = url.port
    except ValueError as exc:
        raise check.fail(spath, shown, f"an http:// or https:// URL ({exc})") from None
    if not url.hostname:
        raise check.fail(spath, shown, "an http:// or https:// URL with a host")
    del port
    d = NetworkOptions()
    username = cam.get("username", d.username)
    password = cam.get("password", d.password)
    if username is not None:
        # Basic authentication joins user and password with ":": a user name cannot hold one.
        check.string(
            (*path, "username"), username, "a user name without ':'", lambda s: ":" not in s
        )
    if password is not None:
        check.string((*path, "password"), password, "a string", lambda s: True)
    if url.username is not None:
        if username is not None or password is not None:
            raise check.fail(
                (*path, "username" if username is not None else "password"),
                "..." if password is not None and username is None else username,
                "credentials in one place: in the URL or in username/password, not both",
            )
        username = urllib.parse.unquote(url.username)
        password = urllib.parse.unquote(url.password or "")
    if password is not None and username is None:
        raise check.fail((*path, "password"), REDACTED, "a username with it")
    return _without_userinfo(source), NetworkOptions(
        username=username,
        password=password,
        frame_timeout=check.number(
            (*path, "frame_timeout"), cam.get("frame_timeout", d.frame_timeout), 0.5, 600
        ),
        connect_timeout=check.number(
            (*path, "connect_timeout"), cam.get("connect_timeout", d.connect_timeout), 0.1, 60
        ),
    )


def _without_userinfo(source: str) -> str:
    try:
        url = urllib.parse.urlsplit(source)
    except ValueError:
        return source.rsplit("@", maxsplit=1)[-1]
    netloc = url.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(url._replace(netloc=netloc))
