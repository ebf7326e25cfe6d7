"""Fault battery (issue 14), input side: bad files, bad types and bad values given to `filter`, `mix`
and `sample`'s ingest. Each case is one bad input; it checks the message a user reads and the row
counts: the bad row goes to rejects.jsonl naming file, line (or row), field and reason, the good
rows go on, and a file that cannot be used at all is refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.dataset import write_shard
from datakit.errors import DatakitError
from datakit.filter import FilterConfig, run_filter
from datakit.ingest import IngestConfig, load_prompts
from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix
from datakit.schema import SAMPLE_SCHEMA

SAMPLING = {"n": 2, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 512, "seed": 0}
QUESTIONS = [
    "A farmer has 17 sheep and buys 12 more at the market on Monday. How many sheep does the farmer have now?",
    "A train leaves at nine and travels for three hours at sixty miles per hour. How far does it go before noon?",
    "Seven friends share forty-two apples equally among themselves after the harvest festival. How many each?",
]


def good(prompt: int, index: int) -> dict[str, Any]:
    """A valid sample row (passes the format filter and the mix's checks)."""
    reasoning = f"I work through problem {prompt} step by step, attempt {index}."
    answer = f"The answer is \\boxed{{{prompt * 10 + index}}}."
    return {
        "prompt_id": f"p{prompt}", "messages": [{"role": "user", "content": QUESTIONS[prompt]}], "domain": "math",
        "kind": "reasoning", "language": "en", "reference": str(prompt * 10), "verifier": "math", "source": "unit",
        "metadata": "{}", "sample_index": index, "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}",
        "reasoning": reasoning, "answer": answer, "finish_reason": "stop", "prompt_tokens": 20, "completion_tokens": 30,
        "generator": "teacher", "sampling": SAMPLING,
    }


GOOD = [good(0, 0), good(0, 1), good(1, 0), good(1, 1)]  # lines 1, 2, 4, 5 around the bad line 3


def with_bad_line(path: Path, bad: bytes) -> Path:
    """GOOD as JSONL with `bad` as line 3."""
    lines = [json.dumps(r).encode() for r in GOOD]
    path.write_bytes(b"\n".join(lines[:2] + [bad] + lines[2:]) + b"\n")
    return path


def changed(**fields: Any) -> bytes:
    """A line holding a sample of prompt 2 with `fields` changed."""
    return json.dumps({**good(2, 0), **fields}).encode()


# (case, bad line 3, field named, reason fragment, rows that go on: 4 good + the bad one when coerced)
BAD_LINES: list[tuple[str, bytes, str | None, str, int]] = [
    ("broken_json", b'{"prompt_id": "p2", "messages": [', None, "invalid JSON: Expecting value at column 34", 4),
    ("not_utf8", changed(answer="x")[:-2] + b'\xff"}', None, "not UTF-8: byte 0xff at byte offset", 4),
    ("sample_index_text", changed(sample_index="first"), "sample_index", "expected an integer, got str 'first'", 4),
    ("messages_as_string", changed(messages="What is 2 + 2?"), "messages", "expected a list, got str 'What is 2 + 2?'", 4),
    ("messages_empty", changed(messages=[]), "messages", "expected a non-empty list of {role, content} turns", 4),
    ("turn_without_content", changed(messages=[{"role": "user"}]), "messages", "turn 0: expected {role: str, content: str}", 4),
    ("turn_content_number", changed(messages=[{"role": "user", "content": ["a"]}]), "messages[0].content", "expected text, got list", 4),
    ("language_unknown", changed(language="xx-invalid"), "language", "unknown language code 'xx-invalid'; the language filter knows af, am, ar", 4),
    ("kind_unknown", changed(kind="thinking"), "kind", "expected one of reasoning, non_reasoning, got 'thinking'", 4),
    ("verifier_unknown", changed(verifier="regex"), "verifier", "expected one of math, code, choice, exact, judge, none, got 'regex'", 4),
    ("tokens_fraction", changed(prompt_tokens=1.5), "prompt_tokens", "expected an integer, got float 1.5", 4),
    ("index_out_of_range", changed(sample_index=2**40), "sample_index", "1099511627776 is out of range for int32", 4),
    ("completion_null", changed(completion=None), "completion", "null, but the sample schema requires a value", 4),
    ("prompt_id_missing", json.dumps({k: v for k, v in good(2, 0).items() if k != "prompt_id"}).encode(), "prompt_id", "missing", 4),
    ("sampling_unknown_field", changed(sampling={**SAMPLING, "min_p": 0.1}), "sampling", "unknown field(s) ['min_p']", 4),
    ("sampling_not_object", changed(sampling="greedy"), "sampling", "expected an object with n, temperature", 4),
    ("row_is_a_list", b'["p2", 0, "answer"]', None, "expected a JSON object, got list", 4),
    ("duplicate_key_other_text", json.dumps({**good(0, 0), "answer": "The answer is \\boxed{3}."}).encode(), "sample_index",
     "duplicate key (prompt_id 'p0', sample_index 0): first at {path} line 1; the first copy is kept", 4),
    # safely coercible: kept, typed
    ("sample_index_digits", changed(sample_index="0"), None, "", 5),
    ("tokens_integral_float", changed(prompt_tokens=20.0), None, "", 5),
    ("prompt_id_integer", changed(prompt_id=2), None, "", 5),
]


def filter_config(tmp_path: Path, source: Path, **kw: Any) -> FilterConfig:
    chain = tmp_path / "chain.yaml"
    chain.write_text("filters: [format]\n")
    return FilterConfig(input=str(source), output=str(tmp_path / "out"), chain=str(chain), workers=1, progress=False, plots=False, **kw)


def rejects_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def check_reject(reject: dict[str, Any], path: Path, field: str | None, fragment: str) -> None:
    assert reject["file"] == str(path) and reject["line"] == 3 and reject["field"] == field
    assert fragment.replace("{path}", str(path)) in reject["reason"], reject["reason"]
    assert reject["raw"]  # the line as read: nothing is lost


@pytest.mark.parametrize("case,bad,field,fragment,kept", BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_filter_sets_a_bad_line_aside_and_filters_the_rest(tmp_path: Path, case: str, bad: bytes, field: str | None, fragment: str, kept: int) -> None:
    path = with_bad_line(tmp_path / "samples.jsonl", bad)
    summary = run_filter(filter_config(tmp_path, path))
    assert summary.report["rows_in"] == kept and summary.report["rows_out"] == kept
    assert summary.report["rows_rejected"] == 5 - kept
    assert summary.report["duplicate_keys"] == (1 if case.startswith("duplicate") else 0)
    rejects = rejects_of(summary.output)
    assert len(rejects) == 5 - kept
    if rejects:
        check_reject(rejects[0], path, field, fragment)
    accepted = pl.read_parquet(summary.output / "accepted" / "shards" / "*.parquet")
    assert accepted.schema["sample_index"] == pl.Int32 and accepted.schema["prompt_id"] == pl.String
    assert accepted.height == kept and accepted.select("prompt_id", "sample_index").is_unique().all()


MIX_CASES = [c for c in BAD_LINES if c[0] in ("broken_json", "not_utf8", "sample_index_text", "messages_as_string", "language_unknown",
                                              "duplicate_key_other_text", "completion_null", "sample_index_digits")]


@pytest.mark.parametrize("case,bad,field,fragment,kept", MIX_CASES, ids=[c[0] for c in MIX_CASES])
def test_mix_sets_a_bad_line_aside_and_mixes_the_rest(tmp_path: Path, case: str, bad: bytes, field: str | None, fragment: str, kept: int) -> None:
    path = with_bad_line(tmp_path / "samples.jsonl", bad)
    summary = run_mix(mix_config(tmp_path, [MixSource(path=str(path))]))
    assert summary.report["rows_in"] == 5 and summary.report["rows_rejected"] == 5 - kept
    assert summary.report["rows_out"] == kept and summary.report["duplicate_keys"] == (1 if case.startswith("duplicate") else 0)
    rejects = rejects_of(summary.output)
    assert len(rejects) == 5 - kept
    if rejects:
        check_reject(rejects[0], path, field, fragment)
        assert rejects[0]["source"] == "samples.jsonl"


def test_mix_reads_reasoning_only_where_a_file_may_hold_a_bad_one(tmp_path: Path) -> None:
    """Beside `completion`, the index reads `reasoning` only to check it, and skips it where the
    file's Parquet statistics show no null there: a file with a null still has that row rejected,
    and a row rejected for another field keeps its reasoning in `raw` (nothing of it is lost)."""
    folder = tmp_path / "samples"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([good(0, 0), {**good(0, 1), "reasoning": None}]), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist([good(1, 0), {**good(1, 1), "language": "xx-invalid"}]), folder / "b.parquet")
    from datakit.mix import open_source

    assert open_source(MixSource(path=str(folder))).sound == [set(), {"reasoning"}]
    summary = run_mix(mix_config(tmp_path, [MixSource(path=str(folder))]))
    assert summary.report["rows_rejected"] == 2 and summary.report["rows_out"] == 2
    by_file = {Path(r["file"]).name: r for r in rejects_of(summary.output)}
    assert (by_file["a.parquet"]["row"], by_file["a.parquet"]["field"]) == (1, "reasoning")
    assert (by_file["b.parquet"]["row"], by_file["b.parquet"]["field"]) == (1, "language")
    assert json.loads(by_file["b.parquet"]["raw"])["reasoning"] == good(1, 1)["reasoning"]


def test_the_mix_index_reads_a_typed_file_through_polars_with_the_same_checks(tmp_path: Path) -> None:
    """The index reads a Parquet file whose columns hold their schema types with polars, not pyarrow:
    every bad value is still found, with the same field and reason; a file of other types goes through
    pyarrow, value by value."""
    from datakit.mix import READ_COLUMNS, ROW_PROBLEM, open_source

    rows = [good(0, 0), {**good(0, 1), "messages": []}, {**good(1, 0), "messages": [{"role": "user", "content": None}]},
            {**good(1, 1), "completion": None}, {**good(2, 0), "kind": "thinking"}, {**good(2, 1), "language": "xx-invalid"},
            {**good(2, 1), "sample_index": 2, "messages": [{"role": None, "content": "hi"}, {"role": "user", "content": "2 + 2?"}]}]
    nullable = pa.schema([f.with_nullable(True) for f in SAMPLE_SCHEMA])  # the schema's types, with room for the bad nulls
    pq.write_table(pa.Table.from_pylist(rows, schema=nullable), tmp_path / "typed.parquet")
    pq.write_table(pa.Table.from_pylist([{**r, "sample_index": str(r["sample_index"])} for r in rows]), tmp_path / "text_index.parquet")
    columns = READ_COLUMNS + ["completion", *ROW_PROBLEM]
    for name, typed in (("typed.parquet", True), ("text_index.parquet", False)):
        source = open_source(MixSource(path=str(tmp_path / name)))
        assert source.typed == [typed]
        frame = source.read_frame(0, columns)
        assert frame.equals(pl.from_arrow(source.read(0, columns)))
        assert frame.select(ROW_PROBLEM).rows() == [
            (None, None), ("messages", "expected a non-empty list of {role, content} turns"), ("messages", "turn 0: expected {role: str, content: str}"),
            ("completion", "null, but the sample schema requires a value"), ("kind", "expected one of reasoning, non_reasoning, got 'thinking'"),
            ("language", frame["_problem_reason"][5]), ("messages", "turn 0: expected {role: str, content: str}")]
        assert frame["_problem_reason"][5].startswith("unknown language code 'xx-invalid'")


def mix_config(tmp_path: Path, sources: list[MixSource]) -> MixConfig:
    return MixConfig(sources=sources, output=str(tmp_path / "mix"), quotas={"reasoning": {"math": 100}},
                     decontamination=DecontaminationConfig(benchmarks=[]), progress=False)


# --- whole inputs that cannot be used: refused before anything is written --------------------------


def all_lines_bad(tmp_path: Path) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b"{oops\n\xff\xfe\n" + changed(sample_index="x") + b"\n")
    return path


