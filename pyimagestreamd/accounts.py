"""Accounts: the users file, password hashes, and who may do what.

The first gate of the request pipeline: a name and password (from the login page or HTTP
Basic) become a `User` with a role, or nothing. The users file is its own file, not part of
the YAML (which people post in forums), one line per user:

    name:role:scrypt$N$r$p$salt$hash

with `role` one of `viewer` (watch) and `admin` (also list and revoke share links). Passwords
are kept only as salted scrypt hashes whose cost parameters travel with them, so a later,
stronger default does not lock out old entries. The file must not be readable or writable by
"others": a file that is gets a one-line `AccountError` instead of being used.

`Accounts` re-reads the file when its inode, size or mtime changes, so `pyimagestreamd user
add` applies without a restart. Reading and writing are small synchronous file operations;
`verify_password` costs ~0.1 s of CPU by design, so the server calls it off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROLES = ("viewer", "admin")
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# scrypt cost: N=2**15, r=8, p=1 takes 32 MiB and ~0.13 s on one core of the build machine
# (~0.5-1 s on a Raspberry Pi 3-class CPU): slow enough to make guessing expensive, and a
# login happens once per session (HTTP Basic results are cached by the server).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
# Parameters read from a file are bounded, or a crafted line could ask for gigabytes.
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_MEM = 256 * 1024 * 1024
MAX_PASSWORD = 1024
MAX_USERS = 1000


class AccountError(Exception):
    """The users file or an account operation is unusable; the message is one line."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new salted scrypt hash of `password`, with its parameters, in the file's format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=MAX_SCRYPT_MEM, dklen=32
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt$N$r$p$salt$hash value")
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    if 128 * r * n * p > MAX_SCRYPT_MEM:
        raise ValueError("scrypt parameters need too much memory")
    return n, r, p, _unb64(parts[4]), _unb64(parts[5])


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the stored hash; compared in constant time."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        n, r, p, salt, expected = _parse_hash(encoded)
    except (ValueError, binascii.Error):
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=MAX_SCRYPT_MEM,
        dklen=len(expected),
    )
    return hmac.compare_digest(digest, expected)


def check_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise AccountError(
            f"invalid user name {name!r}: expected letters, digits, '.', '_', '@', '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_permissions(path: Path, st: os.stat_result) -> None:
    """Refuse a users file that others may read or write: it holds password hashes."""
    if st.st_mode & (stat.S_IRWXO):
        mode = stat.S_IMODE(st.st_mode)
        raise AccountError(
            f"{path}: refusing a users file that others can access (mode {mode:04o}): "
            f"run 'chmod 0640 {path}'"
        )


def parse_users(path: Path, text: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise AccountError(f"{path}: line {number}: expected name:role:hash")
        name, role, hashed = parts
        try:
            check_name(name)
            check_role(role)
            _parse_hash(hashed)
        except (AccountError, ValueError, binascii.Error) as exc:
            raise AccountError(f"{path}: line {number}: {exc}") from None
        if name in users:
            raise AccountError(f"{path}: line {number}: duplicate user {name!r}")
        users[name] = User(name, role, hashed)
        if len(users) > MAX_USERS:
            raise AccountError(f"{path}: more than {MAX_USERS} users")
    return users


class Accounts:
    """The users of one users file, re-read whenever the file changes.

    Event-loop thread for lookups (cheap: one stat), any thread for `verify` (CPU-bound).
    A missing file means "no users": the server then falls back to its local-only default.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int, int] | None = None
        self._users: dict[str, User] = {}
        self._error: AccountError | None = None

    def users(self) -> dict[str, User]:
        """All users now (re-reading a changed file); raises AccountError for a bad file."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._signature, self._users, self._error = None, {}, None
            return {}
        except OSError as exc:
            raise AccountError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if signature != self._signature:
            self._signature = signature
            try:
                check_permissions(self.path, st)
                text = self.path.read_text(encoding="utf-8")
                self._users, self._error = parse_users(self.path, text), None
            except AccountError as exc:
                self._users, self._error = {}, exc
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                self._users = {}
                self._error = AccountError(f"cannot read {self.path}: {reason}")
        if self._error is not None:
            raise self._error
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def has_users(self) -> bool:
        return bool(self.users())


def write_users(path: Path, users: dict[str, User]) -> None:
    """Replace the users file atomically, keeping its owner, group and mode (0640 if new).

    A new file takes the group of its folder (the package makes /etc/pyimagestream
    root:pyimagestream), so the daemon's user can read it and nobody else can.
    """
    try:
        old = path.stat()
        mode, uid, gid = stat.S_IMODE(old.st_mode) & 0o770, old.st_uid, old.st_gid
    except FileNotFoundError:
        parent = path.parent.stat()
        mode, uid, gid = 0o640, os.geteuid(), parent.st_gid
    text = "".join(f"{u.name}:{u.role}:{u.password_hash}\n" for u in users.values())
    fd, tmp = tempfile.mkstemp(prefix=".users.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
