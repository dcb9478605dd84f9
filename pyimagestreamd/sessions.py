"""Login sessions: random tokens that a browser keeps in a cookie, kept server-side.

After a password login the server hands out a token (`create`) and finds the user again from
it on every request (`lookup`). Only a SHA-256 of each token is stored, in
`sessions.json` in the state directory, so sessions survive a daemon restart and a copy of the
file lets nobody in. Sessions expire `lifetime` seconds after login; logout (`revoke`) ends one
at once. Their number is bounded: the oldest is dropped past `MAX_SESSIONS`.

Wall-clock time (injectable) because expiry must hold across restarts. Event-loop thread only.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyimagestreamd.statefile import StateError, read_json, write_json

log = logging.getLogger(__name__)

MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    key: str  # SHA-256 of the token: what is stored, and what connections are tagged with
    user: str
    created_at: float  # Unix seconds
    expires_at: float


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Sessions:
    """The sessions of one daemon; `path` None keeps them in memory only."""

    def __init__(
        self, path: Path | None, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._persist_failed = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = read_json(path)
        except StateError as exc:
            log.warning("%s; starting with no sessions", exc)
            return
        now = self.clock()
        for key, entry in doc.get("sessions", {}).items():
            try:
                session = Session(
                    str(key),
                    str(entry["user"]),
                    float(entry["created_at"]),
                    float(entry["expires_at"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            if session.expires_at > now:
                self._sessions[session.key] = session

    def _save(self) -> None:
        if self.path is None:
            return
        doc = {
            "sessions": {
                s.key: {"user": s.user, "created_at": s.created_at, "expires_at": s.expires_at}
                for s in self._sessions.values()
            }
        }
        try:
            write_json(self.path, doc)
            self._persist_failed = False
        except StateError as exc:
            # Logins keep working, they just do not survive a restart: say so once.
            if not self._persist_failed:
                log.warning("%s; sessions are kept in memory only", exc)
            self._persist_failed = True

    def create(self, user: str) -> str:
        """A new session for `user`; returns the token (shown to the client only)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.created_at)
            del self._sessions[oldest.key]
        session = Session(token_key(token), user, now, now + self.lifetime)
        self._sessions[session.key] = session
        self._save()
        return token

    def lookup(self, token: str) -> Session | None:
        session = self._sessions.get(token_key(token))
        if session is None:
            return None
        if session.expires_at <= self.clock():
            self._sessions.pop(session.key, None)
            self._save()
            return None
        return session

    def has(self, key: str) -> bool:
        """The session with this key (not token) is still valid: for open streams."""
        session = self._sessions.get(key)
        return session is not None and session.expires_at > self.clock()

    def revoke(self, token: str) -> Session | None:
        session = self._sessions.pop(token_key(token), None)
        if session is not None:
            self._save()
        return session

    def revoke_user(self, user: str) -> list[Session]:
        """End every session of `user` (deleted account, new password)."""
        gone = [s for s in self._sessions.values() if s.user == user]
        for session in gone:
            del self._sessions[session.key]
        if gone:
            self._save()
        return gone

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)
