"""Host allow-list, Origin check and IP literals, as pure functions (no sockets)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyimagestreamd.access import host_allowed, local_names, origin_allowed, split_host
from pyimagestreamd.addresses import is_ip_literal

NAMES = frozenset({"localhost", "camhost", "camhost.local"})


@pytest.mark.parametrize(
    ("host", "ok"),
    [("127.0.0.1", True), ("127.0.0.1:8888", True), ("[::1]:8888", True), ("[fe80::1]", True),
     ("10.1.2.3:80", True), ("localhost", True), ("LOCALHOST:8888", True), ("camhost.", True),
     ("camhost.local:8888", True), ("cam.example.org", True), ("evil.example", False),
     ("evil.example:8888", False), ("127.0.0.1.evil.example", False), ("", False), (None, False),
     ("::1", False), ("[::1", False), ("127.0.0.1:99999", False), ("a b", False),
     ("user@127.0.0.1", False), ("127.0.0.1:x", False)],
)  # fmt: skip
def test_host_allow_list(host: str | None, ok: bool) -> None:
    """IP literals, own names and allowed_hosts pass; anything else (rebinding) does not."""
    assert host_allowed(host, ("cam.example.org",), NAMES) is ok


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [(None, "h:8888", True), ("http://h:8888", "h:8888", True), ("http://H:8888/", "h:8888", True),
     ("https://h:8888", "h:8888", False), ("http://h:8889", "h:8888", False),
     ("http://h", "h:80", True), ("http://h:80", "h", True), ("null", "h:8888", False),
     ("file://", "h:8888", False), ("http://other:8888", "h:8888", False),
     ("https://ok.example", "h:8888", True), ("http://h:bad", "h:8888", False),
     ("http://[::1]:8888", "[::1]:8888", True)],
)  # fmt: skip
def test_origin_must_be_same_scheme_host_and_port(origin: str | None, host: str, ok: bool) -> None:
    """A page's origin matches only with the same scheme, host and port, or when allow-listed."""
    assert origin_allowed(origin, host, False, ("https://ok.example",)) is ok


def test_wss_origin_is_https() -> None:
    """Behind TLS (secure) the page must be https, with 443 as the default port."""
    assert origin_allowed("https://h", "h:443", True, ())
    assert not origin_allowed("http://h", "h", True, ())


def test_split_host_and_local_names() -> None:
    """Host values split into name and port; this machine's names include NAME.local."""
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("Example.ORG.") == ("example.org", None)
    names = local_names()
    assert "localhost" in names
    assert any(n.endswith(".local") for n in names)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("127.0.0.1", True), ("::1", True), ("fe80::1", True), ("::ffff:10.0.0.1", True),
     ("[::1]", False), ("127.0.0.1:80", False), ("localhost", False), ("", False),
     ("1.2.3", False), (" 1.2.3.4", False)],
)  # fmt: skip
def test_ip_literals(text: str, ok: bool) -> None:
    """An address as written is an IP literal; brackets, ports, names and spaces are not."""
    assert is_ip_literal(text) is ok


def test_the_config_side_does_not_import_the_request_side() -> None:
    """Loading the configuration (serverconfig.py's checks of IP literals) imports no access.py."""
    code = "import sys, pyimagestreamd.config; print('pyimagestreamd.access' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
