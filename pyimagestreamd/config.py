"""Configuration: /etc/pyimagestream.yaml validated into frozen dataclasses.

The first step of the data flow: everything else is built from a `Config`. Validation is
strict (unknown keys, wrong types and out-of-range values are errors) and every error names
the key path, the bad value, what was expected and the YAML line, because the person reading
it is editing that file. Parsing itself, bounded against hostile documents, is in
yamldoc.py. This module does no I/O beyond reading the one file (at most
MAX_CONFIG_BYTES) and checking that `server.web_root` is a folder with an index.html.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyimagestreamd import sources
from pyimagestreamd.schema import Checker, ConfigError, SourceOptions, show
from pyimagestreamd.yamldoc import MAX_CONFIG_BYTES, load_document

__all__ = ["CameraConfig", "Config", "ConfigError", "ServerConfig", "load_config", "parse_config"]

LOG_LEVELS = ("debug", "info", "warning", "error")
TESTPATTERN = sources.TESTPATTERN
# The keys every camera has, whatever its source; the rest belong to the source's type.
COMMON_KEYS = ("source", "width", "height", "fps", "quality", "stop_delay")
# Names appear in URL paths and in the client's #camera= fragment: letters (any script, so
# "küche" works), digits, "-" and "_" need no quoting trouble anywhere.
CAMERA_NAME = re.compile(r"[\w-]{1,64}")
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


@dataclass(frozen=True, slots=True)
class CameraConfig:
    name: str = TESTPATTERN
    source: str = TESTPATTERN
    width: int = 1280
    height: int = 720
    fps: int = 15
    quality: int = 80
    stop_delay: float = 10.0
    # The keys of the source's own type (V4L2Options, PipelineOptions, ...), validated by
    # that type's schema; a source built without them uses its type's defaults.
    options: SourceOptions = field(default_factory=SourceOptions)

    @property
    def is_testpattern(self) -> bool:
        return self.source == TESTPATTERN

    @property
    def kind(self) -> str:
        """The source type: "testpattern", "v4l2", "exec" or "http" (see sources.py)."""
        found = sources.source_type(self.source)
        return found.kind if found is not None else "unknown"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    users_file: Path = Path("/etc/pyimagestream/users")
    # Sessions, share links, saved camera settings; None: $STATE_DIRECTORY (systemd) or
    # /var/lib/pyimagestream.
    state_directory: Path | None = None
    session_lifetime: float = 30 * 86400.0
    # Share links printed by `pyimagestreamd share`, e.g. "https://cam.example.org".
    base_url: str | None = None
    # Failed logins from one address before it is locked, and for how long.
    lock_after: int = 10
    lock_duration: float = 900.0

    def state_path(self, name: str) -> Path:
        return (self.state_directory or default_state_directory()) / name


def default_state_directory() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY (colon-separated if several).
    env = os.environ.get("STATE_DIRECTORY")
    return Path(env.split(":")[0]) if env else Path("/var/lib/pyimagestream")


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    log_level: str = "info"
    cameras: tuple[CameraConfig, ...] = (CameraConfig(),)

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration, in the shape of the YAML file (for --dump-config)."""
        server = dataclasses.asdict(self.server)
        server["web_root"] = str(self.server.web_root) if self.server.web_root else None
        server["allowed_origins"] = list(self.server.allowed_origins)
        server["allowed_hosts"] = list(self.server.allowed_hosts)
        server["trusted_proxies"] = list(self.server.trusted_proxies)
        server["frame_ancestors"] = list(self.server.frame_ancestors)
        for key in ("certificate", "key", "redirect_from", "public_port"):
            del server[f"tls_{key}"]
        server["tls"] = {
            "certificate": str(self.server.tls_certificate) if self.server.is_tls else None,
            "key": str(self.server.tls_key) if self.server.tls_key else None,
            "redirect_from": self.server.tls_redirect_from,
            "public_port": self.server.tls_public_port,
        }
        cameras = {}
        for cam in self.cameras:
            entry: dict[str, Any] = {key: getattr(cam, key) for key in COMMON_KEYS}
            entry.update(cam.options.to_dict())
            cameras[cam.name] = entry
        auth = dataclasses.asdict(self.auth)
        auth["users_file"] = str(self.auth.users_file)
        auth["state_directory"] = (
            str(self.auth.state_directory) if self.auth.state_directory else None
        )
        return {
            "server": server,
            "auth": auth,
            "log_level": self.log_level,
            "cameras": cameras,
        }


