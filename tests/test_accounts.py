"""Accounts, sessions, share links and the login guard, without sockets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyimagestreamd.accounts import (
    AccountError,
    Accounts,
    User,
    hash_password,
    verify_password,
    write_users,
)
from pyimagestreamd.loginguard import LoginGuard
from pyimagestreamd.sessions import Sessions
from pyimagestreamd.shares import ShareError, Shares, parse_duration

# Cheap parameters for tests of everything but the cost itself.
FAST = {"n": 2**10, "r": 8, "p": 1}


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_hash_verifies_only_the_right_password() -> None:
    """A hash verifies its own password and no other; two hashes of one password differ."""
    encoded = hash_password("correct horse", **FAST)
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded)
    assert encoded != hash_password("correct horse", **FAST)


def test_default_hash_uses_the_documented_cost() -> None:
    """New hashes use scrypt N=2**15, r=8, p=1 and carry the parameters."""
    assert hash_password("pw").startswith("scrypt$32768$8$1$")


def test_hash_with_absurd_parameters_is_refused_not_computed() -> None:
    """A crafted line asking for gigabytes of scrypt memory never verifies."""
    assert not verify_password("pw", "scrypt$1073741824$8$1$AAAA$AAAA")
    assert not verify_password("pw", "md5$x")


def write(path: Path, users: list[User], mode: int = 0o640) -> None:
    path.write_text("".join(f"{u.name}:{u.role}:{u.password_hash}\n" for u in users))
    path.chmod(mode)


def test_missing_users_file_means_no_users(tmp_path: Path) -> None:
    """No users file: no users, no error (the server then serves local networks only)."""
    assert not Accounts(tmp_path / "users").has_users()


def test_world_readable_users_file_is_refused_with_one_line(tmp_path: Path) -> None:
    """A users file others can read is refused with a one-line error naming the fix."""
    path = tmp_path / "users"
    write(path, [User("anna", "admin", hash_password("pw", **FAST))], mode=0o644)
    with pytest.raises(AccountError) as err:
        Accounts(path).users()
    message = str(err.value)
    assert "\n" not in message and "0644" in message and "chmod 0640" in message


def test_users_file_changes_apply_without_restart(tmp_path: Path) -> None:
    """Adding and removing users in the file is seen by the next lookup."""
    path = tmp_path / "users"
    accounts = Accounts(path)
    write_users(path, {"anna": User("anna", "viewer", hash_password("pw", **FAST))})
    assert accounts.get("anna") is not None and accounts.get("bob") is None
    users = dict(accounts.users())
    users["bob"] = User("bob", "admin", hash_password("pw2", **FAST))
    del users["anna"]
    write_users(path, users)
    assert accounts.get("anna") is None
    bob = accounts.get("bob")
    assert bob is not None and bob.is_admin
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_malformed_users_file_names_the_line(tmp_path: Path) -> None:
    """A broken line is reported with its number, not used half-way."""
    path = tmp_path / "users"
    path.write_text("anna:admin:" + hash_password("pw", **FAST) + "\nbob:root:x\n")
    path.chmod(0o600)
    with pytest.raises(AccountError, match="line 2"):
        Accounts(path).users()


def test_sessions_survive_a_restart_and_expire(tmp_path: Path) -> None:
    """A session is found again by a new store on the same file, until it expires."""
    clock = Clock()
    path = tmp_path / "sessions.json"
    token = Sessions(path, lifetime=100, clock=clock).create("anna")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert token not in path.read_text()  # only its hash is stored
    again = Sessions(path, lifetime=100, clock=clock)
    session = again.lookup(token)
    assert session is not None and session.user == "anna"
    clock.now += 101
    assert again.lookup(token) is None


def test_logout_ends_the_session(tmp_path: Path) -> None:
    """A revoked token is not found, in this store or after a restart."""
    path = tmp_path / "sessions.json"
    sessions = Sessions(path, lifetime=100)
    token = sessions.create("anna")
    assert sessions.revoke(token) is not None
    assert sessions.lookup(token) is None
    assert Sessions(path, lifetime=100).lookup(token) is None


def test_share_opens_one_camera_until_expiry_or_revocation(tmp_path: Path) -> None:
    """A share token names its camera, stops at its expiry and at once when revoked."""
    clock = Clock()
    path = tmp_path / "shares.json"
    shares = Shares(path, clock=clock)
    share, token = shares.create("fish", 60, "for Anna")
    assert len(token) >= 32 and token not in path.read_text()
    found = shares.lookup(token)
    assert found is not None and found.camera == "fish"
    assert shares.lookup(token + "x") is None
    # Another process (the CLI) revokes it: this store sees the change on its next lookup.
    other, token2 = Shares(path, clock=clock).create("fish", 60)
    assert Shares(path, clock=clock).revoke(share.id)
    assert shares.lookup(token) is None and not shares.is_live(share.id)
    assert shares.lookup(token2) is not None
    clock.now += 61
    assert shares.lookup(token2) is None and not shares.is_live(other.id)


def test_share_durations() -> None:
    """Durations read as seconds, minutes, hours, days, weeks; nonsense is refused."""
    assert [parse_duration(t) for t in ("90s", "15m", "12h", "7d", "2w", "30")] == [
        90,
        900,
        43200,
        604800,
        1209600,
        30,
    ]
    with pytest.raises(ShareError):
        parse_duration("soon")


def test_fifty_wrong_passwords_lock_the_address_only() -> None:
    """50 failures lock that address (even the right password waits); others go ahead."""
    clock = Clock()
    guard = LoginGuard(lock_after=10, lock_duration=300, clock=clock)
    attempts = 0
    for _ in range(50):
        if guard.retry_after("203.0.113.5", "anna") == 0:
            guard.failed("203.0.113.5", "anna")
            attempts += 1
        else:
            guard.refused("203.0.113.5")
        clock.now += 1.0
    assert attempts < 50  # the back-off refused some without a password check
    assert guard.is_locked("203.0.113.5")
    assert guard.retry_after("203.0.113.5", "anna") > 0  # right password or not: refused
    # Only the checked attempts counted against the user: another address goes ahead.
    assert guard.retry_after("198.51.100.7", "anna") == 0
    clock.now += 301
    assert guard.retry_after("203.0.113.5", "anna") == 0


def test_backoff_doubles_after_the_free_failures() -> None:
    """Three mistakes are free, then the wait doubles with each failure."""
    clock = Clock()
    guard = LoginGuard(free_failures=3, base_delay=1, lock_after=100, clock=clock)
    waits = []
    for _ in range(6):
        guard.failed("192.0.2.1", None)
        waits.append(guard.retry_after("192.0.2.1", None))
    assert waits == [0, 0, 0, 1, 2, 4]
    guard.succeeded("192.0.2.1", "anna")
    assert guard.retry_after("192.0.2.1", None) == 0
