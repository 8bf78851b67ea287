"""The frame codec: any segmentation, bad lengths caught at once."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optivex.wire import MAX_FRAME_LENGTH, FrameDecoder, FrameError, encode_frame

frames_st = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=300)), max_size=20)


def test_one_frame_layout() -> None:
    assert encode_frame(12, b"abc") == b"\x00\x00\x00\x07\x00\x00\x00\x0cabc"


def test_empty_payload_is_a_frame() -> None:
    assert FrameDecoder().feed(encode_frame(1, b"")) == [(1, b"")]


def test_byte_by_byte() -> None:
    data = encode_frame(3, b"hello") + encode_frame(5, b"") + encode_frame(7, b"x" * 100)
    decoder = FrameDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == [(3, b"hello"), (5, b""), (7, b"x" * 100)]
    assert decoder.buffered == 0


def test_many_frames_in_one_read() -> None:
    frames = [(i, bytes([i]) * i) for i in range(200)]
    data = b"".join(encode_frame(t, p) for t, p in frames)
    assert FrameDecoder().feed(data) == frames


@given(frames_st, st.lists(st.integers(1, 50), min_size=1))
def test_any_segmentation_gives_the_same_frames(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    data = b"".join(encode_frame(t, p) for t, p in frames)
    decoder = FrameDecoder()
    out: list[tuple[int, bytes]] = []
    pos = 0
    i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += decoder.feed(data[pos : pos + step])
        pos += step
        i += 1
    assert out == frames
    assert decoder.buffered == 0


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_length_below_four_is_rejected_without_the_rest(length: int) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack(">I", length)) == []
    assert isinstance(decoder.error, FrameError)


def test_length_above_limit_is_rejected_before_the_payload() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack(">I", MAX_FRAME_LENGTH + 1)) == []
    assert decoder.error is not None


@pytest.mark.parametrize("bad", [struct.pack(">II", 2, 1), struct.pack(">I", MAX_FRAME_LENGTH + 1)])
def test_frames_before_a_violation_are_returned_and_nothing_after(bad: bytes) -> None:
    decoder = FrameDecoder()
    good = encode_frame(1, b"a") + encode_frame(2, b"b")
    assert decoder.feed(good + bad + encode_frame(3, b"c")) == [(1, b"a"), (2, b"b")]
    assert decoder.error is not None
    assert decoder.feed(encode_frame(4, b"d")) == []


def test_largest_legal_frame_is_accepted() -> None:
    payload = b"\x01" * (MAX_FRAME_LENGTH - 4)
    data = encode_frame(9, payload)
    decoder = FrameDecoder()
    assert decoder.feed(data[:1000]) == []
    assert decoder.feed(data[1000:]) == [(9, payload)]


def test_bad_length_split_over_reads_is_caught_when_complete() -> None:
    decoder = FrameDecoder()
    good = encode_frame(1, b"ok")
    assert decoder.feed(good + b"\x7f\x00") == [(1, b"ok")]
    assert decoder.error is None
    assert decoder.feed(b"\x00\x00") == []
    assert decoder.error is not None


def test_bad_length_after_a_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    decoder.feed(b"\x00\x02")
    assert decoder.error is not None


def test_encode_refuses_oversized_payload() -> None:
    with pytest.raises(ValueError):
        encode_frame(1, b"\0" * MAX_FRAME_LENGTH)


@given(st.binary(max_size=64), st.integers(1, 64))
def test_garbage_never_raises_and_splitting_does_not_matter(data: bytes, step: int) -> None:
    whole = FrameDecoder()
    expected = whole.feed(data)
    split = FrameDecoder()
    got = []
    for i in range(0, len(data), step):
        got += split.feed(data[i : i + step])
    assert got == expected
    assert (whole.error is None) == (split.error is None)


def test_incomplete_and_buffered_report_a_partial_frame_at_most_its_declared_length() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(9, b"p" * 1000)
    assert decoder.feed(encode_frame(1, b"") + frame[:500]) == [(1, b"")]
    assert decoder.incomplete and decoder.buffered == 500
    assert decoder.feed(frame[500:-1]) == []
    assert decoder.buffered == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [(9, b"p" * 1000)]
    assert not decoder.incomplete and decoder.buffered == 0


def test_clear_forgets_a_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(9, b"p" * 1000)[:700])
    decoder.clear()
    assert not decoder.incomplete and decoder.buffered == 0
    assert decoder.feed(encode_frame(2, b"ok")) == [(2, b"ok")]
