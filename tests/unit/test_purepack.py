"""sac_node/protocol/purepack.py gives the same bytes and values as msgpack, faster, on hosts without its C code."""

import math

import msgpack
import pytest
from hypothesis import given, strategies as st

from sac_node.protocol import purepack

integers = st.integers(-2**63, 2**64 - 1)  # msgpack's range
values = st.recursive(
    st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8) | integers, inner, max_size=20),
    max_leaves=40)
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(max_size=70000) | st.binary(
    max_size=70000)


@given(values)
def test_same_bytes_as_msgpack(value):
    assert purepack.packb(value) == msgpack.packb(value, use_bin_type=True)


@given(values)
def test_reads_what_msgpack_writes(value):
    assert purepack.unpackb(msgpack.packb(value, use_bin_type=True)) == value


@given(scalars)
def test_long_strings_and_every_integer_width(value):
    data = msgpack.packb(value, use_bin_type=True)
    assert purepack.packb(value) == data and purepack.unpackb(data) == value


@pytest.mark.parametrize("size", [15, 16, 65535, 65536])
def test_container_header_widths(size):
    for value in (list(range(size)), {i: None for i in range(size)}):
        data = msgpack.packb(value)
        assert purepack.packb(value) == data and purepack.unpackb(data) == value


def test_float32_and_nan_read_like_msgpack():
    assert purepack.unpackb(msgpack.packb(1.5, use_single_float=True)) == 1.5
    assert math.isnan(purepack.unpackb(purepack.packb(float("nan"))))


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"\x92\x01", b"\xa5abc", b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
    b"\x01\x02",                   # two values, not one
    b"\xd4\x01\x02",               # an ext type: not used on the wire
    b"\xa2\xff\xfe",               # a str that is not UTF-8
    b"\x81\x90\xc0",               # a map keyed by a list
    b"\x91" * 100000 + b"\xc0",    # nested past the recursion limit
])
def test_garbage_is_a_format_error(data):
    with pytest.raises(purepack.FormatError):
        purepack.unpackb(data)


def test_unknown_types_are_refused_like_msgpack():
    with pytest.raises(TypeError):
        purepack.packb(object())
    with pytest.raises(OverflowError):
        purepack.packb(2**64)
