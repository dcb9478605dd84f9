"""The account routes: log in and out, who am I, share links for admins, opening a link.

Part of the HTTP side of the server, after the gate: the server names each path's route
kind with `classify` (so the gate knows what is asked), then hands the paths below to
`AccountAPI.handle`, which answers with a `Reply` the server sends as it is.

  POST /api/login         Authorization: Basic (from web/login.js) -> session cookie
  GET  /api/session       {"kind", "name", "role"} of the caller, or 401
  POST /api/logout        ends the session; its WebSockets are closed at once
  GET  /api/shares        admin: the live share links (no tokens)
  POST /api/shares/revoke?id=ID   admin: revoke one; its open streams are closed at once
  GET  /share/TOKEN       sets the share cookie and opens the page on that link's camera

The ones that change something are POSTs (a GET gets 405, routes.py), and pass the checks
of every POST first (posts.py: our own Origin, a bounded body). They also require the
`X-PyImageStream` header that only our own page sends (a cross-site page cannot without a
CORS preflight, which is never granted), on top of the SameSite=Strict cookies.
Event-loop thread.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote

from pyimagestreamd.credentials import (
    CLIENT_HEADER,
    SESSION_COOKIE,
    SHARE_COOKIE,
    client_address,
    parse_basic,
    parse_cookies,
)
from pyimagestreamd.gate import ADMIN, API, PAGE, PUBLIC, WATCH, Gate, Principal, Refusal

ACCOUNT_PATHS = ("/api/login", "/api/session", "/api/logout", "/api/shares", "/api/shares/revoke")
# The ones that change something: POST only.
CHANGE_PATHS = ("/api/login", "/api/logout", "/api/shares/revoke")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def classify(kind: str, path: str, camera: str) -> tuple[str, str | None]:
    """The gate's route kind for a route of urls.py, and the camera it watches."""
    if kind in ("websocket", "snapshot", "stream"):
        return WATCH, camera
    if kind in ("state", "metrics"):
        return API, None
    if path in ("/", "/index.html"):
        return PAGE, None
    if path.startswith("/api/shares") or kind == "controls":
        return ADMIN, None
    return PUBLIC, None


def _json(status: int, doc: object, **headers: str) -> Reply:
    return Reply(status, (json.dumps(doc) + "\n").encode(), headers=dict(headers))


def _cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flags}"


class AccountAPI:
    def __init__(
        self,
        gate: Gate,
        close_streams: Callable[[], None],
        secure: Callable[[], bool] = lambda: False,
    ) -> None:
        self.gate = gate
        # Re-check every open stream now (after a logout or a revocation).
        self.close_streams = close_streams
        self.secure = secure

    async def handle(
        self,
        peer: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        principal: Principal,
    ) -> Reply:
        if path.startswith("/share/"):
            return self._open_share(unquote(path[len("/share/") :]))
        if path == "/api/session":
            return self._whoami(principal)
        if CLIENT_HEADER.lower() not in headers:
            return _json(403, {"error": f"the {CLIENT_HEADER} header is required"})
        if path == "/api/login":
            return await self._login(peer, headers)
        if path == "/api/logout":
            token = parse_cookies(headers.get("cookie")).get(SESSION_COOKIE)
            if token:
                self.gate.sessions.revoke(token)
                self.close_streams()
            return _json(
                200,
                {"ok": True},
                **{"Set-Cookie": _cookie(SESSION_COOKIE, "", 0, self.secure())},
            )
        if path == "/api/shares":
            return _json(200, {"shares": [s.public() for s in self.gate.shares.list()]})
        if path == "/api/shares/revoke":
            share_id = parse_qs(query).get("id", [""])[0]
            if not self.gate.shares.revoke(share_id):
                return _json(404, {"error": f"no share link {share_id[:16]!r}"})
            self.close_streams()
            return _json(200, {"ok": True})
        return _json(404, {"error": "not found"})

    def _whoami(self, principal: Principal) -> Reply:
        if principal.kind == "anonymous":
            return _json(401, {"error": "not logged in"})
        return _json(
            200,
            {
                "kind": principal.kind,
                "name": principal.name if principal.kind != "share" else "",
                "role": principal.role,
                "camera": principal.camera,
                "accounts": self.gate.has_users(),
            },
        )

    async def _login(self, peer: str, headers: Mapping[str, str]) -> Reply:
        basic = parse_basic(headers.get("authorization"))
        if basic is None:
            return _json(400, {"error": "send the name and password as HTTP Basic"})
        address = client_address(peer, headers.get("x-forwarded-for"), self.gate.trusted_proxies)
        result = await self.gate.login(address, *basic)
        if isinstance(result, Refusal):
            # No WWW-Authenticate: the page shows the message, the browser no pop-up.
            extra = {k: v for k, v in result.headers.items() if k != "WWW-Authenticate"}
            return _json(result.status, {"error": result.text}, **extra)
        token = self.gate.sessions.create(result.name)
        max_age = int(self.gate.sessions.lifetime)
        return _json(
            200,
            {"name": result.name, "role": result.role},
            **{"Set-Cookie": _cookie(SESSION_COOKIE, token, max_age, self.secure())},
        )

    def _open_share(self, token: str) -> Reply:
        share = self.gate.shares.lookup(token)
        if share is None:
            return Reply(
                404,
                _page("Link not valid", "This link has expired or was revoked.").encode(),
                "text/html; charset=utf-8",
            )
        max_age = max(1, int(share.expires_at - self.gate.shares.clock()))
        # Relative, so that it works behind a proxy's path prefix (/cam1/share/TOKEN).
        target = "../#camera=" + quote(share.camera)
        # A page with a refresh rather than a redirect: a SameSite=Strict cookie is not
        # sent on a redirect that a link from another site started, but it is on a
        # navigation that our own page starts. No script, so the CSP holds.
        body = _page(
            "Opening the camera",
            f'<a href="{html.escape(target)}">Open {html.escape(share.camera)}</a>',
            refresh=target,
        )
        return Reply(
            200,
            body.encode(),
            "text/html; charset=utf-8",
            {"Set-Cookie": _cookie(SHARE_COOKIE, quote(token), max_age, self.secure())},
        )


# The head of web/login.html: the viewer's look, manifest and theme colour, so a share link
# opened on a phone looks like the rest and can be added to the home screen from there too.
# Relative to /share/TOKEN, so it works behind a proxy's path prefix.
_HEAD = (
    '<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">'
    '<meta name="color-scheme" content="dark"><meta name="theme-color" content="#111417">'
    '<link rel="manifest" href="../manifest.webmanifest">'
    '<link rel="icon" href="../icon.svg" type="image/svg+xml">'
    '<link rel="apple-touch-icon" href="../icon-192.png">'
    '<link rel="stylesheet" href="../style.css">'
)


def _page(title: str, body: str, refresh: str | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="0; url={html.escape(refresh)}">' if refresh else ""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{meta}{_HEAD}'
        f"<title>{html.escape(title)} — pyimagestream</title></head>"
        '<body class="page"><header class="bar"><h1>pyimagestream</h1></header>'
        f'<main class="login"><section class="card"><h2>{html.escape(title)}</h2>'
        f"<p>{body}</p></section></main></body></html>\n"
    )
