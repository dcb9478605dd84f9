"""Gate: who is asking, and may they have this route? The access check of every request.

Called by the server after the Host check and before routing, for every route (page,
WebSocket handshake, snapshot, MJPEG, state, metrics, the account API). It answers with a
`Principal` (go ahead, and this is who it is) or a `Refusal` (status, headers, body) that
the server sends as it is, before any frame.

- Client address: the peer's, or the last address of `X-Forwarded-For` that is not a
  trusted proxy, but only when the peer is one of `server.trusted_proxies`. That address,
  the cookies and the Basic credentials are read from the request by credentials.py.
- Safe default: while the users file holds nobody, loopback and local networks (RFC 1918,
  IPv6 ULA and link-local; not CGNAT 100.64/10, which is the provider's network) are served
  and everyone else gets 403 with a page that says how to add a user.
- With users: a session cookie (from the login page), HTTP Basic (tools), or a share cookie
  (a share link: one camera, nothing else). Password checks go through the LoginGuard and
  run off the event loop; a Basic result is cached for a while, so a dashboard polling
  /snapshot.jpg every second does not cost a scrypt per request.

No sockets here (tests/test_auth.py drives it through the real server). Event-loop thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyimagestreamd.accounts import AccountError, Accounts, verify_password
from pyimagestreamd.config import Config
from pyimagestreamd.credentials import (
    CLIENT_HEADER,
    SESSION_COOKIE,
    SHARE_COOKIE,
    client_address,
    is_local,
    parse_basic,
    parse_cookies,
)
from pyimagestreamd.loginguard import LoginGuard
from pyimagestreamd.ratelimit import RateLimitedLog
from pyimagestreamd.sessions import Sessions
from pyimagestreamd.shares import Shares

log = logging.getLogger(__name__)

BASIC_CACHE_TTL = 300.0
BASIC_CACHE_SIZE = 256
# Password checks at once (each takes 32 MiB and ~0.1 s), and how many may wait for one.
CHECKS_AT_ONCE = 2
CHECKS_WAITING = 16

# Routes, as the server names them to the gate.
PUBLIC = "public"  # login page and the client's script/style files: nothing secret
PAGE = "page"  # the viewer page: a browser without a session is sent to the login page
WATCH = "watch"  # WebSocket, snapshot, MJPEG of one camera
API = "api"  # state, metrics, the session API
ADMIN = "admin"  # share links list/revoke

NO_USERS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyimagestream: local network only</title>
</head><body><main><h1>Local network only</h1>
<p>This camera has no user accounts yet, so it is served only to this machine and its local
network. To watch it from elsewhere, add a user on the camera's machine:</p>
<pre>sudo pyimagestreamd user add NAME</pre>
<p>and log in with that name and password.</p></main></body></html>
"""


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "local" (safe default), "user", "share", "anonymous" (public routes)
    name: str  # user name, share id, or the local address
    role: str  # "viewer", "admin" (local clients without accounts are admins of nothing)
    session: str | None = None  # session key, when logged in through the page
    camera: str | None = None  # the only camera a share link may watch

    def may_watch(self, camera: str) -> bool:
        return self.camera is None or self.camera == camera

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    html: str | None = None


