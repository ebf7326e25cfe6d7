"""The one reader of sample rows (filter's input, mix's sources) and of JSONL lines (ingest's too).

Rows are checked against the sample schema (`datakit.schema.SAMPLE_SCHEMA`), never typed by
inference over a whole file: one bad line or value is one `Reject` naming its file, line (or row),
field and reason, and the other rows go on. A value is coerced only where nothing is lost (an
integer written as "3" or 3.0, a number where text is expected); anything else is a reject.
Arrow input (Parquet, Hub) is checked per column: a column already of its schema type costs a
type comparison and a null count, and only a column of another type is converted value by value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import polars as pl
import pyarrow as pa

from datakit.errors import DatakitError, RowError
from datakit.language_codes import LANGUAGE_SCRIPT, base_language
from datakit.schema import KINDS, SAMPLE_SCHEMA, VERIFIERS

KEY = ("prompt_id", "sample_index")
FIELDS = {f.name: f for f in SAMPLE_SCHEMA}
INTEGER = re.compile(r"\s*[-+]?\d+\s*")


@dataclass
class Reject:
    """An input row that cannot be used, and why. `unit` says what `line` counts: "line" (1-based
    line of a JSONL file, or row of a prompt table) or "row" (0-based row of a Parquet file)."""

    file: str
    line: int
    field: str | None
    reason: str
    raw: str
    unit: str = "line"

    def message(self) -> str:
        where = f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file} row {self.line}"
        return f"{where}: field {self.field!r}: {self.reason}" if self.field else f"{where}: {self.reason}"

    def record(self) -> dict[str, Any]:
        """The reject as a line of a stage's rejects.jsonl."""
        return {"file": self.file, self.unit: self.line, "field": self.field, "reason": self.reason, "raw": self.raw}


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    from datakit.dataset import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(r.record(), ensure_ascii=False) + "\n" for r in rejects))


# --- JSONL, line by line -----------------------------------------------------------------------------


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str]]:
    """(line number, parsed value or RowError, the line's text) per non-blank line. A line that is not
    UTF-8 or not JSON becomes a RowError naming where (bytes are never silently replaced); a file that
    cannot be read at all is a DatakitError naming the line it stopped at."""
    offset, number = 0, 0
    try:
        with path.open("rb") as f:
            for number, data in enumerate(f, start=1):
                start, offset = offset, offset + len(data)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    reason = f"not UTF-8: byte 0x{data[e.start]:02x} at byte offset {start + e.start} of the file (byte {e.start + 1} of the line)"
                    yield number, RowError(None, reason), data.decode("utf-8", "replace").rstrip("\r\n")
                    continue
                text = (text.removeprefix("\ufeff") if number == 1 else text).rstrip("\r\n")  # a byte-order mark is not data
                if not text.strip():
                    continue
                try:
                    yield number, json.loads(text), text
                except json.JSONDecodeError as e:
                    yield number, RowError(None, f"invalid JSON: {e.msg} at column {e.colno}"), text
    except OSError as e:
        raise DatakitError(f"{path}: cannot read it (stopped at line {number + 1}, byte offset {offset}): {e.strerror or e}") from e


# --- values ------------------------------------------------------------------------------------------


def language_problem(code: str) -> str | None:
    """Why `code` is not a language the language filter knows (None when it is): its base code, as
    that filter reads it ('zh-Hans' -> 'zh'), must have a known script."""
    if base_language(code) in LANGUAGE_SCRIPT:
        return None
    return f"unknown language code {code!r}; the language filter knows {', '.join(sorted(LANGUAGE_SCRIPT))} (ISO 639-1, optionally with a region: en-US, zh-Hans)"


def _messages_problem(turns: list[dict[str, Any]]) -> str | None:
    if not turns:
        return "expected a non-empty list of {role, content} turns"
    bad = next((i for i, t in enumerate(turns) if t is None or t.get("role") is None or t.get("content") is None), None)
    return None if bad is None else f"turn {bad}: expected {{role: str, content: str}}"


# Checks of a column's values beyond their type (each: value -> problem or None).
VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "kind": lambda v: None if v in KINDS else f"expected one of {', '.join(KINDS)}, got {v!r}",
    "verifier": lambda v: None if v in VERIFIERS else f"expected one of {', '.join(VERIFIERS)}, got {v!r}",
    "language": language_problem,
    "messages": _messages_problem,
}


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def coerce(value: Any, type_: pa.DataType, name: str) -> Any:
    """`value` as a value of `type_`, where nothing is lost; a RowError naming `name` otherwise (None
    passes: the caller knows whether the column may be null)."""
    if value is None:
        return None
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise RowError(name, f"expected text, got {_shown(value)}")
    if pa.types.is_integer(type_):
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and INTEGER.fullmatch(value):
            number = int(value)
        if number is None:
            raise RowError(name, f"expected an integer, got {_shown(value)}")
        limit = 2 ** (type_.bit_width - 1)
        if not -limit <= number < limit:
            raise RowError(name, f"{number} is out of range for {type_}")
        return number
    if pa.types.is_floating(type_):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise RowError(name, f"expected a number, got {_shown(value)}")
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        if not isinstance(value, list):
            raise RowError(name, f"expected a list, got {_shown(value)}")
        return [coerce(v, type_.value_type, f"{name}[{i}]") for i, v in enumerate(value)]
    if pa.types.is_struct(type_):
        names = [f.name for f in type_]
        if not isinstance(value, dict):
            raise RowError(name, f"expected an object with {', '.join(names)}, got {_shown(value)}")
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise RowError(name, f"unknown field(s) {unknown}; expected {', '.join(names)}")
        return {f.name: coerce(value.get(f.name), f.type, f"{name}.{f.name}") for f in type_}
    return value


