"""Listening sockets: bound for the configured address, and the line that says where.

The server's first step (server.py's `start`): `bind` turns `server.listen` and a port into
listening sockets: `"::"` one dual-stack IPv6 socket with IPV6_V6ONLY cleared (IPv4 through
it too) where the OS allows, else 0.0.0.0; a name or address one socket per address it
resolves to, all on the same port. The server accepts on them itself. No asyncio here:
the sockets are made non-blocking and handed over.
"""

from __future__ import annotations

import errno
import logging
import socket

log = logging.getLogger(__name__)

BACKLOG = 512


def bind(listen: str, port: int) -> list[socket.socket]:
    """Listening sockets for `listen`: "::" dual-stack where the OS allows, else 0.0.0.0."""
    if listen in ("::", ""):
        try:
            return [_listen_on(socket.AF_INET6, ("::", port), v6only=False)]
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT):
                raise
            log.info("IPv6 is not available (%s): listening on IPv4 only", exc.strerror or exc)
            return [_listen_on(socket.AF_INET, ("0.0.0.0", port), v6only=False)]
    infos = socket.getaddrinfo(listen, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, _type, _proto, _name, sockaddr in dict.fromkeys(infos):
            address = sockaddr
            if sockets and port == 0:
                # Every address of a name gets the same port, the one the first bind chose.
                address = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            sockets.append(_listen_on(family, address, v6only=True))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen_on(family: int, address: tuple[object, ...], v6only: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listening_text(sockets: list[socket.socket]) -> str:
    """The start-up line: where `sockets` (bind's) listen and the URL to open."""
    port = int(sockets[0].getsockname()[1])
    host = sockets[0].getsockname()[0]
    if host in ("::", "0.0.0.0"):
        both = host == "::" and not sockets[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        where = (
            "all IPv6 and IPv4 addresses"
            if both
            else f"all IPv{4 if host == '0.0.0.0' else 6} addresses"
        )
        name = socket.gethostname() or "localhost"
        return f"serving on port {port} ({where}): open http://{name}:{port}/"
    addresses = [s.getsockname()[0] for s in sockets]
    urls = [f"http://[{a}]:{port}/" if ":" in a else f"http://{a}:{port}/" for a in addresses]
    return f"serving on port {port}: open {' or '.join(urls)}"
