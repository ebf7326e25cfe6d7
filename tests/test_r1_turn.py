"""The R1 assistant turn built on Arrow buffers equals the same turn built in Python, for any text."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from datakit.arrow_buffers import integers
from datakit.r1_turn import WHITESPACE, append_r1_turn
from datakit.schema import MESSAGE

# characters a stripped text may begin or end with: ASCII, 2-, 3- and 4-byte UTF-8, every kind of
# whitespace str.strip() removes, and ones it keeps that look alike (zero-width space, U+180E)
ALPHABET = list("ab 9.\n\t") + list(WHITESPACE) + ["é", "ß", "中", "\u200b", "\u180e", "\U0001f600", "\u3001", "\x85x"]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def expected_turns(rows: list[dict]) -> list[list[dict]]:
    return [r["messages"] + [{"role": "assistant", "content": f"<think>\n{'' if r['plain'] else r['reasoning'].strip()}\n</think>\n\n{r['answer'].strip()}"}]
            for r in rows]


def random_rows(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"messages": [{"role": rng.choice(["user", "system", "assistant"]), "content": random_text(rng)} for _ in range(rng.randint(0, 3))],
             "reasoning": random_text(rng), "answer": random_text(rng), "plain": rng.random() < 0.3} for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_the_turn_is_the_python_one_for_random_unicode_text(seed: int) -> None:
    rows = random_rows(seed, 300)
    table = pa.Table.from_pylist(rows, schema=pa.schema([("messages", pa.list_(MESSAGE)), ("reasoning", pa.string()), ("answer", pa.string()), ("plain", pa.bool_())]))
    got = append_r1_turn(table["messages"], table["reasoning"], table["answer"], table["plain"].to_numpy())
    assert got.type == pa.list_(MESSAGE)
    assert got.to_pylist() == expected_turns(rows)


def test_sliced_chunked_and_string_view_input_give_the_same_turns() -> None:
    """What the mix hands over: polars' string views, a table sliced out of a larger one, several chunks."""
    rows = random_rows(7, 120)
    frame = pl.DataFrame(rows)
    views = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    assert pa.types.is_string_view(views.schema.field("reasoning").type)
    sliced = views.slice(17, 60)
    chunked = pa.concat_tables([views.slice(0, 50), views.slice(50)])
    for table, picked in ((views, rows), (sliced, rows[17:77]), (chunked, rows)):
        got = append_r1_turn(table["messages"], table["reasoning"], table["answer"], np.array([r["plain"] for r in picked]))
        assert got.to_pylist() == expected_turns(picked)


def test_no_rows_and_rows_without_earlier_turns() -> None:
    empty = pa.array([], pa.list_(MESSAGE))
    assert append_r1_turn(empty, pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, bool)).to_pylist() == []
    got = append_r1_turn(pa.array([[]], pa.list_(MESSAGE)), pa.array([" r "]), pa.array(["\u3000a"]), np.zeros(1, bool))
    assert got.to_pylist() == [[{"role": "assistant", "content": "<think>\nr\n</think>\n\na"}]]


def test_integers_are_a_view_of_any_slice_or_chunking_and_refuse_nulls_and_other_types() -> None:
    values = pa.array(range(-5, 20), pa.int64())
    for array, expected in ((values, range(-5, 20)), (values.slice(7, 9), range(2, 11)), (pa.chunked_array([values.slice(0, 3), values.slice(3, 2)]), range(-5, 0))):
        assert integers(array).tolist() == list(expected)
    assert integers(pa.array([1, 65535], pa.uint16())).dtype == np.uint16
    assert integers(pa.array([], pa.uint64())).size == 0
    for bad in (pa.array([1, None], pa.int32()), pa.array([1.5]), pa.array(["1"])):
        with pytest.raises(TypeError, match="expected integers"):
            integers(bad)