def check_row(row: Any, fields: list[pa.Field], shown: dict[str, str]) -> dict[str, Any]:
    """The row with its schema columns coerced and checked (others as they are); a RowError names the
    first bad field by the input's own column name (`shown`: schema column -> input column)."""
    if not isinstance(row, dict):
        raise RowError(None, f"expected a JSON object, got {type(row).__name__}")
    out = dict(row)
    for f in fields:
        name = shown.get(f.name, f.name)
        value = coerce(row.get(f.name), f.type, name)
        if value is None and not f.nullable:
            raise RowError(name, "missing" if f.name not in row else "null, but the sample schema requires a value")
        problem = VALUE_CHECKS[f.name](value) if value is not None and f.name in VALUE_CHECKS else None
        if problem:
            raise RowError(name, problem)
        out[f.name] = value
    return out


# --- reading a source --------------------------------------------------------------------------------


@dataclass
class Rows:
    """What a reader got from one input: the usable rows (typed to the schema's columns, others as
    read), where each came from (`origin`: file, unit, number), and the rejects."""

    table: pa.Table
    origin: list[tuple[str, str, int]]
    rejects: list[Reject]


def check_mapping(mapping: dict[str, str], columns: list[str], where: str) -> None:
    """Refuse a mapping from an input column that does not exist, before any work."""
    missing = {dst: src for dst, src in mapping.items() if src not in columns}
    if missing:
        named = ", ".join(f"--map {dst}={src}" for dst, src in missing.items())
        raise DatakitError(f"{where}: {named}: the input has no column {', '.join(repr(s) for s in missing.values())}; its columns are {sorted(columns)}")


def read_jsonl(path: Path, mapping: dict[str, str] | None = None, samples: bool = True) -> Rows:
    """Every line of a JSONL file of samples: a typed row, or a reject naming line, field and reason.
    Schema columns are checked where the file has them (a column no row has is the caller's
    question: derived, or missing for the chain); `samples=False` checks only that each line is a
    JSON object (rows of another shape, checked by their reader: an SFT set)."""
    mapping = mapping or {}
    parsed = list(iter_jsonl(path))
    columns = list(dict.fromkeys(k for _, row, _ in parsed if isinstance(row, dict) for k in row))
    check_mapping(mapping, columns, str(path))
    renamed = {src: dst for dst, src in mapping.items()}
    fields = [FIELDS[c] for c in dict.fromkeys(renamed.get(c, c) for c in columns) if c in FIELDS and samples]
    rows, origin, rejects = [], [], []
    for number, row, raw in parsed:
        try:
            if isinstance(row, RowError):
                raise row
            if isinstance(row, dict):
                row = {renamed.get(k, k): v for k, v in row.items()}
            rows.append(check_row(row, fields, mapping))
            origin.append((str(path), "line", number))
        except RowError as e:
            rejects.append(Reject(str(path), number, e.field, e.reason, raw))
    return Rows(_table(rows, fields, [renamed.get(c, c) for c in columns]), origin, rejects)


def _table(rows: list[dict[str, Any]], fields: list[pa.Field], columns: list[str]) -> pa.Table:
    """Checked rows as a table: schema columns with their types, other columns typed by Arrow (as
    JSON text where their values have no common type, so nothing is dropped)."""
    typed = {f.name: f for f in fields}
    arrays, names = [], []
    for name in dict.fromkeys(columns):
        values = [row.get(name) for row in rows]
        if name in typed:
            arrays.append(pa.array(values, type=typed[name].type))
        else:
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays.append(pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string()))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})