def stage_folder_with_text_index(tmp_path: Path) -> Path:
    table = pa.Table.from_pylist(GOOD, schema=SAMPLE_SCHEMA)
    write_shard(tmp_path / "samples", 0, table.set_column(table.schema.get_field_index("sample_index"), "sample_index", pa.array(["0", "1", "0", "1"])))
    return tmp_path / "samples"


def damaged_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "samples.parquet"
    path.write_bytes(b"PAR1 but not really")
    return path


# (case, input maker, filter config extras, message fragment)
REFUSED: list[tuple[str, Callable[[Path], Path], dict[str, Any], str]] = [
    ("map_to_missing_column", lambda t: with_bad_line(t / "s.jsonl", changed()), {"mapping": {"completion": "response"}},
     "--map completion=response: the input has no column 'response'; its columns are ['answer', 'completion'"),
    ("map_to_missing_column_in_folder", lambda t: shards(t, GOOD), {"mapping": {"reference": "gold"}},
     "--map reference=gold: the input has no column 'gold'"),
    ("every_line_bad", all_lines_bad, {}, "none of its 3 rows can be filtered (first: {path}:1: invalid JSON"),
    ("stage_shard_mistyped", stage_folder_with_text_index, {}, "part-00000.parquet: column 'sample_index' is string, the sample schema has int32"),
    ("damaged_parquet_file", damaged_parquet, {}, "samples.parquet: not a readable Parquet file"),
    ("folder_without_parquet", lambda t: (t / "empty").mkdir() or t / "empty", {}, "empty: no .parquet files in this folder"),
]


