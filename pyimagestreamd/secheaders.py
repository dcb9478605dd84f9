"""Security headers: what every response carries, whichever part of the daemon wrote it.

Every writer of a response head takes them from here, through its connection
(`Connection.security_headers`, httpd.py): the router's replies (routes.py: pages, API,
snapshots and every refusal), the MJPEG stream's own head (mjpegpush.py), the answers to
broken requests (httploop.py), the WebSocket handshake's answers (wsconn.py) and the
plain-HTTP redirect listener (redirect.py). `frame-ancestors` comes from
`server.frame_ancestors` ('none' by default; dashboards that embed the stream list their
origins); `Strict-Transport-Security` is sent over TLS only (RFC 6797 has browsers ignore
it over plain HTTP). No I/O.
"""

from __future__ import annotations

import functools

Headers = tuple[tuple[str, str], ...]

# One year: browsers that once saw the page over TLS never try plain HTTP for that long.
HSTS_MAX_AGE = 365 * 86400


def content_security_policy(frame_ancestors: tuple[str, ...]) -> str:
    """The policy: scripts and styles from the page's own origin only, no inline script
    or style ('self' covers the page's own ws:/wss: origin in CSP 3). The client sets its
    styles through CSSOM properties (`el.style.transform = ...`), which style-src does not
    govern; a `style` attribute would need 'unsafe-inline', and the browser tests in all
    three engines report any violation."""
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'; frame-ancestors {ancestors}"
    )


@functools.cache
def security_headers(frame_ancestors: tuple[str, ...], secure: bool) -> Headers:
    """The headers for one configuration and transport (cached: a handful exist)."""
    headers = [
        ("Content-Security-Policy", content_security_policy(frame_ancestors)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if not frame_ancestors:
        # For browsers older than CSP 2. X-Frame-Options cannot name several origins, and
        # DENY would override an allow-list in some of them: with one, CSP alone decides.
        headers.append(("X-Frame-Options", "DENY"))
    if secure:
        headers.append(("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}"))
    return tuple(headers)
