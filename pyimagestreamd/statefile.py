"""State files: small JSON documents in the state directory, written atomically, mode 0600.

Sessions and share links live here so they survive a restart
(`StateDirectory=pyimagestream`, i.e. /var/lib/pyimagestream). The daemon and the command
line (run as root) both write them: a file written by root is handed to the owner of the
folder, so the daemon's user can still read it. A damaged file is reported in one line and
treated as empty, never as a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

# A state file bigger than this is not ours (sessions and shares are bounded in count).
MAX_STATE_BYTES = 4 * 1024 * 1024


class StateError(Exception):
    """A state file cannot be read or written; the message is one line."""


def signature(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the file is replaced or edited; None if it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_json(path: Path, max_bytes: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """The document at `path`, {} if there is none; StateError if it is unusable."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise StateError(f"{path}: larger than {max_bytes} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StateError(f"{path}: expected a JSON object")
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace `path` atomically with `doc`, mode 0600, owned like its folder."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = path.parent.stat()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        if os.geteuid() == 0:
            os.fchown(fd, folder.st_uid, folder.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
