"""The `user` and `share` subcommands: manage accounts and share links from a shell.

`pyimagestreamd user add|passwd|del|list` edits the users file (the running daemon notices
the change by itself); `pyimagestreamd share CAMERA --expires 7d`, `share list` and
`share revoke ID` edit the share links in the state directory. Run as root (or as a user
who may write those files); every failure is one line on stderr and exit status 2 (usage,
configuration) or 1 (the operation failed).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from urllib.parse import quote

from pyimagestreamd.accounts import (
    ROLES,
    AccountError,
    Accounts,
    User,
    check_name,
    check_role,
    hash_password,
    write_users,
)
from pyimagestreamd.config import Config
from pyimagestreamd.shares import ShareError, Shares, parse_duration
from pyimagestreamd.statefile import StateError

MIN_PASSWORD = 8


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage accounts (users file)")
    user_sub = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user (password asked twice, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    passwd = user_sub.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--role", choices=ROLES, default=None, help="also change the role")
    delete = user_sub.add_parser("del", help="delete a user")
    delete.add_argument("name")
    user_sub.add_parser("list", help="list users and roles")

    share = sub.add_parser(
        "share",
        help="share one camera by link: 'share CAMERA --expires 7d', 'share list', "
        "'share revoke ID'",
    )
    share.add_argument("target", metavar="CAMERA|list|revoke")
    share.add_argument("id", nargs="?", help="with 'revoke': the link's id")
    share.add_argument("--expires", default="7d", help="lifetime, e.g. 90s, 12h, 7d (default 7d)")
    share.add_argument("--label", default="", help="a note shown in 'share list'")
    share.add_argument("--base-url", default=None, help="URL of the page (default: auth.base_url)")


def read_password(prompt: str = "Password: ") -> str:
    """Twice from the terminal, or one line from stdin when it is not a terminal."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != password:
            raise AccountError("the passwords do not match")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password too short: at least {MIN_PASSWORD} characters")
    return password


def run_user(args: argparse.Namespace, config: Config) -> int:
    path = config.auth.users_file
    accounts = Accounts(path)
    try:
        users = dict(accounts.users())
        if args.action == "list":
            for user in users.values():
                print(f"{user.name}\t{user.role}")
            return 0
        name = check_name(args.name)
        if args.action == "add":
            if name in users:
                raise AccountError(f"user {name!r} exists: use 'user passwd {name}'")
            role = check_role(args.role)
            users[name] = User(name, role, hash_password(read_password()))
            done = f"added {role} {name!r}"
        elif args.action == "passwd":
            old = users.get(name)
            if old is None:
                raise AccountError(f"no user {name!r} in {path}")
            role = check_role(args.role or old.role)
            users[name] = User(name, role, hash_password(read_password("New password: ")))
            done = f"changed the password of {name!r}"
        else:
            if users.pop(name, None) is None:
                raise AccountError(f"no user {name!r} in {path}")
            done = f"deleted {name!r}"
        write_users(path, users)
    except AccountError as exc:
        print(f"pyimagestreamd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pyimagestreamd: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{done} in {path} (applies without a restart)")
    return 0


def run_share(args: argparse.Namespace, config: Config) -> int:
    shares = Shares(config.auth.state_path("shares.json"))
    try:
        if args.target == "list":
            for share in shares.list():
                left = share.expires_at - time.time()
                expires = time.strftime("%Y-%m-%d %H:%M", time.localtime(share.expires_at))
                print(
                    f"{share.id}\t{share.camera}\texpires {expires} ({left / 3600:.1f} h)"
                    f"\t{share.label}"
                )
            return 0
        if args.target == "revoke":
            if not args.id:
                raise ShareError("usage: share revoke ID (see 'share list')")
            if not shares.revoke(args.id):
                raise ShareError(f"no share link {args.id!r}")
            print(f"revoked {args.id}")
            return 0
        camera = args.target
        if config.camera(camera) is None:
            names = ", ".join(c.name for c in config.cameras)
            raise ShareError(f"no camera {camera!r}: expected one of {names}")
        lifetime = parse_duration(args.expires)
        share, token = shares.create(camera, lifetime, args.label)
    except (ShareError, StateError) as exc:
        print(f"pyimagestreamd: {exc}", file=sys.stderr)
        return 1
    base = (args.base_url or config.auth.base_url or f"http://HOST:{config.server.port}").rstrip(
        "/"
    )
    print(f"{base}/share/{quote(token)}#camera={quote(camera)}")
    expires = time.strftime("%Y-%m-%d %H:%M", time.localtime(share.expires_at))
    print(f"id {share.id}, camera {camera}, expires {expires}", file=sys.stderr)
    return 0
