"""The booted container shared by the system tests, in the order they are written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from machine import Machine

NEEDED = ("SYSTEST_LEADER", "SYSTEST_DEB", "SYSTEST_DEB_UPGRADE", "SYSTEST_LOGS")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The system tests are steps of one story: keep the file order, never shuffle it."""
    items.sort(key=lambda item: item.path.name != "test_unit.py")


@pytest.fixture(scope="session")
def machine() -> Iterator[Machine]:
    """The fresh Debian that tests/system/run booted with systemd-nspawn."""
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        pytest.fail(
            "the system tests need a booted container: run them with tests/system/run "
            f"(make system-test); missing {', '.join(missing)}",
            pytrace=False,
        )
    box = Machine(int(os.environ["SYSTEST_LEADER"]))
    yield box
    journal = box.run("journalctl --no-pager -b -o short-precise", check=False).stdout
    (Path(os.environ["SYSTEST_LOGS"]) / "journal.log").write_text(journal)


@pytest.fixture(autouse=True)
def _fresh_start_limit(request: pytest.FixtureRequest) -> None:
    """Each test begins with systemd's start counter of the service at zero.

    The tests start the service far more often than anyone would (restarts with new configs,
    the TLS steps, an upgrade), and systemd refuses a sixth start within 10 s
    ("start-limit-hit": the trixie run failed so in the upgrade test, after the TLS test's
    restarts). That limit protects against crash loops, which these tests do not exercise;
    `reset-failed` zeroes it (and NRestarts, which the watchdog tests read within one test).
    """
    if "machine" in request.fixturenames:
        box: Machine = request.getfixturevalue("machine")
        box.run("systemctl reset-failed pyimagestream", check=False)


@pytest.fixture(scope="session")
def debs() -> tuple[Path, Path]:
    """The freshly built package and a rebuilt one with a higher version."""
    return Path(os.environ["SYSTEST_DEB"]), Path(os.environ["SYSTEST_DEB_UPGRADE"])
