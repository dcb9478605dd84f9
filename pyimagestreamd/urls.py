"""URLs: what a request target asks for, before any check or I/O.

The first step of routing (routes.py): a request target (path and query, as sent) becomes a
`Route`, its kind and camera, under our own paths and the spellings other tools use:

    /snapshot.jpg, /snapshot/<camera>.jpg, /snapshot, /?action=snapshot     one JPEG
    /stream.mjpg, /stream/<camera>.mjpg, /stream, /?action=stream           MJPEG push
    /websocket, /websocket/<camera>                                         pull protocols
    /api/camera/<camera>/controls[/reset|/save]          camera settings (controlapi.py)
    /api/state, /metrics                                 state and Prometheus metrics
    anything else                                        the browser client's files

`?camera=NAME` picks the camera on any of them (the first camera by default), `?fps=N`
caps a stream's rate. Pure functions: the access check (gate.py) and the handlers take the
route from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

# The settings API (controlapi.py) lives under this prefix.
SETTINGS_PREFIX = "/api/camera/"


@dataclass(frozen=True, slots=True)
class Route:
    """What a request asks for: kind ("static", "state", "metrics", "snapshot", "stream",
    "websocket"), the camera name for camera routes, and the parsed query."""

    kind: str
    path: str
    camera: str = ""
    query: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


def match(target: str) -> Route:
    """The route of a request target (path and query, as sent)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    query = tuple((k, v[0]) for k, v in parse_qs(parts.query, max_num_fields=16).items())
    camera = next((v for k, v in query if k == "camera"), "")
    action = next((v for k, v in query if k == "action"), None)
    if path == "/websocket" or path.startswith("/websocket/"):
        return Route("websocket", path, unquote(path[len("/websocket/") :]) or camera, query)
    if path in ("/snapshot.jpg", "/snapshot") or (path == "/" and action == "snapshot"):
        return Route("snapshot", path, camera, query)
    if path.startswith("/snapshot/") and path.endswith(".jpg"):
        return Route("snapshot", path, unquote(path[len("/snapshot/") : -len(".jpg")]), query)
    if path in ("/stream.mjpg", "/stream") or (path == "/" and action == "stream"):
        return Route("stream", path, camera, query)
    if path.startswith("/stream/") and path.endswith(".mjpg"):
        return Route("stream", path, unquote(path[len("/stream/") : -len(".mjpg")]), query)
    if path == "/api/state":
        return Route("state", path, query=query)
    if (settings := parse_path(path)) is not None:
        return Route("controls", path, unquote(settings[0]), query)
    if path == "/metrics":
        return Route("metrics", path, query=query)
    return Route("static", path, query=query)


def parse_path(path: str) -> tuple[str, str] | None:
    """(camera, action) of a settings path, or None if it is not one."""
    if not path.startswith(SETTINGS_PREFIX):
        return None
    camera, sep, rest = path[len(SETTINGS_PREFIX) :].partition("/controls")
    if not sep or not camera or rest not in ("", "/reset", "/save"):
        return None
    return camera, rest.lstrip("/")
