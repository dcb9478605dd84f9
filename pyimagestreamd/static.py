"""Static files: the browser client in web_root, with ETag / Last-Modified revalidation.

A leaf of the routing (routes.py): maps a request path to a file below web_root (no "..",
no hidden files, no symlinks out of it), and answers 200 with the file, or 304 when the
browser's copy is still current (If-None-Match, else If-Modified-Since), so a page reload
over keep-alive costs one small round trip per file. `Cache-Control: no-cache` makes
browsers revalidate, so a daemon upgrade is picked up on the next load. Text files (pages,
scripts, styles) go gzip-compressed to a client that accepts it, compressed once per file
version (ETag) and kept; the compressed one has an ETag of its own, and `Vary:
Accept-Encoding` tells caches there are two. Frames never pass here. No I/O beyond
reading the file; event-loop thread (files are small).
"""

from __future__ import annotations

import email.utils
import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
# Files larger than this are not part of a browser client: refuse rather than read them.
MAX_FILE = 16 * 1024 * 1024
# Compressed for clients that accept gzip (text: the client's files shrink 3-4x); smaller
# files gain less than a round trip's worth.
COMPRESSIBLE = frozenset({".html", ".js", ".mjs", ".css", ".json", ".webmanifest", ".svg", ".txt"})
MIN_COMPRESSED = 1024
# Compressed files kept, by path and ETag (the client has ~25 files; emptied when full).
GZIP_CACHE_SIZE = 64
_gzipped: dict[tuple[str, str], bytes] = {}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, headers and body (the body is dropped for HEAD)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


def text_reply(status: int, text: str, *headers: tuple[str, str]) -> Reply:
    body = (text + "\n").encode()
    return Reply(status, (("Content-Type", "text/plain; charset=utf-8"), *headers), body)


def resolve(web_root: Path, path: str) -> Path | None:
    """The file below `web_root` that `path` names, or None."""
    rel = unquote(path).lstrip("/") or "index.html"
    parts = rel.split("/")
    # Only plain names below web_root: no "..", no hidden files, no backslashes or NULs.
    if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    try:
        resolved = web_root.joinpath(*parts).resolve(strict=True)
        resolved.relative_to(web_root.resolve())  # a symlink out of web_root is not served
    except (OSError, ValueError):
        return None
    return resolved if resolved.is_file() else None


def serve_file(web_root: Path, path: str, headers: dict[str, str]) -> Reply:
    """Answer a GET/HEAD of `path`; `headers` are the request's (lower-case names)."""
    target = resolve(web_root, path)
    if target is None:
        return text_reply(404, "not found")
    try:
        st = target.stat()
        if st.st_size > MAX_FILE:
            return text_reply(404, "not found")
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        compressible = target.suffix.lower() in COMPRESSIBLE and st.st_size >= MIN_COMPRESSED
        compressed = compressible and accepts_gzip(headers.get("accept-encoding"))
        if compressed:
            etag = etag[:-1] + '-gzip"'  # another representation: another tag (RFC 9110 8.8.3)
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        common: tuple[tuple[str, str], ...] = (
            ("ETag", etag),
            ("Last-Modified", modified),
            ("Cache-Control", "no-cache"),
        )
        if compressible:
            common += (("Vary", "Accept-Encoding"),)
        if _not_modified(headers, etag, int(st.st_mtime)):
            return Reply(304, common)
        body = target.read_bytes()
    except OSError:
        return text_reply(404, "not found")
    if compressed:
        body = _gzip(str(target), etag, body)
        common += (("Content-Encoding", "gzip"),)
    ctype = CONTENT_TYPES.get(target.suffix.lower()) or (
        mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    )
    return Reply(200, (("Content-Type", ctype), *common), body)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header lists gzip with a non-zero quality."""
    for item in (header or "").split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() != "gzip":
            continue
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def _gzip(path: str, etag: str, body: bytes) -> bytes:
    key = (path, etag)
    data = _gzipped.get(key)
    if data is None:
        if len(_gzipped) >= GZIP_CACHE_SIZE:
            _gzipped.clear()
        # mtime=0: the same file always compresses to the same bytes.
        data = _gzipped[key] = gzip.compress(body, compresslevel=6, mtime=0)
    return data


def _not_modified(headers: dict[str, str], etag: str, mtime: int) -> bool:
    match = headers.get("if-none-match")
    if match is not None:
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        tags = [t.strip().removeprefix("W/") for t in match.split(",")]
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    return when is not None and mtime <= when.timestamp()
