"""Redaction: credentials out of anything that is logged or shown.

Camera URLs (`http://user:secret@cam/...`, `rtsp://...` in an ffmpeg command line) carry
passwords; every log line, `/api/state` entry and `--dump-config` value that may hold one
goes through `redact()` first. Pure functions, any thread.
"""

from __future__ import annotations

import re

# scheme://user:password@ -> scheme://user:***@ (the user name helps; the password never).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
