"""`pyimagestreamd user ...` and `share ...` as an administrator runs them (real CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import TOP, timeout

from pyimagestreamd.accounts import Accounts, verify_password
from pyimagestreamd.shares import Shares


def cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagestreamd", "--config", str(config), *args],
        cwd=TOP, input=stdin, capture_output=True, text=True, timeout=timeout(60), check=False,
    )  # fmt: skip


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"auth: {{users_file: {tmp_path}/users, state_directory: {tmp_path}/state,"
        " base_url: 'https://cam.example.org'}\ncameras: {fish: {}, door: {}}\n"
    )
    return config


def test_user_add_passwd_del_list(tmp_path: Path) -> None:
    """Users are added (password from stdin), listed, re-keyed and deleted; file mode 0640."""
    config = write_config(tmp_path)
    assert (
        cli(config, "user", "add", "anna", "--role", "admin", stdin="first-pass\n").returncode == 0
    )
    assert cli(config, "user", "add", "bob", stdin="bobs-pass\n").returncode == 0
    listed = cli(config, "user", "list")
    assert listed.stdout.splitlines() == ["anna\tadmin", "bob\tviewer"]
    assert (tmp_path / "users").stat().st_mode & 0o777 == 0o640
    assert "first-pass" not in (tmp_path / "users").read_text()
    assert cli(config, "user", "passwd", "anna", stdin="second-pass\n").returncode == 0
    anna = Accounts(tmp_path / "users").get("anna")
    assert anna is not None and anna.is_admin
    assert verify_password("second-pass", anna.password_hash)
    assert not verify_password("first-pass", anna.password_hash)
    assert cli(config, "user", "del", "bob").returncode == 0
    assert cli(config, "user", "list").stdout.splitlines() == ["anna\tadmin"]


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    """A duplicate user, a short password, an unknown user: one line, exit 1, file intact."""
    config = write_config(tmp_path)
    cli(config, "user", "add", "anna", stdin="first-pass\n")
    before = (tmp_path / "users").read_text()
    for args, stdin in (
        (("user", "add", "anna"), "other-pass\n"),
        (("user", "add", "bob"), "short\n"),
        (("user", "del", "carol"), ""),
        (("user", "add", "bad:name"), "long-enough\n"),
    ):
        result = cli(config, *args, stdin=stdin)
        assert result.returncode == 1, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (tmp_path / "users").read_text() == before


def test_world_readable_users_file_is_a_clear_error(tmp_path: Path) -> None:
    """`user list` on a users file others can read says so in one line."""
    config = write_config(tmp_path)
    cli(config, "user", "add", "anna", stdin="first-pass\n")
    (tmp_path / "users").chmod(0o644)
    result = cli(config, "user", "list")
    assert result.returncode == 1
    assert "others can access (mode 0644)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_share_create_list_revoke(tmp_path: Path) -> None:
    """`share CAMERA` prints a URL with a token that opens that camera; list and revoke it."""
    config = write_config(tmp_path)
    made = cli(config, "share", "fish", "--expires", "2h", "--label", "for Anna")
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("https://cam.example.org/share/") and url.endswith("#camera=fish")
    token = url.split("/share/")[1].split("#")[0]
    shares = Shares(tmp_path / "state" / "shares.json")
    share = shares.lookup(token)
    assert share is not None and share.camera == "fish" and share.label == "for Anna"
    assert 7100 < share.expires_at - share.created_at <= 7200
    assert (tmp_path / "state" / "shares.json").stat().st_mode & 0o777 == 0o600
    listed = cli(config, "share", "list").stdout
    assert share.id in listed and "for Anna" in listed and token not in listed
    assert cli(config, "share", "revoke", share.id).returncode == 0
    assert shares.lookup(token) is None
    assert cli(config, "share", "revoke", share.id).returncode == 1
    unknown = cli(config, "share", "attic")
    assert unknown.returncode == 1 and "no camera 'attic'" in unknown.stderr


def test_existing_flags_still_work_beside_subcommands(tmp_path: Path) -> None:
    """--check-config and --dump-config keep working; the dump holds no secret."""
    config = write_config(tmp_path)
    cli(config, "user", "add", "anna", stdin="first-pass\n")
    assert cli(config, "--check-config").returncode == 0
    dump = cli(config, "--dump-config").stdout
    assert "users_file" in dump and "scrypt" not in dump and "first-pass" not in dump
