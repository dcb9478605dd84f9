"""Command line: parse arguments, set up logging, load the config, run the daemon.

The entry point of the data flow (`pyimagestreamd`, `python3 -m pyimagestreamd`). Exit
status: 0 after a clean stop, 2 for a usage or configuration error (systemd is told not to
restart on it: a bad file does not fix itself), 1 for a runtime failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import yaml

from pyimagestreamd import __version__
from pyimagestreamd.config import ConfigError, load_config

DEFAULT_CONFIG = Path("/etc/pyimagestream.yaml")
EXIT_CONFIG = 2

# syslog priorities, understood by journald as a "<N>" line prefix.
_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    """One line per record, prefixed with its syslog priority; journald adds the time."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")
        return f"<{_PRIORITIES.get(record.levelno, 6)}>{text}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_log_level(level)


def set_log_level(level: str) -> None:
    # websockets' per-connection lines never reach the log: the server passes it a logger
    # that keeps only its errors (rate-limited, see wsconn.py).
    logging.getLogger().setLevel(level.upper())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pyimagestreamd",
        description="Stream cameras to browsers over a WebSocket pull protocol.",
    )
    parser.add_argument(
        "--config", "-c", type=Path, default=DEFAULT_CONFIG,
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )  # fmt: skip
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    parser.add_argument(
        "--dump-config", action="store_true", help="print the effective configuration and exit"
    )
    parser.add_argument(
        "--list-cameras",
        action="store_true",
        help="list V4L2 capture devices and libcamera cameras, and exit",
    )
    parser.add_argument("--version", action="version", version=f"pyimagestreamd {__version__}")
    from pyimagestreamd.admincli import add_parsers  # noqa: PLC0415

    add_parsers(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_cameras:
        from pyimagestreamd.cameralist import format_camera_list, list_cameras  # noqa: PLC0415
        from pyimagestreamd.libcameras import format_libcamera_list, list_libcameras  # noqa: PLC0415

        sys.stdout.write(format_camera_list(list_cameras()))
        sys.stdout.write(format_libcamera_list(*list_libcameras()))
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"pyimagestreamd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command is not None:
        from pyimagestreamd import admincli  # noqa: PLC0415

        return (
            admincli.run_user(args, config)
            if args.command == "user"
            else admincli.run_share(args, config)
        )
    if args.check_config:
        print(f"{args.config}: configuration OK ({len(config.cameras)} cameras)")
        return 0
    if args.dump_config:
        sys.stdout.write(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    setup_logging(config.log_level)
    log = logging.getLogger("pyimagestreamd")
    log.info("pyimagestreamd %s starting with %s", __version__, args.config)
    from pyimagestreamd.daemon import run_daemon  # noqa: PLC0415 - keeps --check-config light

    try:
        return asyncio.run(run_daemon(config, args.config, set_log_level))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 0
