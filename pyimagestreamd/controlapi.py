"""The settings API: an admin sets a camera's controls from the page (or with curl).

Reached from routes.py after the gate, which lets only admins through (a viewer or a share
link gets 403 there):

  GET  /api/camera/NAME/controls         {"camera", "state", "controls": {name: spec},
                                          "changed": the values set since start or reset}
  POST /api/camera/NAME/controls         JSON {name: value, ...}: set them now
  POST /api/camera/NAME/controls/reset   every control back to its configured or default value
  POST /api/camera/NAME/controls/save    keep the changed values across restarts

A change is checked against the control's type, range, step and menu (400 naming the
control), handed to the capture thread (controls.py), which alone touches the device, and
answered with the values read back from the driver (200; 409 with the driver's reasons if
it refused some). A camera that is asleep or offline keeps the values for its next open
(202, "applied": false). Saved values go to the state directory (controlfile.py), never
into the YAML.

Cross-site requests: besides the SameSite=Strict session cookie, a POST must come from our
own origin when it has an Origin header, and its body is bounded (posts.py); a change's
body must be `application/json`, which a cross-site form cannot send. Event-loop thread
only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import h11

from pyimagestreamd import controlfile
from pyimagestreamd.controls import Applied, BusyError, ControlError, validate
from pyimagestreamd.gate import Principal
from pyimagestreamd.posts import json_reply, read_post
from pyimagestreamd.statefile import StateError
from pyimagestreamd.static import Reply
from pyimagestreamd.urls import parse_path

if TYPE_CHECKING:
    from pyimagestreamd.httpd import Connection
    from pyimagestreamd.runner import CameraRunner
    from pyimagestreamd.server import StreamServer
    from pyimagestreamd.urls import Route

log = logging.getLogger(__name__)

ACTIONS = ("", "reset", "save")
# How long a request waits for the capture thread to apply it: one read (0.5 s) and the
# ioctls; past it the values stay kept and the answer says they are not applied yet.
APPLY_TIMEOUT = 5.0


def _error(status: int, text: str, *extra: tuple[str, str]) -> Reply:
    return json_reply(status, {"error": text}, *extra)


class ControlAPI:
    """Answers the settings routes of one server."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server

    async def serve(
        self,
        conn: Connection,
        h: h11.Connection,
        method: str,
        route: Route,
        headers: dict[str, str],
        *,
        principal: Principal,
    ) -> tuple[Reply, bool]:
        """The reply to one settings request, and whether the connection must close."""
        parsed = parse_path(route.path)
        if parsed is None:
            return _error(404, "not found"), False
        camera, action = parsed
        allowed = "GET, HEAD, POST" if action == "" else "POST"
        if method not in allowed.split(", "):
            self.server.refused(conn.peer, "method", f"{method[:16]} on a settings route")
            return _error(405, "method not allowed", ("Allow", allowed)), True
        body = b""
        if method == "POST":
            got = await read_post(self.server, conn, h, headers, "a settings change")
            if isinstance(got, Reply):
                return got, True
            body = got
        elif not await conn.finish_request(h):
            self.server.refused(conn.peer, "oversize", "a request body where none is taken")
            return _error(413, "request bodies are not accepted here"), True
        runner = self.server.runners.get(camera)
        if runner is None:
            return _error(404, f"unknown camera {camera[:64]!r}"), False
        if method != "POST":
            return self._show(runner), False
        if action == "save":
            return await self._save(runner, principal), False
        if action == "reset":
            return await self._change(runner, {}, principal, reset=True), False
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error(415, "send the controls as Content-Type: application/json"), False
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return _error(400, f"not valid JSON: {exc}"), False
        try:
            values = validate(runner.source.control_specs() or _unknown(camera), doc)
        except ControlError as exc:
            return _error(400, str(exc)), False
        return await self._change(runner, values, principal), False

    def _show(self, runner: CameraRunner) -> Reply:
        return json_reply(
            200,
            {
                "camera": runner.name,
                "state": runner.hub.state.value,
                "controls": runner.source.control_specs(),
                "changed": runner.controls.wanted(),
            },
        )

    async def _change(
        self, runner: CameraRunner, values: dict[str, int], who: Principal, reset: bool = False
    ) -> Reply:
        what = "reset" if reset else ", ".join(f"{k}={v}" for k, v in values.items())
        log.log(
            logging.INFO if reset else logging.DEBUG,
            "camera %s: controls %s (by %s)",
            runner.name,
            what,
            who.name,
        )
        result: Applied | None = None
        try:
            if runner.source.is_running:
                future = runner.controls.request(values, reset=reset)
                try:
                    result = await asyncio.wait_for(asyncio.wrap_future(future), APPLY_TIMEOUT)
                except TimeoutError:
                    result = None
            else:
                runner.controls.keep(values, reset=reset)
        except BusyError as exc:
            return _error(503, str(exc), ("Retry-After", "1"))
        doc: dict[str, Any] = {"camera": runner.name, "state": runner.hub.state.value}
        if result is None:
            doc.update(applied=False, kept=values, reset=reset)
            doc["note"] = "kept: applied when the camera starts"
            return json_reply(202, doc)
        doc.update(applied=True, values=result.values, errors=result.errors)
        doc["controls"] = runner.source.control_specs()
        if result.errors:
            doc["error"] = "; ".join(result.errors.values())
            return json_reply(409, doc)
        return json_reply(200, doc)

    async def _save(self, runner: CameraRunner, who: Principal) -> Reply:
        values = runner.controls.wanted()
        path = self.server.config.auth.state_path(controlfile.FILE_NAME)
        try:
            await asyncio.to_thread(controlfile.save, path, runner.name, values)
        except StateError as exc:
            log.error("camera %s: cannot save its controls: %s", runner.name, exc)
            return _error(500, f"cannot save: {exc}")
        log.info("camera %s: controls saved by %s: %s", runner.name, who.name, values or "none")
        return json_reply(200, {"camera": runner.name, "saved": values})


def _unknown(camera: str) -> dict[str, dict[str, Any]]:
    raise ControlError(
        f"camera {camera[:64]}: no controls known (a V4L2 camera lists its controls once "
        "it has started: open it in the viewer once)"
    )
