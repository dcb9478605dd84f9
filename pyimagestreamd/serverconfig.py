"""Configuration of the front door: the `server` section, validated into `ServerConfig`.

Part of config.py's validation (the first step of the data flow), in a module of its own
because the network settings are their own concern: listen address and port, limits,
Host/Origin allow-lists, trusted proxies, TLS and the redirect listener, frame-ancestors.
Checked with the same `Checker` as every other section, so errors read the same. No I/O
beyond checking that `web_root` is a folder with an index.html.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagestreamd.addresses import is_ip_literal
from pyimagestreamd.schema import Checker

__all__ = ["ServerConfig", "parse_server"]

# A host name in the syntax of RFC 1123: dot-separated labels of letters, digits and "-".
_HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOST_NAME = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\.?")
# A frame-ancestors source: an origin, its host optionally "*." wildcarded. Nothing that
# could end the directive (";", ",", quotes, spaces) gets into the header.
FRAME_ORIGIN = re.compile(
    rf"https?://(\*\.)?({_HOST_LABEL}(\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(:\d{{1,5}})?/?"
)
# Folders that must never be served as web_root (a typo or a hostile edit would publish the
# system); a folder below them, such as /usr/share/pyimagestream/web, is fine.
SYSTEM_DIRS = frozenset(
    Path(p)
    for p in (
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
        "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
        "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/var",
        "/var/lib", "/var/log", "/var/tmp",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # "::" serves IPv6 and IPv4 (the server clears IPV6_V6ONLY), or IPv4 only without IPv6.
    listen: str = "::"
    port: int = 8888
    web_root: Path | None = None
    max_clients: int = 100
    allowed_origins: tuple[str, ...] = ()
    snapshot_timeout: float = 10.0
    # Host names accepted besides IP literals, localhost and this machine's own names.
    allowed_hosts: tuple[str, ...] = ()
    # Connections one address may hold, and how many of them may still be sending a request.
    max_clients_per_address: int = 32
    max_pending_per_address: int = 16
    # Addresses exempt from the per-address limits (a reverse proxy on this machine).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # A client that takes no data for this long while we have some for it is dropped.
    send_timeout: float = 30.0
    # Longest time to receive one request head, and to wait for the next one (keep-alive).
    request_timeout: float = 10.0
    idle_timeout: float = 30.0
    # PEM certificate chain and key: both set -> HTTPS/WSS on `port`, HSTS on every answer.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # A plain-HTTP port on `listen` that only redirects to HTTPS (None: none), and the HTTPS
    # port its redirects name (None: `port`; 443 when a router forwards 443 to `port`).
    tls_redirect_from: int | None = None
    tls_public_port: int | None = None
    # Origins that may embed our pages and streams in a frame (CSP frame-ancestors);
    # empty: none may.
    frame_ancestors: tuple[str, ...] = ()

    @property
    def is_tls(self) -> bool:
        return self.tls_certificate is not None

    def to_dict(self) -> dict[str, Any]:
        """This section in the shape of the YAML file (for --dump-config)."""
        out = dataclasses.asdict(self)
        out["web_root"] = str(self.web_root) if self.web_root else None
        out["allowed_origins"] = list(self.allowed_origins)
        out["allowed_hosts"] = list(self.allowed_hosts)
        out["trusted_proxies"] = list(self.trusted_proxies)
        out["frame_ancestors"] = list(self.frame_ancestors)
        for key in ("certificate", "key", "redirect_from", "public_port"):
            del out[f"tls_{key}"]
        out["tls"] = {
            "certificate": str(self.tls_certificate) if self.is_tls else None,
            "key": str(self.tls_key) if self.tls_key else None,
            "redirect_from": self.tls_redirect_from,
            "public_port": self.tls_public_port,
        }
        return out


def _is_address(text: str) -> bool:
    """An IP address literal (v4 or v6) or a host name; nothing that could be two."""
    return is_ip_literal(text) or (len(text) <= 253 and HOST_NAME.fullmatch(text) is not None)


def _string_list(
    check: Checker, path: tuple[str, ...], value: object, what: str, ok: Callable[[str], bool]
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise check.fail(path, value, "a list of " + what)
    return [check.string(path, item, what, ok) for item in value]


def _check_web_root(check: Checker, web_root: Path, value: str) -> None:
    path = ("server", "web_root")
    try:
        resolved = web_root.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        raise check.fail(path, value, "a folder path that resolves") from None
    if resolved in SYSTEM_DIRS:
        raise check.fail(path, value, "a folder of its own, not a system folder")
    if not (resolved / "index.html").is_file():
        raise check.fail(path, value, "a folder that contains index.html")


def parse_server(check: Checker, value: object, base_dir: Path | None) -> ServerConfig:
    """Validate the `server` section; relative paths resolve against `base_dir`."""
    defaults = ServerConfig()
    server_keys = [f.name for f in dataclasses.fields(ServerConfig) if not f.name.startswith("tls")]
    srv = check.mapping(("server",), value, (*server_keys, "tls"))
    tls = check.mapping(
        ("server", "tls"), srv.get("tls"), ("certificate", "key", "redirect_from", "public_port")
    )
    tls_paths: dict[str, Path | None] = {}
    for key in ("certificate", "key"):
        raw = tls.get(key)
        if raw is None:
            tls_paths[key] = None
            continue
        check.string(
            ("server", "tls", key), raw, "a PEM file path", lambda s: bool(s) and "\0" not in s
        )
        path = Path(raw)
        tls_paths[key] = base_dir / path if not path.is_absolute() and base_dir else path
    if (tls_paths["certificate"] is None) != (tls_paths["key"] is None):
        raise check.fail(("server", "tls"), tls, "both certificate and key, or neither")
    redirect_ports: dict[str, int | None] = {}
    for key in ("redirect_from", "public_port"):
        raw = tls.get(key)
        redirect_ports[key] = (
            None if raw is None else check.integer(("server", "tls", key), raw, 0, 65535)
        )
        if raw is not None and tls_paths["certificate"] is None:
            raise check.fail(
                ("server", "tls", key), raw, "null without a certificate and key (HTTPS off)"
            )
    ancestors = _string_list(
        check,
        ("server", "frame_ancestors"),
        srv.get("frame_ancestors", []),
        "origins like 'https://ha.example' (scheme://host[:port]) or \"'self'\"",
        lambda s: s == "'self'" or FRAME_ORIGIN.fullmatch(s) is not None,
    )
    web_root_value = srv.get("web_root", None)
    web_root = None
    if web_root_value is not None:
        check.string(
            ("server", "web_root"), web_root_value, "a folder path or null",
            lambda s: bool(s) and "\0" not in s,
        )  # fmt: skip
        web_root = Path(web_root_value)
        if not web_root.is_absolute() and base_dir is not None:
            web_root = base_dir / web_root
        _check_web_root(check, web_root, web_root_value)
    origins = srv.get("allowed_origins", [])
    if origins is None:
        origins = []
    if not isinstance(origins, list):
        raise check.fail(("server", "allowed_origins"), origins, "a list of origins")
    for origin in origins:
        check.string(
            ("server", "allowed_origins"),
            origin,
            "origins like 'https://example.org' (scheme://host[:port])",
            lambda s: re.fullmatch(r"https?://[^/\s]+", s) is not None,
        )
    hosts = _string_list(
        check,
        ("server", "allowed_hosts"),
        srv.get("allowed_hosts", []),
        "host names like 'cam.example.org' (no scheme, no port)",
        lambda s: len(s) <= 253 and HOST_NAME.fullmatch(s) is not None,
    )
    proxies = _string_list(
        check,
        ("server", "trusted_proxies"),
        srv.get("trusted_proxies", list(defaults.trusted_proxies)),
        "IP addresses like '127.0.0.1'",
        is_ip_literal,
    )
    listen = srv.get("listen", defaults.listen)
    check.string(
        ("server", "listen"), listen, "an IP address (like 127.0.0.1 or ::) or a host name",
        _is_address,
    )  # fmt: skip
    server = ServerConfig(
        listen=listen,
        port=check.integer(("server", "port"), srv.get("port", defaults.port), 0, 65535),
        web_root=web_root,
        max_clients=check.integer(
            ("server", "max_clients"), srv.get("max_clients", defaults.max_clients), 1, 10000
        ),
        allowed_origins=tuple(o.rstrip("/") for o in origins),
        snapshot_timeout=check.number(
            ("server", "snapshot_timeout"),
            srv.get("snapshot_timeout", defaults.snapshot_timeout),
            0.1,
            600,
        ),
        allowed_hosts=tuple(h.lower().rstrip(".") for h in hosts),
        max_clients_per_address=check.integer(
            ("server", "max_clients_per_address"),
            srv.get("max_clients_per_address", defaults.max_clients_per_address),
            1,
            10000,
        ),
        max_pending_per_address=check.integer(
            ("server", "max_pending_per_address"),
            srv.get("max_pending_per_address", defaults.max_pending_per_address),
            1,
            10000,
        ),
        trusted_proxies=tuple(proxies),
        send_timeout=check.number(
            ("server", "send_timeout"), srv.get("send_timeout", defaults.send_timeout), 0.1, 3600
        ),
        request_timeout=check.number(
            ("server", "request_timeout"),
            srv.get("request_timeout", defaults.request_timeout),
            0.1,
            600,
        ),
        idle_timeout=check.number(
            ("server", "idle_timeout"), srv.get("idle_timeout", defaults.idle_timeout), 0.1, 3600
        ),
        tls_certificate=tls_paths["certificate"],
        tls_key=tls_paths["key"],
        tls_redirect_from=redirect_ports["redirect_from"],
        tls_public_port=redirect_ports["public_port"],
        frame_ancestors=tuple(a.rstrip("/") for a in ancestors),
    )
    if server.tls_redirect_from is not None and server.tls_redirect_from == server.port != 0:
        raise check.fail(
            ("server", "tls", "redirect_from"), server.tls_redirect_from,
            "a port other than server.port",
        )  # fmt: skip
    return server
