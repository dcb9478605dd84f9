"""What a request says about who sends it: client address, cookies, Basic credentials.

The first step of the gate (gate.py), before any decision: from the peer's address and the
request's headers, the client's address (`X-Forwarded-For` only through the configured
trusted proxies), whether that address is on a local network (the safe default without
users), the session and share cookies, and HTTP Basic credentials. The account routes
(authapi.py) read the same values with the same functions and set the same cookies.
Pure functions of header values, no I/O: nothing here is trusted yet, the gate checks it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from pyimagestreamd.addresses import is_ip_literal

SESSION_COOKIE = "pyimagestream_session"
SHARE_COOKIE = "pyimagestream_share"
# Requests from our own page carry this header: a cross-site page cannot send it without a
# CORS preflight that we never grant, so it guards the state-changing API against CSRF,
# and it tells the server not to ask the browser for Basic credentials in a pop-up.
CLIENT_HEADER = "X-PyImageStream"
LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def parse_cookies(header: str | None) -> dict[str, str]:
    """The `Cookie` header's name -> value pairs; the first of a repeated name counts."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(name, password) of an `Authorization: Basic` header, None for anything else."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or len(value) > 4096:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def is_local(address: str) -> bool:
    """True for loopback and local networks (LOCAL_NETWORKS), IPv4-mapped included."""
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in LOCAL_NETWORKS)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The client's address: `X-Forwarded-For` counts only when the peer is a trusted proxy."""
    if forwarded_for is None or not _in(peer, trusted):
        return peer
    # Each proxy appends the address it saw: walk back from the right past our own proxies;
    # anything further left was written by the client and proves nothing.
    hops = [h.strip() for h in forwarded_for.split(",")][-16:]
    for hop in reversed(hops):
        if not is_ip_literal(hop):
            return "invalid"  # a garbled header from a trusted proxy: trust nothing
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
