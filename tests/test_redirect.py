"""The plain-HTTP listener that only redirects to HTTPS, on real sockets, with curl."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import check_jpeg, timeout
from test_headers import assert_secured, exchange
from test_tls import make_ca, make_leaf

from pyimagestreamd.config import parse_config
from pyimagestreamd.schema import ConfigError


def tls_yaml(tmp_path: Path, server: str = "", tls: str = "") -> str:
    make_ca(tmp_path)
    make_leaf(tmp_path, "leaf")
    return (
        f"server: {{listen: 127.0.0.1, port: 0{server}, tls: {{certificate: {tmp_path}/leaf.pem,"
        f" key: {tmp_path}/leaf.key, redirect_from: 0{tls}}}}}\n"
        f"auth: {{users_file: {tmp_path}/none}}\n"
    )


def request(target: str, host: str = "127.0.0.1", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def test_plain_http_gets_a_redirect_to_the_same_url_over_https(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Any path and query -> 301 to https with the same path and query; curl -L follows it."""
    rd = await start_daemon(tls_yaml(tmp_path))
    plain = rd.daemon.server.redirect_port
    assert plain is not None and plain != rd.port
    for target in ("/", "/stream.mjpg?camera=testpattern&fps=2", "/api/state", "/websocket"):
        status, headers = await asyncio.to_thread(exchange, plain, request(target))
        assert status == 301, target
        assert headers["location"] == f"https://127.0.0.1:{rd.port}{target}"
        assert headers["connection"] == "close"
        assert_secured(target, headers, secure=False)  # HSTS only counts over TLS
    for host, where in (("localhost:80", "localhost"), ("[::1]:8080", "[::1]")):
        _, headers = await asyncio.to_thread(exchange, plain, request("/x?y=1", host))
        assert headers["location"] == f"https://{where}:{rd.port}/x?y=1"
    status, headers = await asyncio.to_thread(exchange, plain, request("/a", method="POST"))
    assert status == 308 and headers["location"].endswith("/a")
    result = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "-L", "-o", str(tmp_path / "s.jpg"), "-w", "%{url_effective}",
         "--cacert", str(tmp_path / "ca.pem"), f"http://127.0.0.1:{plain}/snapshot.jpg"],
        capture_output=True, text=True, timeout=timeout(30), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"https://127.0.0.1:{rd.port}/snapshot.jpg"
    check_jpeg((tmp_path / "s.jpg").read_bytes())


async def test_redirect_checks_host_and_names_the_public_port(
    start_daemon: Any, tmp_path: Path
) -> None:
    """A foreign Host gets 421, not a redirect; public_port 443 leaves the port out."""
    rd = await start_daemon(tls_yaml(tmp_path, tls=", public_port: 443"))
    plain = rd.daemon.server.redirect_port
    status, headers = await asyncio.to_thread(exchange, plain, request("/", "evil.example"))
    assert status == 421 and "location" not in headers
    _, headers = await asyncio.to_thread(exchange, plain, request("/p?q", "localhost"))
    assert headers["location"] == "https://localhost/p?q"


def idle_is_closed(port: int, hold: int) -> list[bool]:
    """Open `hold` idle connections; for each, whether the server closed it within 10 s."""
    socks = [
        socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) for _ in range(hold)
    ]
    try:
        closed = []
        for sock in socks:
            try:
                closed.append(sock.recv(1) == b"")
            except TimeoutError:
                closed.append(False)
        return closed
    finally:
        for sock in socks:
            sock.close()


async def test_redirect_connections_are_bounded_like_all_others(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Idle connections beyond max_pending_per_address are closed at once, the rest after
    request_timeout; the listener serves nobody anything but redirects meanwhile."""
    rd = await start_daemon(
        tls_yaml(
            tmp_path,
            server=", trusted_proxies: [], max_pending_per_address: 2, request_timeout: 0.5",
        )
    )
    plain = rd.daemon.server.redirect_port
    closed = await asyncio.to_thread(idle_is_closed, plain, 3)
    assert closed == [True, True, True]  # the third at once, the first two by the timeout
    state = await asyncio.to_thread(exchange, plain, request("/"))
    assert state[0] == 301
    refused = rd.daemon.server.stats.summary()["refused"]
    assert refused["per_address"] >= 1 and refused["timeout"] >= 2


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("{redirect_from: 8080}", "server.tls.redirect_from: invalid value 8080: expected"
         " null without a certificate and key (HTTPS off) (line 1)"),
        ("{certificate: c, key: k, redirect_from: 8888}", "server.tls.redirect_from: invalid"
         " value 8888: expected a port other than server.port (line 1)"),
        ("{certificate: c, key: k, redirect_from: http}", "server.tls.redirect_from: invalid"
         " value 'http': expected an integer 0..65535 (line 1)"),
    ],
)  # fmt: skip
def test_redirect_configuration_is_validated(tls: str, message: str) -> None:
    """redirect_from needs TLS, its own port, and a number; the error names the key."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"server: {{tls: {tls}}}\n")
    assert str(info.value) == message
