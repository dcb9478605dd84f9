"""Share links: an unguessable token that lets whoever holds it watch one camera for a while.

`pyimagestreamd share CAMERA --expires 7d` (or an admin in the page) creates one; the URL
carries the token, the server keeps only its SHA-256 with the camera, the expiry, a label and
the creation time, in `shares.json` in the state directory. Both the command line and the
daemon write the file, so every read first checks whether it changed on disk: a link revoked
from the command line is refused on the daemon's next lookup, and `watch` lets the server
close the streams that a revoked or expired link still holds open.

Wall-clock time (injectable), since expiry must hold across restarts. No sockets.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyimagestreamd.statefile import StateError, read_json, signature, write_json

MAX_SHARES = 1000
MAX_LABEL = 200
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ShareError(Exception):
    """A share operation is unusable; the message is one line."""


def parse_duration(text: str) -> float:
    """'90s', '15m', '12h', '7d', '2w' or plain seconds -> seconds."""
    match = DURATION.fullmatch(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise ShareError(f"invalid duration {text!r}: expected e.g. 90s, 15m, 12h, 7d or 2w")
    return float(match.group(1)) * UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    camera: str
    created_at: float  # Unix seconds
    expires_at: float
    label: str
    token_hash: str

    def public(self) -> dict[str, object]:
        """What an admin may see (no token, no hash)."""
        return {
            "id": self.id,
            "camera": self.camera,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "label": self.label,
        }


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Shares:
    """The share links of one state directory."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._signature: tuple[int, int, int, int] | None = None
        self._shares: dict[str, Share] = {}

    def _refresh(self) -> None:
        sig = signature(self.path)
        if sig == self._signature:
            return
        doc = read_json(self.path)
        shares = {}
        for entry in doc.get("shares", []):
            try:
                share = Share(
                    id=str(entry["id"]),
                    camera=str(entry["camera"]),
                    created_at=float(entry["created_at"]),
                    expires_at=float(entry["expires_at"]),
                    label=str(entry.get("label", "")),
                    token_hash=str(entry["token_hash"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            shares[share.id] = share
        self._shares, self._signature = shares, sig

    def _write(self) -> None:
        now = self.clock()
        # Expired links are dropped when the file is next written: nothing to revoke there.
        live = [s for s in self._shares.values() if s.expires_at > now]
        doc = {
            "shares": [
                {**s.public(), "token_hash": s.token_hash}
                for s in sorted(live, key=lambda s: s.created_at)
            ]
        }
        write_json(self.path, doc)
        self._shares = {s.id: s for s in live}
        self._signature = signature(self.path)

    def create(self, camera: str, lifetime: float, label: str = "") -> tuple[Share, str]:
        """A new link to `camera` valid for `lifetime` seconds; returns it and its token."""
        if len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
            raise ShareError(f"invalid label: at most {MAX_LABEL} printable characters")
        self._refresh()
        live = [s for s in self._shares.values() if s.expires_at > self.clock()]
        if len(live) >= MAX_SHARES:
            raise ShareError(f"{MAX_SHARES} share links exist: revoke some first")
        token = secrets.token_urlsafe(24)
        now = self.clock()
        share_id = secrets.token_hex(4)
        while share_id in self._shares:
            share_id = secrets.token_hex(4)
        share = Share(share_id, camera, now, now + lifetime, label, _token_hash(token))
        self._shares[share.id] = share
        self._write()
        return share, token

    def list(self) -> list[Share]:
        """The links not yet expired, oldest first."""
        self._refresh()
        now = self.clock()
        live = [s for s in self._shares.values() if s.expires_at > now]
        return sorted(live, key=lambda s: s.created_at)

    def revoke(self, share_id: str) -> bool:
        self._refresh()
        if share_id not in self._shares:
            return False
        del self._shares[share_id]
        self._write()
        return True

    def lookup(self, token: str) -> Share | None:
        """The live link that `token` opens, or None (unknown, revoked or expired)."""
        try:
            self._refresh()
        except StateError:
            return None
        wanted = _token_hash(token)
        now = self.clock()
        for share in self._shares.values():
            if secrets.compare_digest(share.token_hash, wanted) and share.expires_at > now:
                return share
        return None

    def is_live(self, share_id: str) -> bool:
        """Still valid (not revoked, not expired): checked for streams the link holds open."""
        try:
            self._refresh()
        except StateError:
            return False
        share = self._shares.get(share_id)
        return share is not None and share.expires_at > self.clock()
