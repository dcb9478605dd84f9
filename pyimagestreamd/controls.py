"""Camera controls set at runtime: validation, and the hand-over to the capture thread.

The settings API (controlapi.py) validates a change against the control's description as
/api/state lists it (type, min/max/step, menu) and hands it to the camera's
`ControlRequests`; the capture thread, which alone touches the device, takes the pending
values between two reads, applies them through its source's `set_controls` hook, reads
them back from the driver and answers each waiting request with that `Applied` result.
The values asked for are also kept (`wanted`): a camera that is asleep, offline or
restarted gets them again at its next open, after the configured ones.

No I/O and no asyncio: the requests are `concurrent.futures.Future`s, which the event loop
awaits through `asyncio.wrap_future`. `ControlRequests` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

# Control types as /api/state names them; only these can be set from the page.
SETTABLE_TYPES = ("int", "bool", "menu")
# Requests waiting for the capture thread at once (each is one HTTP request of an admin).
MAX_WAITING = 32
# Controls one request may set, and how many a camera keeps: drivers have a few dozen.
MAX_CONTROLS = 64


class ControlError(Exception):
    """A change that cannot be applied; the message names the control."""


class BusyError(Exception):
    """Too many requests wait for the capture thread already."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What the driver holds after a change: the value read back, or why it failed."""

    values: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def is_settable(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") in SETTABLE_TYPES and not spec.get("read_only")


def check_value(name: str, spec: Mapping[str, Any], value: object) -> int:
    """`value` as the integer the driver takes for control `name`; ControlError if invalid."""
    kind = spec.get("type")
    if not is_settable(spec):
        raise ControlError(f"{name}: this control cannot be set (type {kind or 'unknown'})")
    if kind == "bool":
        if isinstance(value, int) and value in (0, 1):  # True and False are ints too
            return int(value)
        raise ControlError(f"{name}: invalid value {value!r}: expected true or false")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{name}: invalid value {value!r}: expected an integer")
    if kind == "menu":
        menu = spec.get("menu") or {}
        if str(value) not in menu:
            choices = ", ".join(f"{k} ({v})" for k, v in menu.items())
            raise ControlError(f"{name}: invalid value {value}: expected one of {choices}")
        return value
    low, high, step = int(spec["min"]), int(spec["max"]), max(1, int(spec.get("step") or 1))
    if not low <= value <= high:
        raise ControlError(f"{name}: invalid value {value}: expected {low}..{high}")
    if (value - low) % step:
        expected = f"{low}..{high} in steps of {step}"
        raise ControlError(f"{name}: invalid value {value}: expected {expected}")
    return value


def validate(specs: Mapping[str, Mapping[str, Any]], changes: object) -> dict[str, int]:
    """The checked values of a change request (JSON object name -> value), in its order."""
    if not isinstance(changes, dict) or not changes:
        raise ControlError("expected a JSON object of control names and values")
    if len(changes) > MAX_CONTROLS:
        raise ControlError(f"more than {MAX_CONTROLS} controls in one request")
    out = {}
    for name, value in changes.items():
        spec = specs.get(name)
        if spec is None:
            have = ", ".join(sorted(n for n, s in specs.items() if is_settable(s))) or "none"
            raise ControlError(f"{str(name)[:64]}: no such control (this camera has: {have})")
        out[name] = check_value(name, spec, value)
    return out


def defaults(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each settable control's driver default."""
    return {
        name: int(spec["default"])
        for name, spec in specs.items()
        if is_settable(spec) and spec.get("default") is not None
    }


class ControlRequests:
    """One camera's pending and kept control values; any thread may call it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._reset = False
        self._waiting: list[Future[Applied | None]] = []
        # Set by a capture thread while it waits rather than reads (the event loop reads
        # its frames: camera.py): a request wakes it, instead of waiting up to READ_TIMEOUT.
        self.wake: threading.Event | None = None

    def wanted(self) -> dict[str, int]:
        """The values set from the page since the start (or the last reset): what "save" keeps."""
        with self._lock:
            return dict(self._wanted)

    def restore(self, values: Mapping[str, int]) -> None:
        """Keep saved values, applied at the camera's next open (daemon start)."""
        with self._lock:
            self._wanted = dict(list(values.items())[:MAX_CONTROLS])

    def request(self, values: Mapping[str, int], *, reset: bool = False) -> Future[Applied | None]:
        """Ask the capture thread for `values`; the future gets the values read back, or
        None if the camera stopped or failed before it could apply them (they are kept).

        `reset` first forgets the kept values and returns every control to its default
        (the source's `default_controls`: the configured value, else the driver's)."""
        future: Future[Applied | None] = Future()
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                raise BusyError(f"{MAX_WAITING} changes are waiting for the camera already")
            self._add(values, reset)
            self._waiting.append(future)
        wake = self.wake
        if wake is not None:
            wake.set()
        return future

    def keep(self, values: Mapping[str, int], *, reset: bool = False) -> None:
        """Keep `values` for the next open without waiting (the camera is asleep)."""
        with self._lock:
            self._add(values, reset)

    def _add(self, values: Mapping[str, int], reset: bool) -> None:
        if reset:
            self._wanted.clear()
            self._pending.clear()
            self._reset = True
        # validate() bounds one request; this bounds what accumulates over many.
        if len({**self._wanted, **values}) > MAX_CONTROLS:
            raise BusyError(f"more than {MAX_CONTROLS} controls kept for one camera")
        self._wanted.update(values)
        self._pending.update(values)

    # -- the capture thread ----------------------------------------------------------------

    def take(self, opening: bool) -> tuple[bool, dict[str, int], list[Future[Applied | None]]]:
        """What to apply now: (reset first?, values, the requests to answer).

        At an open, every kept value (the device may have been reset or re-plugged);
        between reads, only what changed since the last time."""
        with self._lock:
            values = dict(self._wanted) if opening else dict(self._pending)
            taken = (self._reset, values, self._waiting)
            self._pending, self._reset, self._waiting = {}, False, []
        return taken

    def settle_unapplied(self) -> None:
        """Answer waiting requests with None: the camera cannot apply them now (offline,
        stopping); the values stay kept for the next open."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for future in waiting:
            answer(future, None)


def answer(future: Future[Applied | None], result: Applied | None) -> None:
    """Resolve a request, unless its HTTP handler gave up waiting (and cancelled it)."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(result)
