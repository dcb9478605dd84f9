"""A V4L2 device's controls: described for /api/state, set and read back.

Used by the V4L2 source (v4l2.py) in its capture thread: at open for the configured
controls (`apply_configured`), and between reads for the changes the settings API hands
over (controls.py); by `--list-cameras` (cameralist.py) to show them. A control is known
by its config name (`control_key`), the one `v4l2-ctl` prints.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "v4l2py is no longer being maintained", UserWarning)
    from v4l2py import device as v4l2

from pyimagestreamd.cameratypes import CameraError
from pyimagestreamd.controls import Applied, ControlError, check_value

log = logging.getLogger(__name__)


def control_key(name: str) -> str:
    """A control's name as the config and v4l2-ctl spell it ("Y'CbCr Encoding": y_cbcr_encoding)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def control_type(ctrl: Any) -> str:
    """The kind of widget a control is: "int", "bool", "menu", or another (not settable)."""
    if isinstance(ctrl, v4l2.BooleanControl):
        return "bool"
    if isinstance(ctrl, v4l2.MenuControl):
        return "menu"
    if isinstance(ctrl, v4l2.BaseNumericControl):
        return "int"
    return type(ctrl).__name__.removesuffix("Control").lower() or "other"


def device_controls(device: Any) -> dict[str, Any]:
    """The device's controls that have a value, by config name."""
    out = {}
    for ctrl in device.controls.values():
        if hasattr(ctrl, "default") and not isinstance(ctrl, v4l2.CompoundControl):
            out[control_key(ctrl.name)] = ctrl
    return out


def control_state(ctrl: Any) -> dict[str, Any]:
    """One control's type, range and value, for /api/state and --list-cameras."""
    entry: dict[str, Any] = {
        "type": control_type(ctrl),
        "min": ctrl.minimum,
        "max": ctrl.maximum,
        "step": ctrl.step,
        "read_only": bool(ctrl.is_flagged_read_only),
        "inactive": bool(ctrl.is_flagged_inactive),
    }
    try:
        entry["default"] = int(ctrl.default)
        value = ctrl.value
        entry["value"] = None if value is None else int(value)
    except (OSError, ValueError, TypeError) as exc:
        entry["error"] = str(exc)
    if isinstance(ctrl, v4l2.MenuControl):
        entry["menu"] = {str(k): v for k, v in ctrl.data.items()}
    return entry


def set_values(controls: dict[str, Any], values: dict[str, int]) -> Applied:
    """Set `values` in order on the device and read each back; errors by control name.

    Checked again here, against the driver's ranges now: values restored from the state
    file were not checked by the API, and a re-plugged camera may be another model."""
    applied, errors = {}, {}
    for name, value in values.items():
        ctrl = controls.get(name)
        if ctrl is None:
            errors[name] = "no such control on this camera"
            continue
        try:
            checked = check_value(name, control_state(ctrl), value)
            ctrl.value = checked
            applied[name] = int(ctrl.value)
        except ControlError as exc:
            errors[name] = str(exc)
        except (OSError, AttributeError, ValueError, TypeError) as exc:
            # An inactive control (exposure while auto-exposure is on) is refused.
            errors[name] = f"the driver refused it: {exc}"
    return Applied(applied, errors)


def apply_configured(
    controls: dict[str, Any], configured: Iterable[tuple[str, int]], camera: str
) -> None:
    """Set the YAML's `controls:` of camera `camera` at open, in order.

    A control the camera does not have is a config error (CameraError naming the key and
    the controls it has); a value the driver refuses is only a warning."""
    for name, value in configured:
        ctrl = controls.get(name)
        if ctrl is None:
            have = ", ".join(sorted(controls)) or "none"
            raise CameraError(
                f"config error: cameras.{camera}.controls.{name}: camera {camera} has no "
                f"control '{name}' (it has: {have})"
            )
        try:
            ctrl.value = value
        except (OSError, AttributeError, ValueError) as exc:
            # Not fatal: an inactive control (exposure while auto-exposure is on) is
            # refused by the driver, and the picture is still worth showing.
            log.warning("camera %s: cannot set control %s=%d: %s", camera, name, value, exc)
