"""Fuzzing the config loader: any text gives a Config or a one-line ConfigError, quickly.

Property-based (hypothesis) with a fixed budget and a fixed seed, so `make test` stays
short and every run tries the same documents: mutations of real files, random documents
in the shape of the schema, and soups of YAML's own syntax. Crashes found here are kept
as fixed examples in test_config_examples.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from conftest import TOP, timeout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyimagestreamd.config import Config, ConfigError, parse_config

# A fixed budget: 2,100 documents in all, about 15 s on one core here.
FUZZ = settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=timeout(5.0) * 1000,  # ms: a hang or an expansion shows as a deadline miss
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEEDS = [
    (TOP / "etc" / "pyimagestream.yaml").read_text(),
    "server: {listen: 127.0.0.1, port: 8888, max_clients: 5}\nlog_level: debug\n",
    "cameras:\n  a: &c {width: 640, height: 480, fps: 10}\n  b: *c\n",
    "cameras:\n  v: {source: /dev/video0, format: yuyv, controls: {brightness: 3}}\n",
    "server:\n  allowed_origins: [https://example.org]\n  snapshot_timeout: 2.5\n",
]
# Pieces of YAML syntax that change how everything after them is read.
TOKENS = [
    "[", "]", "{", "}", ",", ":", ": ", "- ", "? ", "&a ", "*a", "&b ", "*b", "<<: ", "!!str ",
    "!!binary ", "!!python/object:os.system ", "!!float ", "!!timestamp ", "|", ">", "'", '"',
    "#", "\n", "\n  ", "\t", "\\", "\0", "\x85", "\ufeff", "%YAML 1.1\n", "---\n", "...\n",
    "~", "null", "yes", "1e999", "-.inf", ".nan", "0x1F", "0o17", "2024-13-01",
    "9" * 5000, "ü", "::", "/", "/etc", "..",
]  # fmt: skip


def check_outcome(text: str) -> None:
    """The property: a Config, or a ConfigError of exactly one line; nothing else."""
    try:
        result = parse_config(text)
    except ConfigError as exc:
        message = str(exc)
        assert message, "empty error message"
        assert "\n" not in message and "\r" not in message, message
        return
    assert isinstance(result, Config)


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(("insert", "delete", "replace", "repeat", "cut")))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif op == "replace":
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        elif op == "repeat":  # a line twice: duplicate keys, or indentation that no longer fits
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            line = text[start : end if end >= 0 else len(text)]
            text = text[:start] + line + "\n" + text[start:]
        else:
            text = text[:at]
    return text


KEYS = {
    "server": ["listen", "port", "web_root", "max_clients", "allowed_origins", "snapshot_timeout"],
    "camera": ["source", "width", "height", "fps", "quality", "stop_delay", "format",
               "yuv_range", "input", "controls", "device", "colour"],
}  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["127.0.0.1", "::", "testpattern", "/dev/video0", "/", "auto", "yuyv"]),
)


def values(depth: int = 3) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4),
        ),
        max_leaves=8,
    )


@st.composite
def schema_shaped(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    """Documents that get past YAML into validation: the right sections, odd values."""
    doc: dict[Any, Any] = {}
    if draw(st.booleans()):
        keys = st.sampled_from(KEYS["server"])
        doc["server"] = draw(st.dictionaries(keys, values(), max_size=4))
    if draw(st.booleans()):
        doc["log_level"] = draw(st.one_of(st.sampled_from(["debug", "info"]), SCALARS))
    if draw(st.booleans()):
        cams = st.dictionaries(
            st.one_of(st.text(max_size=12), st.integers()),
            st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS["camera"]), values())),
            max_size=3,
        )
        doc["cameras"] = draw(st.one_of(cams, values()))
    if draw(st.booleans()):
        doc[draw(st.text(max_size=8))] = draw(values())
    return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))


@FUZZ
@given(mutated())
def test_mutated_files_give_a_config_or_one_line_error(text: str) -> None:
    """Real files with syntax inserted, cut, repeated or replaced: Config or one line."""
    check_outcome(text)


@settings(FUZZ, max_examples=500)
@given(schema_shaped())
def test_schema_shaped_documents_give_a_config_or_one_line_error(text: str) -> None:
    """Documents with the right sections and arbitrary values: Config or one line."""
    check_outcome(text)


@settings(FUZZ, max_examples=600)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_syntax_soup_gives_a_config_or_one_line_error(text: str) -> None:
    """Strings made only of YAML syntax (nesting, anchors, tags, directives): one line at most."""
    check_outcome(text)


def test_seeds_are_valid() -> None:
    """Each seed is a valid config itself, so the mutations start from the real thing."""
    for text in SEEDS:
        assert isinstance(parse_config(text, base_dir=TOP), Config)
