"""Arrow string arrays as numpy arrays, for the compiled (numba) kernels that read and build them.

A kernel gets a string array as its UTF-8 bytes and each string's start (one more: the end), reads
them without a Python object per string, and writes its output into buffers taken from Arrow's
memory pool, which become the new array's buffers as they are (no copy, and memory the pool reuses
rather than pages the kernel would fault in afresh for every batch).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def utf8_buffers(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array of any Arrow string type (no nulls) and each string's start
    in them (one more: the end)."""
    array = one_chunk(array.cast(pa.large_string()))
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    return (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)), offsets


def one_chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`array` as one Array. (`ChunkedArray.combine_chunks` of no chunks converts an empty Python
    list, which makes pyarrow import pandas.)"""
    if isinstance(array, pa.Array):
        return array
    return array.combine_chunks() if array.num_chunks else pa.nulls(0, array.type)


def integers(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer array without nulls as a numpy view of its values (no copy; and, unlike
    `Array.to_numpy`, without pyarrow importing pandas, ~0.4 s holding the GIL, the first time)."""
    array = one_chunk(array)
    if not pa.types.is_integer(array.type) or array.null_count:
        raise TypeError(f"expected integers without nulls, got {array.type} with {array.null_count} nulls")
    values = np.frombuffer(array.buffers()[1], dtype=np.dtype(str(array.type)))
    return values[array.offset : array.offset + len(array)]


def allocate(count: int, dtype: type[np.generic]) -> tuple[pa.Buffer, np.ndarray]:
    """`count` values of `dtype` in a buffer of Arrow's pool, and the same memory as a numpy array to fill."""
    buffer = pa.allocate_buffer(count * np.dtype(dtype).itemsize)
    return buffer, np.frombuffer(buffer, dtype=dtype)


@intrinsic
def _memcpy(typingctx, dst, at, src, lo, hi):  # noqa: ANN001, ANN202 - numba's typing signature
    """dst[at : at + hi - lo] = src[lo:hi] as one memcpy."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        dst_array = context.make_array(signature.args[0])(context, builder, args[0])
        src_array = context.make_array(signature.args[2])(context, builder, args[2])
        to, start = builder.gep(dst_array.data, [args[1]]), builder.gep(src_array.data, [args[3]])
        cgutils.raw_memcpy(builder, to, start, builder.sub(args[4], args[3]), 1)

    return types.void(dst, at, src, lo, hi), codegen


@intrinsic
def _load_u64(typingctx, data, at):  # noqa: ANN001, ANN202 - numba's typing signature
    """The 8 bytes data[at : at + 8] as one uint64, one unaligned load."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = builder.bitcast(builder.gep(array.data, [args[1]]), context.get_value_type(types.uint64).as_pointer())
        return builder.load(pointer, align=1)

    return types.uint64(data, at), codegen


@numba.njit(inline="always")
def read_u64(data: np.ndarray, at: int) -> np.uint64:
    """data[at : at + 8] (uint8) as a little-endian uint64, as xxh64 reads its input: one load where
    numba would otherwise shift and add each byte (xxh64 over long texts runs ~4x faster). The hosts
    numba builds for (x86-64, AArch64) are little-endian."""
    return _load_u64(data, at)


@numba.njit(inline="always")
def put_bytes(dst: np.ndarray, at: int, src: np.ndarray, lo: int, hi: int) -> int:
    """Copy src[lo:hi] into dst at `at`; returns where the copy ends. One memcpy: a slice assignment
    in numba costs ~0.4 us a call, which for short strings is most of the time."""
    _memcpy(dst, at, src, lo, hi)
    return at + hi - lo