def holds(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column of type `found` holds values of `expected` as they are (string, large_string
    and string_view alike; lists and structs by their values; any integer width)."""
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    if any(t(expected) for t in text):
        return any(t(found) for t in text)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(found)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(found) or pa.types.is_integer(found)
    if pa.types.is_list(expected) or pa.types.is_large_list(expected):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and holds(found.value_type, expected.value_type)
    if pa.types.is_struct(expected):
        inner = {f.name: f.type for f in found} if pa.types.is_struct(found) else None
        return inner is not None and set(inner) <= {f.name for f in expected} and all(holds(inner[f.name], f.type) for f in expected if f.name in inner)
    return found.equals(expected)


def check_schema(schema: pa.Schema, where: str) -> None:
    """Refuse a typed file (a stage folder's shard) whose schema columns are of another type: checked
    once per file, not per row."""
    for name in schema.names:
        if name in FIELDS and not holds(schema.field(name).type, FIELDS[name].type):
            raise DatakitError(
                f"{where}: column {name!r} is {schema.field(name).type}, the sample schema has {FIELDS[name].type} (data/README.md); "
                "a stage folder is read as typed: rewrite it, or pass its rows as a .jsonl or .parquet file to have bad rows rejected one by one"
            )


def conform(table: pa.Table, check: bool = True) -> tuple[pa.Table, dict[int, tuple[str, str]]]:
    """A table's schema columns in their schema types, and per bad row (0-based) its first (field,
    reason); a bad value reads as null. Columns already of their type are only counted for nulls
    and checked on their distinct values (`check`: rows read before and found sound need neither)."""
    problems: dict[int, tuple[str, str]] = {}
    for name in table.column_names:
        f = FIELDS.get(name)
        if f is None:
            continue
        column = table.column(name)
        if not holds(column.type, f.type):
            values = []
            for i, value in enumerate(column.to_pylist()):
                try:
                    values.append(coerce(value, f.type, name))
                except RowError as e:
                    problems.setdefault(i, (e.field or name, e.reason))
                    values.append(None)
            column = pa.chunked_array([pa.array(values, f.type)])
            table = table.set_column(table.column_names.index(name), name, column)
        if check:
            check_column(column, name, problems)
    return table, problems


def check_frame(frame: pl.DataFrame) -> dict[int, tuple[str, str]]:
    """`conform`'s checks of a polars frame whose schema columns already hold their types (a typed
    Parquet file read by polars): per bad row (0-based) its first (field, reason)."""
    problems: dict[int, tuple[str, str]] = {}
    for name in frame.columns:
        if name in FIELDS:
            check_column(frame[name], name, problems)
    return problems


def check_column(column: pa.ChunkedArray | pl.Series, name: str, problems: dict[int, tuple[str, str]]) -> None:
    """A schema column's nulls where the schema requires a value, then its VALUE_CHECKS; an Arrow
    column is handed to polars only where there is something to look at."""
    arrow = isinstance(column, pa.ChunkedArray)
    if not FIELDS[name].nullable and (column.null_count if arrow else column.null_count()):
        nulls = pl.from_arrow(column.is_null()) if arrow else column.is_null()
        for i in nulls.arg_true().to_list():  # type: ignore[union-attr]
            problems.setdefault(i, (name, "null, but the sample schema requires a value"))
    if name in VALUE_CHECKS:
        _check_values(pl.from_arrow(column) if arrow else column, name, problems)  # type: ignore[arg-type]


def _check_values(series: pl.Series, name: str, problems: dict[int, tuple[str, str]]) -> None:
    """VALUE_CHECKS over a column: each distinct value once (messages: by length and null turns)."""
    if name == "messages":
        empty = series.list.len() == 0
        broken = series.list.eval(pl.element().struct.field("role").is_null() | pl.element().struct.field("content").is_null()).list.any()
        for i in (empty | broken).fill_null(False).arg_true().to_list():
            problems.setdefault(i, (name, _messages_problem(series.slice(i, 1).to_list()[0]) or "bad turns"))
        return
    bad = {v: p for v in series.drop_nulls().unique().to_list() if (p := VALUE_CHECKS[name](v))}
    if bad:
        for i in series.is_in(list(bad)).fill_null(False).arg_true().to_list():
            problems.setdefault(i, (name, bad[series[i]]))


def read_table(table: pa.Table, file: str) -> Rows:
    """An Arrow table of samples (a Parquet file, a Hub dataset): its good rows typed, its bad ones rejected."""
    table, problems = conform(table)
    if not problems:
        return Rows(table, [(file, "row", i) for i in range(table.num_rows)], [])
    bad = sorted(problems)
    rejects = [Reject(file, i, *problems[i], json.dumps(table.slice(i, 1).to_pylist()[0], ensure_ascii=False, default=str), unit="row") for i in bad]
    keep = [i for i in range(table.num_rows) if i not in problems]
    return Rows(table.take(pa.array(keep, pa.int64())), [(file, "row", i) for i in keep], rejects)


def repeated_keys(frame: pl.DataFrame, key: tuple[str, ...] = KEY) -> pl.DataFrame:
    """The rows of `frame` (in input order) whose key an earlier row already has, with `_pos`, their
    position in `frame`, and `_first`, the position of that earlier row. Later copies are set aside
    rather than refused: a repeated key is usually two exports concatenated, and the first copy
    is as good as any, while the rest of the file is fine."""
    at = frame.select(*key).with_row_index("_pos")
    first = at.group_by(*key).agg(_first=pl.col("_pos").min())
    return at.join(first, on=list(key), how="left").filter(pl.col("_pos") != pl.col("_first")).sort("_pos")


def duplicate_reason(prompt_id: str, sample_index: int, first: tuple[str, str, int]) -> str:
    file, unit, number = first
    return f"duplicate key (prompt_id {prompt_id!r}, sample_index {sample_index}): first at {file} {unit} {number}; the first copy is kept"
