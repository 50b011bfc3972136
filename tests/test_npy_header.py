"""A Program's `.npy` headers: leac's fast reading of numpy's own layout against numpy's parser (the reference),
and every other header still read, or refused, by numpy's parser."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lea_compiler.program.archive import _CANONICAL_HEADER, _MAX_HEADER_BYTES, _npy_header

DTYPES = ["<i1", "|i1", "<i2", ">i4", "<i8", "|u1", "<u2", "<f2", "<f4", ">f8", "<c8", "|b1", "<U3", "|S5"]


def _header_bytes(dtype: str, shape: tuple[int, ...], fortran: bool, version: tuple[int, int] | None) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": np.dtype(dtype).str, "fortran_order": fortran, "shape": shape}
    if version == (2, 0):
        np.lib.format.write_array_header_2_0(buffer, header)
    else:
        np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _numpy_reads(data: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    handle = io.BytesIO(data)
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(handle)
    return tuple(shape), bool(fortran), dtype


@settings(max_examples=200, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 10**12), max_size=5).map(tuple),
       fortran=st.booleans(), version=st.sampled_from([(1, 0), (2, 0)]))
def test_numpy_s_headers_read_as_numpy_reads_them(dtype, shape, fortran, version) -> None:
    data = _header_bytes(dtype, shape, fortran, version)
    handle = io.BytesIO(data + b"\x00" * 7)
    assert _npy_header(handle) == _numpy_reads(data)
    assert handle.tell() == len(data)  # the header read, not the data after it


@pytest.mark.parametrize("array", [np.zeros((25, 25), np.int8), np.arange(6.0).reshape(2, 3).T, np.float32(3.5),
                                   np.zeros(0, np.int64), np.zeros((3, 0, 2), np.uint16)])
def test_what_np_save_writes_takes_the_fast_path(array) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    length = int.from_bytes(data[8:10], "little")
    assert _CANONICAL_HEADER.fullmatch(data[10:10 + length])  # the fast path: what the check above compares
    handle = io.BytesIO(data)
    shape, fortran, dtype = _npy_header(handle)
    assert (shape, dtype) == (array.shape, array.dtype) and fortran == (array.flags.f_contiguous
                                                                       and not array.flags.c_contiguous)
    stored = np.frombuffer(data, dtype, offset=handle.tell()).reshape(shape, order="F" if fortran else "C")
    assert np.array_equal(stored, array)


def _raw_header(text: bytes) -> bytes:
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


@pytest.mark.parametrize("text", [
    b"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8', }",  # keys in another order
    b"{'descr':'<f8','fortran_order':False,'shape':(2,3)}",  # no spaces
    b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,3), }",
    b"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2, 3), }",  # a structured dtype
])
def test_other_valid_headers_go_to_numpy_s_parser(text) -> None:
    data = _raw_header(text)
    assert _npy_header(io.BytesIO(data)) == _numpy_reads(data)


@pytest.mark.parametrize("data, message", [
    (b"\x93NUMPZ\x01\x00\x10\x00", "magic"),
    (b"\x93NUMPY\x03\x00\x10\x00", "1.0 or 2.0|version|not one leac writes"),
    (b"\x93NUMPY\x01", "EOF|magic"),
    (_raw_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }"), "negative dimension"),
    (_raw_header(b"{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 3), }"), "fortran_order"),
    (_raw_header(b"__import__('os')"), "malformed node"),  # literal_eval: never evaluated
    (_raw_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }")[:30], "EOF"),
    (b"\x93NUMPY\x02\x00" + (_MAX_HEADER_BYTES + 1).to_bytes(4, "little") + b"{" * 64,
     f"declares {_MAX_HEADER_BYTES + 1} bytes"),
])
def test_bad_headers_are_refused(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        _npy_header(io.BytesIO(data))
