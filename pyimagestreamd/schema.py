"""Schema: the checks every configuration section is validated with, and the error they raise.

config.py validates each camera's common keys with a `Checker`, serverconfig.py and
authconfig.py their sections, and each source type its own keys, in its own module (see
sources.py), so every error reads the same: the full key path, the bad value, what was
expected and the YAML line. No I/O; imports nothing of the project, so source modules may
use it without importing config.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(Exception):
    """The configuration is unusable; the message is one line meant for the user."""


Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """The keys of one source type, validated by that type's schema; frozen and hashable.

    A source type subclasses it with its own fields; `to_dict()` gives them in the shape of
    the YAML file (for --dump-config), which is also where secrets are redacted.
    """

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def dotted(path: Path) -> str:
    """A key path for a message: `cameras.küche.fps`; a key that would break the one line
    (a newline, a NUL, a control character) is shown quoted and escaped instead."""
    return ".".join(part if part.isprintable() else repr(part) for part in path)


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Checker:
    """Validates one parsed document; knows the line of every key for error messages."""

    def __init__(self, lines: Mapping[Path, int]) -> None:
        self.lines = lines

    def where(self, path: Path) -> str:
        line = self.lines.get(path)
        return f" (line {line})" if line else ""

    def fail(self, path: Path, value: object, expected: str) -> ConfigError:
        return ConfigError(
            f"{dotted(path)}: invalid value {show(value)}: expected {expected}{self.where(path)}"
        )

    def unknown_key(
        self, path: Path, key: object, allowed: tuple[str, ...], note: str = ""
    ) -> ConfigError:
        full = (*path, str(key))
        return ConfigError(
            f"{dotted(full)}: unknown key{note}: expected one of {', '.join(allowed)}"
            f"{self.where(full)}"
        )

    def mapping(self, path: Path, value: object, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, value, "a mapping")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                raise self.unknown_key(path, key, allowed)
        return value

    def integer(self, path: Path, value: object, low: int, high: int) -> int:
        # bool is an int subclass in Python, but `fps: yes` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(path, value, f"an integer {low}..{high}")
        return value

    def number(self, path: Path, value: object, low: float, high: float) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:  # type: ignore[arg-type]
            raise self.fail(path, value, f"a number of seconds {low:g}..{high:g}")
        return float(value)  # type: ignore[arg-type]

    def choice(self, path: Path, value: object, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, value, "one of " + ", ".join(choices))
        return value

    def string(self, path: Path, value: object, what: str, ok: Callable[[str], bool]) -> str:
        if not isinstance(value, str) or not ok(value):
            raise self.fail(path, value, what)
        return value
