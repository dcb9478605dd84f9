"""Frame: a numbered copy is the same frame with another number, and still immutable."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimagestreamd.frame import Frame

frames = st.builds(
    Frame,
    st.binary(max_size=64),
    st.integers(0, 16384),
    st.integers(0, 16384),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    st.integers(0, 2**40),
    st.booleans(),
)


@given(frames, st.integers(0, 2**63))
def test_with_seq_is_dataclasses_replace_of_the_seq(frame: Frame, seq: int) -> None:
    """Every field as dataclasses.replace() gives it, the JPEG shared, not copied."""
    numbered = frame.with_seq(seq)
    assert numbered == dataclasses.replace(frame, seq=seq)
    assert type(numbered) is Frame
    assert numbered.jpeg is frame.jpeg
    assert dataclasses.astuple(numbered) == (
        *dataclasses.astuple(frame)[:5],
        seq,
        frame.is_placeholder,
    )


def test_a_numbered_frame_is_as_frozen_as_any() -> None:
    """Filling its slots one by one leaves a frame that refuses changes like any other."""
    numbered = Frame(b"j", 4, 2, 1.0, 2.0).with_seq(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        numbered.seq = 4  # type: ignore[misc]
    assert hash(numbered) == hash(dataclasses.replace(numbered))