def shards(tmp_path: Path, rows: list[dict[str, Any]], per_shard: int = 2) -> Path:
    folder = tmp_path / "samples"
    for shard, start in enumerate(range(0, len(rows), per_shard)):
        write_shard(folder, shard, pa.Table.from_pylist(rows[start : start + per_shard], schema=SAMPLE_SCHEMA))
    return folder


@pytest.mark.parametrize("case,make,extra,fragment", REFUSED, ids=[c[0] for c in REFUSED])
def test_filter_refuses_an_unusable_input_before_writing(tmp_path: Path, case: str, make: Callable[[Path], Path], extra: dict[str, Any], fragment: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DatakitError) as refused:
        run_filter(filter_config(tmp_path, path, **extra))
    assert fragment.replace("{path}", str(path)) in str(refused.value), str(refused.value)
    assert not (tmp_path / "out").exists()


def test_mix_refuses_a_source_with_no_usable_row(tmp_path: Path) -> None:
    path = all_lines_bad(tmp_path)
    with pytest.raises(DatakitError, match=r"samples.jsonl: none of its 3 rows can be mixed \(first: .*:1: invalid JSON"):
        run_mix(mix_config(tmp_path, [MixSource(path=str(path))]))
    assert not (tmp_path / "mix").exists()


# --- typed inputs: checked per column, per shard ---------------------------------------------------