class Gate:
    """The access policy of one daemon: accounts, sessions, share links, the login guard."""

    def __init__(
        self,
        accounts: Accounts,
        sessions: Sessions,
        shares: Shares,
        guard: LoginGuard,
        *,
        trusted_proxies: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.shares = shares
        self.guard = guard
        self.trusted_proxies = trusted_proxies
        self.clock = clock
        self._cache_key = secrets.token_bytes(32)
        # HMAC of "name:password" -> (name, password hash it matched, valid until)
        self._basic_cache: dict[bytes, tuple[str, str, float]] = {}
        self._checks = asyncio.Semaphore(CHECKS_AT_ONCE)
        self._waiting = 0
        self._log = RateLimitedLog(log)

    @classmethod
    def from_config(cls, config: Config) -> Gate:
        auth = config.auth
        sessions_path = auth.state_path("sessions.json")
        return cls(
            Accounts(auth.users_file),
            Sessions(sessions_path, auth.session_lifetime),
            Shares(auth.state_path("shares.json")),
            LoginGuard(lock_after=auth.lock_after, lock_duration=auth.lock_duration),
            trusted_proxies=config.server.trusted_proxies,
        )

    def has_users(self) -> bool:
        try:
            return self.accounts.has_users()
        except AccountError as exc:
            # A broken users file must not open the doors: nobody gets in until it is fixed.
            self._log.error("users-file", "%s", exc)
            raise

    async def check(
        self, peer: str, headers: Mapping[str, str], route: str, camera: str | None = None
    ) -> Principal | Refusal:
        """Decide one request; `headers` maps lower-case header names to values (as h11)."""
        address = client_address(peer, headers.get("x-forwarded-for"), self.trusted_proxies)
        try:
            has_users = self.has_users()
        except AccountError:
            return Refusal(503, "the users file is unusable: see the daemon's log")
        if not has_users:
            if not is_local(address):
                self._log.warning(
                    "not-local", "refused %s: not a local address and no users exist", address
                )
                return Refusal(403, "local network only: add a user", html=NO_USERS_PAGE)
            if route == ADMIN:
                # Watching is open to the local network; changing things needs an admin.
                return Refusal(
                    403, "admins only: add one with 'pyimagestreamd user add NAME --role admin'"
                )
            return Principal("local", address, "viewer")
        # Public routes are answered to anyone, but /api/session wants to know who asks:
        # cookies only there, since /api/login checks the Basic credentials itself.
        principal = await self._identify(address, headers, basic=route != PUBLIC)
        if route == PUBLIC:
            return principal if isinstance(principal, Principal) else _anonymous(address)
        if isinstance(principal, Refusal):
            return principal
        if principal is None:
            if route == PAGE:
                # Relative: the page may sit behind a proxy's path prefix.
                return Refusal(303, "log in", {"Location": "login.html"})
            extra = {} if CLIENT_HEADER.lower() in headers else {"WWW-Authenticate": _challenge()}
            return Refusal(401, "log in first (or use HTTP Basic)", extra)
        if principal.kind == "share":
            if route == ADMIN or (route == WATCH and not principal.may_watch(camera or "")):
                return Refusal(403, "this link opens one camera only")
        elif route == ADMIN and not principal.is_admin:
            return Refusal(403, "admins only")
        return principal

    async def _identify(
        self, address: str, headers: Mapping[str, str], *, basic: bool
    ) -> Principal | Refusal | None:
        credentials = parse_basic(headers.get("authorization")) if basic else None
        if credentials is not None:
            return await self.login(address, *credentials)
        cookies = parse_cookies(headers.get("cookie"))
        token = cookies.get(SESSION_COOKIE)
        if token:
            session = self.sessions.lookup(token)
            if session is not None:
                user = self.accounts.get(session.user)
                if user is not None:
                    return Principal("user", user.name, user.role, session=session.key)
        token = cookies.get(SHARE_COOKIE)
        if token:
            share = self.shares.lookup(token)
            if share is not None:
                return Principal("share", share.id, "share", camera=share.camera)
        return None

    async def login(self, address: str, name: str, password: str) -> Principal | Refusal:
        """Check a name and password (Basic or the login page), through the guard."""
        wait = self.guard.retry_after(address, name)
        if wait > 0:
            self.guard.refused(address)
            return Refusal(
                429, f"too many failed logins: try again in {wait:.0f} s",
                {"Retry-After": str(max(1, round(wait)))},
            )  # fmt: skip
        user = self.accounts.get(name)
        key = hmac.new(self._cache_key, f"{name}:{password}".encode(), hashlib.sha256).digest()
        cached = self._basic_cache.get(key)
        now = self.clock()
        if (
            cached
            and user is not None
            and cached[2] > now
            and cached[1] == user.password_hash  # a new password ends the cached entry
        ):
            return Principal("user", user.name, user.role)
        if self._waiting >= CHECKS_WAITING:
            return Refusal(503, "too many logins at once: try again", {"Retry-After": "1"})
        self._waiting += 1
        try:
            async with self._checks:
                # Unknown names cost the same time as known ones: no user enumeration.
                stored = user.password_hash if user is not None else _DUMMY_HASH
                ok = await asyncio.to_thread(verify_password, password, stored)
        finally:
            self._waiting -= 1
        if not ok or user is None:
            self.guard.failed(address, name)
            return Refusal(401, "wrong name or password", {"WWW-Authenticate": _challenge()})
        self.guard.succeeded(address, name)
        if len(self._basic_cache) >= BASIC_CACHE_SIZE:
            self._basic_cache.clear()
        self._basic_cache[key] = (user.name, user.password_hash, now + BASIC_CACHE_TTL)
        return Principal("user", user.name, user.role)

    def is_valid(self, principal: Principal) -> bool:
        """Still allowed (for open streams): session not ended, link not revoked or expired."""
        if principal.kind == "share":
            return self.shares.is_live(principal.name)
        if principal.kind == "user":
            try:
                user = self.accounts.get(principal.name)
            except AccountError:
                return False
            if user is None:
                return False
            if principal.session is not None:
                return self.sessions.has(principal.session)
        return True


def _anonymous(address: str) -> Principal:
    return Principal("anonymous", address, "none")


def _challenge() -> str:
    return 'Basic realm="pyimagestream", charset="UTF-8"'


# Verified against when the name is unknown, so that answering takes as long as for a user.
_DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43
