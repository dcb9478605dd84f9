"""The keys of a pipeline camera (`source: exec`): validated into PipelineOptions.

Called by config.py through the source registry (sources.py) while a configuration is read,
before any source exists: `command` is a list of arguments or one string split like a shell
does (no shell runs), with bounded `term_timeout` and `frame_timeout`. The source
(pipeline.py) runs the command with them. Pure: no I/O, no processes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from pyimagestreamd.redact import redact
from pyimagestreamd.schema import Checker, Path, SourceOptions

EXEC = "exec"
KEYS = ("command", "term_timeout", "frame_timeout")


@dataclass(frozen=True, slots=True)
class PipelineOptions(SourceOptions):
    command: tuple[str, ...] = ()
    # SIGTERM, then SIGKILL for what is left of the process group after this many seconds.
    term_timeout: float = 2.0
    # No frame for this long: the command is hung; it is ended and started again.
    frame_timeout: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": [redact(arg) for arg in self.command],
            "term_timeout": self.term_timeout,
            "frame_timeout": self.frame_timeout,
        }


def claims(source: str) -> bool:
    return source == EXEC


def parse_options(
    check: Checker, path: Path, source: str, cam: dict[str, Any]
) -> tuple[str, PipelineOptions]:
    d = PipelineOptions()
    cpath = (*path, "command")
    what = "a command: a list of arguments or one string split like a shell does (no shell runs)"
    value = cam.get("command")
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise check.fail(cpath, value, f"{what}; {exc}") from None
    if not isinstance(value, list) or not value:
        raise check.fail(cpath, value, what)
    for arg in value:
        check.string(cpath, arg, "arguments that are strings without NUL", lambda s: "\0" not in s)
    if not value[0]:
        raise check.fail(cpath, value[0], "a program name")
    return source, PipelineOptions(
        command=tuple(value),
        term_timeout=check.number(
            (*path, "term_timeout"), cam.get("term_timeout", d.term_timeout), 0, 4
        ),
        frame_timeout=check.number(
            (*path, "frame_timeout"), cam.get("frame_timeout", d.frame_timeout), 0.5, 600
        ),
    )
