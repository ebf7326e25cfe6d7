"""The assistant turn every row of the mix ends with, R1's format, appended to the row's own turns:

    <think>\\n{reasoning}\\n</think>\\n\\n{answer}

with reasoning and answer stripped as Python's str.strip() strips them, and an empty think block where
the row should not reason. Built in one compiled pass over the Arrow buffers: each text is copied
once into the turn (after the cast of polars' string views to plain strings), where Arrow's compute
functions (trim, join, concatenate, take) copied it four times.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from datakit.arrow_buffers import allocate, integers, one_chunk, put_bytes, utf8_buffers
from datakit.errors import DatakitError
from datakit.schema import MESSAGE

THINK_TEMPLATE = "<think>\n{reasoning}\n</think>\n\n{answer}"
ROLE = "assistant"
# Python's str.strip() whitespace (str.isspace), so an answer counts as empty exactly where it always did
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # U+3000 is the last
_IS_SPACE = np.zeros(0x3001, dtype=np.bool_)
_IS_SPACE[[ord(c) for c in WHITESPACE]] = True
# the text before, between and after reasoning and answer, and the role, as the kernel copies them
_BEFORE, _BETWEEN, _AFTER = (np.frombuffer(part.encode(), dtype=np.uint8) for part in THINK_TEMPLATE.replace("{answer}", "{reasoning}").split("{reasoning}"))
_ROLE = np.frombuffer(ROLE.encode(), dtype=np.uint8)
_WIDE = pa.large_list(pa.struct([("role", pa.large_string()), ("content", pa.large_string())]))  # what the kernels read
_LARGEST = 2**31 - 1  # bytes an output string array (int32 offsets, as the mix's schema has) can hold


def append_r1_turn(messages: pa.Array | pa.ChunkedArray, reasoning: pa.Array | pa.ChunkedArray, answer: pa.Array | pa.ChunkedArray, plain: np.ndarray) -> pa.ListArray:
    """Each row's `messages` (a list of {role, content}, any Arrow string and list types) with the R1
    assistant turn of its `reasoning` and `answer` appended; an empty think block where `plain`."""
    messages = one_chunk(messages.cast(_WIDE))
    turns = integers(messages.offsets)
    (role_data, role_at), (text_data, text_at) = (utf8_buffers(child) for child in messages.values.flatten())
    (reasoning_data, reasoning_at), (answer_data, answer_at) = utf8_buffers(reasoning), utf8_buffers(answer)
    bounds = _stripped_bounds(reasoning_data, reasoning_at, answer_data, answer_at, np.asarray(plain, dtype=np.bool_), _IS_SPACE)
    rows, values = len(turns) - 1, int(turns[-1] - turns[0]) + len(turns) - 1
    text_bytes = int(text_at[turns[-1]] - text_at[turns[0]] + (bounds[:, 1] - bounds[:, 0]).sum() + (bounds[:, 3] - bounds[:, 2]).sum()) + rows * (len(_BEFORE) + len(_BETWEEN) + len(_AFTER))
    role_bytes = int(role_at[turns[-1]] - role_at[turns[0]]) + rows * len(_ROLE)
    if max(text_bytes, role_bytes) > _LARGEST:
        raise DatakitError(f"{rows} conversations hold {text_bytes:,} bytes of text, more than one Arrow string array holds (2 GiB): write smaller source files")
    (list_buffer, list_at), (role_at_buffer, new_role_at), (role_buffer, new_role), (text_at_buffer, new_text_at), (text_buffer, new_text) = (
        allocate(rows + 1, np.int32), allocate(values + 1, np.int32), allocate(role_bytes, np.uint8), allocate(values + 1, np.int32), allocate(text_bytes, np.uint8))
    _fill(turns, role_data, role_at, text_data, text_at, reasoning_data, answer_data, bounds, _ROLE, _BEFORE, _BETWEEN, _AFTER,
          list_at, new_role_at, new_role, new_text_at, new_text)
    turn = pa.StructArray.from_arrays([pa.StringArray.from_buffers(values, role_at_buffer, role_buffer), pa.StringArray.from_buffers(values, text_at_buffer, text_buffer)], fields=list(MESSAGE))
    return pa.ListArray.from_buffers(pa.list_(MESSAGE), rows, [None, list_buffer], children=[turn])


@numba.njit(inline="always")
def _code_point(data: np.ndarray, at: int) -> tuple[int, int]:
    """The character whose UTF-8 encoding starts at data[at], and its length in bytes."""
    lead = np.int64(data[at])
    if lead < 0x80:
        return lead, 1
    if lead < 0xE0:
        return ((lead & 0x1F) << 6) | (data[at + 1] & 0x3F), 2
    if lead < 0xF0:
        return ((lead & 0x0F) << 12) | ((data[at + 1] & 0x3F) << 6) | (data[at + 2] & 0x3F), 3
    return ((lead & 0x07) << 18) | ((data[at + 1] & 0x3F) << 12) | ((data[at + 2] & 0x3F) << 6) | (data[at + 3] & 0x3F), 4


@numba.njit(inline="always")
def _strip(data: np.ndarray, lo: int, hi: int, is_space: np.ndarray) -> tuple[int, int]:
    """data[lo:hi] (valid UTF-8) without its leading and trailing whitespace characters."""
    while lo < hi:
        char, size = _code_point(data, lo)
        if char >= len(is_space) or not is_space[char]:
            break
        lo += size
    while hi > lo:
        last = hi - 1
        while last > lo and (data[last] & 0xC0) == 0x80:  # back over continuation bytes to the character's start
            last -= 1
        char, _ = _code_point(data, last)
        if char >= len(is_space) or not is_space[char]:
            break
        hi = last
    return lo, hi


@numba.njit(nogil=True, cache=True)
def _stripped_bounds(reasoning: np.ndarray, reasoning_at: np.ndarray, answer: np.ndarray, answer_at: np.ndarray, plain: np.ndarray, is_space: np.ndarray) -> np.ndarray:
    """Per row, where its stripped reasoning (empty where `plain`) and answer lie: (lo, hi, lo, hi)."""
    bounds = np.empty((len(plain), 4), dtype=np.int64)
    for r in range(len(plain)):
        bounds[r, 0], bounds[r, 1] = (reasoning_at[r], reasoning_at[r]) if plain[r] else _strip(reasoning, reasoning_at[r], reasoning_at[r + 1], is_space)
        bounds[r, 2], bounds[r, 3] = _strip(answer, answer_at[r], answer_at[r + 1], is_space)
    return bounds


@numba.njit(nogil=True, cache=True)
def _fill(
    turns: np.ndarray, role_data: np.ndarray, role_at: np.ndarray, text_data: np.ndarray, text_at: np.ndarray, reasoning: np.ndarray, answer: np.ndarray,
    bounds: np.ndarray, role: np.ndarray, before: np.ndarray, between: np.ndarray, after: np.ndarray,
    list_at: np.ndarray, new_role_at: np.ndarray, new_role: np.ndarray, new_text_at: np.ndarray, new_text: np.ndarray,
) -> None:
    """Write each row's earlier turns, then its R1 turn, into the new list's offsets and role and content arrays."""
    turn, role_end, text_end = 0, 0, 0
    new_role_at[0], new_text_at[0] = 0, 0
    for r in range(len(turns) - 1):
        list_at[r] = turn
        for earlier in range(turns[r], turns[r + 1]):
            role_end = put_bytes(new_role, role_end, role_data, role_at[earlier], role_at[earlier + 1])
            text_end = put_bytes(new_text, text_end, text_data, text_at[earlier], text_at[earlier + 1])
            turn += 1
            new_role_at[turn], new_text_at[turn] = role_end, text_end
        role_end = put_bytes(new_role, role_end, role, 0, len(role))
        text_end = put_bytes(new_text, text_end, before, 0, len(before))
        text_end = put_bytes(new_text, text_end, reasoning, bounds[r, 0], bounds[r, 1])
        text_end = put_bytes(new_text, text_end, between, 0, len(between))
        text_end = put_bytes(new_text, text_end, answer, bounds[r, 2], bounds[r, 3])
        text_end = put_bytes(new_text, text_end, after, 0, len(after))
        turn += 1
        new_role_at[turn], new_text_at[turn] = role_end, text_end
    list_at[len(turns) - 1] = turn
