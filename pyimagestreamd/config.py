"""Configuration: /etc/pyimagestream.yaml validated into frozen dataclasses.

The first step of the data flow: everything else is built from a `Config`. Validation is
strict (unknown keys, wrong types and out-of-range values are errors) and every error names
the key path, the bad value, what was expected and the YAML line, because the person reading
it is editing that file. Parsing itself, bounded against hostile documents, is in
yamldoc.py. This module does no I/O beyond reading the one file (at most
MAX_CONFIG_BYTES) and checking that `server.web_root` is a folder with an index.html.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyimagestreamd import sources
from pyimagestreamd.authconfig import AuthConfig, parse_auth
from pyimagestreamd.schema import Checker, ConfigError, SourceOptions, show
from pyimagestreamd.serverconfig import ServerConfig, parse_server
from pyimagestreamd.yamldoc import MAX_CONFIG_BYTES, load_document

__all__ = [
    "AuthConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "ServerConfig",
    "load_config",
    "parse_config",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
TESTPATTERN = sources.TESTPATTERN
# The keys every camera has, whatever its source; the rest belong to the source's type.
COMMON_KEYS = ("source", "width", "height", "fps", "quality", "stop_delay")
# Names appear in URL paths and in the client's #camera= fragment: letters (any script, so
# "küche" works), digits, "-" and "_" need no quoting trouble anywhere.
CAMERA_NAME = re.compile(r"[\w-]{1,64}")


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
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    log_level: str = "info"
    cameras: tuple[CameraConfig, ...] = (CameraConfig(),)

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration, in the shape of the YAML file (for --dump-config)."""
        cameras = {}
        for cam in self.cameras:
            entry: dict[str, Any] = {key: getattr(cam, key) for key in COMMON_KEYS}
            entry.update(cam.options.to_dict())
            cameras[cam.name] = entry
        return {
            "server": self.server.to_dict(),
            "auth": self.auth.to_dict(),
            "log_level": self.log_level,
            "cameras": cameras,
        }


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
    server = parse_server(check, top.get("server"), base_dir)
    log_level = check.choice(("log_level",), top.get("log_level", "info"), LOG_LEVELS)

    cameras_value = top.get("cameras", {TESTPATTERN: {}})
    if not isinstance(cameras_value, dict) or not cameras_value:
        raise check.fail(("cameras",), cameras_value, "a mapping of camera names to settings")
    cameras = tuple(
        _parse_camera(check, name, settings) for name, settings in cameras_value.items()
    )
    auth = parse_auth(check, top.get("auth"), base_dir)
    return Config(server=server, auth=auth, log_level=log_level, cameras=cameras)


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
