"""Configuration of access: the `auth` section, validated into `AuthConfig`.

Part of config.py's validation (the first step of the data flow): where the accounts file
is, where sessions, share links and saved camera settings live (the state directory), how
long sessions last and when failed logins lock an address. The security modules
(accounts.py, sessions.py, shares.py, loginguard.py) are built from it. No I/O.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagestreamd.schema import Checker

__all__ = ["AuthConfig", "default_state_directory", "parse_auth"]


@dataclass(frozen=True, slots=True)
class AuthConfig:
    users_file: Path = Path("/etc/pyimagestream/users")
    # Sessions, share links, saved camera settings; None: $STATE_DIRECTORY (systemd) or
    # /var/lib/pyimagestream.
    state_directory: Path | None = None
    session_lifetime: float = 30 * 86400.0
    # Share links printed by `pyimagestreamd share`, e.g. "https://cam.example.org".
    base_url: str | None = None
    # Failed logins from one address before it is locked, and for how long.
    lock_after: int = 10
    lock_duration: float = 900.0

    def state_path(self, name: str) -> Path:
        return (self.state_directory or default_state_directory()) / name

    def to_dict(self) -> dict[str, Any]:
        """This section in the shape of the YAML file (for --dump-config)."""
        auth = dataclasses.asdict(self)
        auth["users_file"] = str(self.users_file)
        auth["state_directory"] = str(self.state_directory) if self.state_directory else None
        return auth


def default_state_directory() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY (colon-separated if several).
    env = os.environ.get("STATE_DIRECTORY")
    return Path(env.split(":")[0]) if env else Path("/var/lib/pyimagestream")


def parse_auth(check: Checker, value: object, base_dir: Path | None) -> AuthConfig:
    """Validate the `auth` section; relative paths resolve against `base_dir`."""
    d = AuthConfig()
    auth = check.mapping(("auth",), value, tuple(f.name for f in dataclasses.fields(AuthConfig)))

    def path(key: str, default: Path | None) -> Path | None:
        raw = auth.get(key, default)
        if raw is None or isinstance(raw, Path):
            return raw
        check.string(("auth", key), raw, "a file path", lambda s: bool(s) and "\0" not in s)
        result = Path(raw)
        return base_dir / result if not result.is_absolute() and base_dir else result

    base_url = auth.get("base_url", d.base_url)
    if base_url is not None:
        check.string(
            ("auth", "base_url"),
            base_url,
            "a URL like 'https://cam.example.org' (scheme://host[:port][/path])",
            lambda s: re.fullmatch(r"https?://[^/\s]+(/\S*)?", s) is not None,
        )
        base_url = base_url.rstrip("/")
    users_file = path("users_file", d.users_file)
    assert users_file is not None
    return AuthConfig(
        users_file=users_file,
        state_directory=path("state_directory", d.state_directory),
        session_lifetime=check.number(
            ("auth", "session_lifetime"),
            auth.get("session_lifetime", d.session_lifetime),
            60,
            366 * 86400,
        ),
        base_url=base_url,
        lock_after=check.integer(
            ("auth", "lock_after"), auth.get("lock_after", d.lock_after), 1, 1000
        ),
        lock_duration=check.number(
            ("auth", "lock_duration"), auth.get("lock_duration", d.lock_duration), 0.1, 86400
        ),
    )