def test_filter_sets_aside_repeated_keys_across_the_shards_of_a_folder(tmp_path: Path) -> None:
    rows = GOOD + [{**good(0, 1), "answer": "The answer is \\boxed{7}."}]  # p0#1 again, in shard 2
    summary = run_filter(filter_config(tmp_path, shards(tmp_path, rows)))
    assert summary.report["rows_in"] == 4 and summary.report["duplicate_keys"] == 1 and summary.report["rows_rejected"] == 1
    (reject,) = rejects_of(summary.output)
    assert reject["file"].endswith("part-00002.parquet") and reject["row"] == 0 and reject["field"] == "sample_index"
    assert "duplicate key (prompt_id 'p0', sample_index 1): first at " in reject["reason"] and "part-00000.parquet row 1" in reject["reason"]
    accepted = pl.read_parquet(summary.output / "accepted" / "shards" / "*.parquet")
    assert "\\boxed{7}" not in accepted["answer"].to_list() and accepted.height == 4


def test_a_parquet_file_of_another_type_is_converted_value_by_value(tmp_path: Path) -> None:
    rows = [{**r, "sample_index": str(r["sample_index"])} for r in GOOD]
    rows[2]["sample_index"] = "third"
    path = tmp_path / "traces.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)  # sample_index: a string column
    summary = run_filter(filter_config(tmp_path, path))
    assert summary.report["rows_in"] == 3 and summary.report["rows_rejected"] == 1
    (reject,) = rejects_of(summary.output)
    assert (reject["file"], reject["row"], reject["field"]) == (str(path), 2, "sample_index")
    assert reject["reason"] == "expected an integer, got str 'third'" and json.loads(reject["raw"])["prompt_id"] == "p1"