def _is_address(text: str) -> bool:
    """An IP address literal (v4 or v6) or a host name; nothing that could be two."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return len(text) <= 253 and HOST_NAME.fullmatch(text) is not None
    return True


def _string_list(
    check: Checker, path: tuple[str, ...], value: object, what: str, ok: Callable[[str], bool]
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise check.fail(path, value, "a list of " + what)
    return [check.string(path, item, what, ok) for item in value]


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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


def parse_config(text: str, base_dir: Path | None = None) -> Config:
    """Validate a YAML document into a Config; relative paths resolve against `base_dir`."""
    lines, data = load_document(text)
    if data is None:
        raise ConfigError("the file is empty: expected a mapping with 'server', 'cameras', ...")
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid top level {show(data)}: expected a mapping with 'server', 'cameras', ..."
        )
    check = Checker(lines)
    top = check.mapping((), data, ("server", "auth", "log_level", "cameras"))

    defaults = ServerConfig()
    server_keys = [f.name for f in dataclasses.fields(ServerConfig) if not f.name.startswith("tls")]
    srv = check.mapping(("server",), top.get("server"), (*server_keys, "tls"))
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
        _is_ip_address,
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
    log_level = check.choice(("log_level",), top.get("log_level", "info"), LOG_LEVELS)

    cameras_value = top.get("cameras", {TESTPATTERN: {}})
    if not isinstance(cameras_value, dict) or not cameras_value:
        raise check.fail(("cameras",), cameras_value, "a mapping of camera names to settings")
    cameras = tuple(
        _parse_camera(check, name, settings) for name, settings in cameras_value.items()
    )
    auth = _parse_auth(check, top.get("auth"), base_dir)
    return Config(server=server, auth=auth, log_level=log_level, cameras=cameras)


def _parse_auth(check: Checker, value: object, base_dir: Path | None) -> AuthConfig:
    d = AuthConfig()
    auth = check.mapping(("auth",), value, tuple(f.name for f in dataclasses.fields(AuthConfig)))

    def path(key: str, default: Path | None) -> Path | None:
        raw = auth.get(key, default)
        if raw is None or isinstance(raw, Path):
            return raw
        check.string(("auth", key), raw, "a file path", lambda s: bool(s) and "\0" not in s)
        result = Path(raw)
        return base_dir / result if not result.is_absolute() and base_dir else result

    base_url = auth.get("base_url", d.base_url)
    if base_url is not None:
        check.string(
            ("auth", "base_url"),
            base_url,
            "a URL like 'https://cam.example.org' (scheme://host[:port][/path])",
            lambda s: re.fullmatch(r"https?://[^/\s]+(/\S*)?", s) is not None,
        )
        base_url = base_url.rstrip("/")
    users_file = path("users_file", d.users_file)
    assert users_file is not None
    return AuthConfig(
        users_file=users_file,
        state_directory=path("state_directory", d.state_directory),
        session_lifetime=check.number(
            ("auth", "session_lifetime"),
            auth.get("session_lifetime", d.session_lifetime),
            60,
            366 * 86400,
        ),
        base_url=base_url,
        lock_after=check.integer(
            ("auth", "lock_after"), auth.get("lock_after", d.lock_after), 1, 1000
        ),
        lock_duration=check.number(
            ("auth", "lock_duration"), auth.get("lock_duration", d.lock_duration), 0.1, 86400
        ),
    )


def _parse_camera(check: Checker, name: object, value: object) -> CameraConfig:
    path = ("cameras", str(name))
    if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name):
        raise check.fail(path, name, "a camera name of letters, digits, '-' and '_' (at most 64)")
    if value is not None and not isinstance(value, dict):
        raise check.fail(path, value, "a mapping")
    cam: dict[str, Any] = value or {}
    d = CameraConfig()
    source_value = cam.get("source", d.source)
    kind = sources.source_type(source_value) if isinstance(source_value, str) else None
    if kind is None:
        raise check.fail((*path, "source"), source_value, sources.EXPECTED_SOURCE)
    allowed = COMMON_KEYS + kind.keys
    for key in cam:
        if not isinstance(key, str) or key not in allowed:
            owner = sources.key_owner(key)
            note = f" for a {kind.label} source ({key} is a {owner.label} key)" if owner else ""
            raise check.unknown_key(path, key, allowed, note)
    width = check.integer((*path, "width"), cam.get("width", d.width), 16, 7680)
    height = check.integer((*path, "height"), cam.get("height", d.height), 16, 4320)
    # JPEG 4:2:0 chroma planes are half size: odd sizes would need padding everywhere.
    if width % 2:
        raise check.fail((*path, "width"), width, "an even number of pixels")
    if height % 2:
        raise check.fail((*path, "height"), height, "an even number of pixels")
    source, options = kind.parse(check, path, source_value, cam)
    return CameraConfig(
        name=name,
        source=source,
        width=width,
        height=height,
        fps=check.integer((*path, "fps"), cam.get("fps", d.fps), 1, 240),
        quality=check.integer((*path, "quality"), cam.get("quality", d.quality), 1, 100),
        stop_delay=check.number(
            (*path, "stop_delay"), cam.get("stop_delay", d.stop_delay), 0, 3600
        ),
        options=options,
    )


def load_config(path: Path) -> Config:
    """Read and validate the file at `path`; every failure is a one-line ConfigError."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text ({exc.reason})") from None
    try:
        return parse_config(text, base_dir=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_web_root() -> Path:
    """The browser client shipped with the daemon: in the source tree or the installed one."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "web", Path("/usr/share/pyimagestream/web")]
    return next((p for p in candidates if (p / "index.html").is_file()), candidates[-1])
