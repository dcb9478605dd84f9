"""Fuzzing the protocol-2 client-message parser: a message type or a one-line protocol error.

`parse_client_message` is I/O-free, so it is fuzzed directly, with a fixed budget and a
fixed seed: JSON of any shape (with and without a "type"), arbitrary text and bytes, and
nesting deep enough to reach the JSON parser's recursion limit. Crashes found here are
kept as fixed examples below.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import timeout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyimagestreamd.ws_v2 import (
    MAX_ASKED_WIDTH,
    MESSAGE_TYPES,
    ClientProtocolError,
    parse_client_message,
)

FUZZ = settings(
    max_examples=600,
    derandomize=True,
    database=None,
    deadline=timeout(2.0) * 1000,  # ms: a hang shows as a deadline miss
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def check_outcome(message: str | bytes) -> str | None:
    """The property: one of the message types, or a ClientProtocolError of one short line."""
    try:
        parsed = parse_client_message(message)
    except ClientProtocolError as exc:
        text = str(exc)
        assert text and "\n" not in text, text
        # The reason goes into a close frame, whose reason may hold at most 123 bytes.
        assert len(text.encode()) <= 123, text
        return None
    assert parsed.kind in MESSAGE_TYPES
    assert 0 <= parsed.max_width <= MAX_ASKED_WIDTH
    return parsed.kind


@FUZZ
@given(JSON, st.one_of(st.sampled_from(MESSAGE_TYPES), JSON))
def test_json_messages_give_a_type_or_a_protocol_error(extra: Any, kind: Any) -> None:
    """Objects with any "type" and any other keys, and JSON that is no object at all."""
    message = {"type": kind, "extra": extra}
    # "size" needs its max_width, which this message lacks.
    expected = kind if isinstance(kind, str) and kind in MESSAGE_TYPES and kind != "size" else None
    assert check_outcome(json.dumps(message)) == expected
    check_outcome(json.dumps(extra))


@FUZZ
@given(st.one_of(st.integers(), JSON))
def test_size_messages_give_a_width_in_range_or_a_protocol_error(width: Any) -> None:
    """{"type": "size"} with any max_width: an integer 0..MAX_ASKED_WIDTH, or refused."""
    outcome = check_outcome(json.dumps({"type": "size", "max_width": width}))
    valid = isinstance(width, int) and not isinstance(width, bool) and 0 <= width <= MAX_ASKED_WIDTH
    assert outcome == ("size" if valid else None)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_and_bytes_give_a_type_or_a_protocol_error(message: str | bytes) -> None:
    """Any text frame or binary frame a client could send."""
    check_outcome(message)


@FUZZ
@given(st.integers(1, 5000), st.sampled_from(["[", '{"a":', '{"type":[', '[{"type":']))
def test_deep_nesting_gives_a_protocol_error(depth: int, opener: str) -> None:
    """Nesting up to 5,000 levels: the normal protocol error, never RecursionError."""
    assert check_outcome(opener * depth) is None


FOUND = [
    '{"type":' + "[" * 990 + "]" * 990 + "}",  # a deep "type" value, shown in the message
    "[" * 1023,  # issue 8: RecursionError, close 1011, not logged
]


@pytest.mark.parametrize("message", FOUND)
def test_fixed_examples(message: str) -> None:
    """Messages that once crashed the parser (or would have): a protocol error now."""
    assert check_outcome(message) is None