def test_mix_converts_a_mistyped_parquet_source_and_rejects_what_does_not_convert(tmp_path: Path) -> None:
    rows = [{**r, "sample_index": str(r["sample_index"])} for r in GOOD]
    rows[3]["sample_index"] = "1.5"
    folder = tmp_path / "foreign"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "data.parquet")
    summary = run_mix(mix_config(tmp_path, [MixSource(path=str(folder))]))
    assert summary.report["rows_in"] == 4 and summary.report["rows_rejected"] == 1 and summary.report["rows_out"] == 3
    (reject,) = rejects_of(summary.output)
    assert (reject["row"], reject["field"], reject["reason"]) == (3, "sample_index", "expected an integer, got str '1.5'")


def test_mix_sets_aside_a_repeated_key_across_files_of_one_source(tmp_path: Path) -> None:
    folder = shards(tmp_path, GOOD + [{**good(1, 1), "answer": "Different text, same key."}])
    summary = run_mix(mix_config(tmp_path, [MixSource(path=str(folder))]))
    assert summary.report["rows_out"] == 4 and summary.report["rows_rejected"] == 1 and summary.report["duplicate_keys"] == 1
    (reject,) = rejects_of(summary.output)
    assert reject["file"].endswith("part-00002.parquet") and reject["row"] == 0
    assert "duplicate key (prompt_id 'p1', sample_index 1): first at" in reject["reason"] and "part-00001.parquet row 1" in reject["reason"]
    mixed = pl.read_parquet(summary.output / "shards" / "*.parquet")
    assert not mixed["messages"].list.last().struct.field("content").str.contains("Different text").any()


# --- ingest (the sample stage's reader) ------------------------------------------------------------


def test_ingest_names_a_non_utf8_line_by_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"question": "One?"}\n{"question": "Tw\xc3"}\n{"question": "Three?"}\n')
    got = load_prompts(str(path), IngestConfig())
    assert got.prompts.num_rows == 2 and got.rows_read == 3
    (reject,) = got.rejects
    assert reject.line == 2 and reject.field is None
    assert reject.reason == "not UTF-8: byte 0xc3 at byte offset 37 of the file (byte 17 of the line)"


def test_ingest_rejects_an_unknown_language_code(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"question": "One?", "language": "xx-invalid"}\n{"question": "Zwei?", "language": "de-DE"}\n')
    got = load_prompts(str(path), IngestConfig())
    assert got.prompts.num_rows == 1 and got.prompts.column("language").to_pylist() == ["de-DE"]
    (reject,) = got.rejects
    assert reject.line == 1 and reject.field == "language" and "unknown language code 'xx-invalid'; the language filter knows" in reject.reason
    with pytest.raises(DatakitError, match="ingest.language: unknown language code 'english'"):
        load_prompts(str(path), IngestConfig(language="english"))


# --- what the command line prints -------------------------------------------------------------------


def datakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "datakit.cli", *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})


def test_cli_filter_names_the_rows_it_set_aside_and_goes_on(tmp_path: Path) -> None:
    path = with_bad_line(tmp_path / "samples.jsonl", changed(sample_index="first"))
    filter_config(tmp_path, path)  # writes the chain
    done = datakit("filter", str(path), str(tmp_path / "out"), "--chain", str(tmp_path / "chain.yaml"), "--workers", "1", "--no-plots", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "kept 4 of 4 samples" in done.stdout
    assert f"1 input rows set aside (0 repeating an earlier (prompt_id, sample_index)), each with its file, line or row, field and reason in {tmp_path / 'out' / 'rejects.jsonl'}" in " ".join(done.stderr.split())


def test_cli_filter_refuses_a_map_to_a_missing_column_in_one_line(tmp_path: Path) -> None:
    path = with_bad_line(tmp_path / "samples.jsonl", changed())
    filter_config(tmp_path, path)
    done = datakit("filter", str(path), str(tmp_path / "out"), "--chain", str(tmp_path / "chain.yaml"), "--map", "completion=response", "--no-progress")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: {path}: --map completion=response: the input has no column 'response'; its columns are [" in " ".join(done.stderr.split())
    assert not (tmp_path / "out").exists()
