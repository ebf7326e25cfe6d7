import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DEMO_MATH, ROOT, write_jsonl
from datakit.code_tests import CodeTests
from datakit.errors import DatakitError
from datakit.ingest import R1_MATH_INSTRUCTION, ColumnMapping, IngestConfig, load_prompts
from datakit.schema import PROMPT_SCHEMA


def test_demo_math_prompts_are_complete() -> None:
    got = load_prompts(str(DEMO_MATH), IngestConfig())
    assert got.rejects == [] and got.rows_read == 50
    assert got.prompts.schema.equals(PROMPT_SCHEMA)
    row = got.prompts.to_pylist()[0]
    assert row["prompt_id"] == "demo-math-000"
    assert row["domain"] == "math" and row["kind"] == "reasoning" and row["verifier"] == "math"
    assert row["reference"] == "84" and row["language"] == "en" and row["source"] == "math.jsonl"
    assert row["messages"][-1]["content"].endswith(R1_MATH_INSTRUCTION)


def test_humaneval_prompts_carry_their_tests() -> None:
    got = load_prompts(str(ROOT / "data" / "demo" / "humaneval.jsonl"), IngestConfig())
    assert got.rejects == [] and got.prompts.num_rows == 164
    row = got.prompts.to_pylist()[0]
    assert row["verifier"] == "code" and row["kind"] == "reasoning"
    tests = CodeTests.from_reference(row["reference"])
    assert "def check(candidate)" in tests.tests and tests.tests.rstrip().endswith("check(has_close_elements)")
    assert tests.entry_point == "has_close_elements" and "def has_close_elements(" in tests.setup
    assert R1_MATH_INSTRUCTION not in row["messages"][0]["content"]
    assert json.loads(row["metadata"])["entry_point"] == "has_close_elements"


def test_malformed_rows_are_rejected_with_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "question": "What is 1+1?", "answer": 2},
            "{not json",
            {"id": "b", "answer": "3"},
            {"id": "c", "question": ["not", "text"]},
            {"id": "d", "question": "ok?", "answer": {"x": 1}},
            {"id": "a", "question": "again?"},
            {"id": "e", "question": "fine", "kind": "thinking"},
            "[1, 2]",
            {"id": "f", "question": "   "},
        ],
    )
    got = load_prompts(str(path), IngestConfig())
    assert got.prompts.column("prompt_id").to_pylist() == ["a"]
    assert got.prompts.column("reference").to_pylist() == ["2"]  # numbers become text
    by_line = {r.line: r for r in got.rejects}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "invalid JSON" in by_line[2].reason and by_line[2].raw == "{not json"
    assert by_line[3].field == "question" and "missing" in by_line[3].reason
    assert by_line[4].field == "question" and "expected a string, got list" in by_line[4].reason
    assert by_line[5].field == "answer"
    assert by_line[6].field == "id" and f"first at {path}:1" in by_line[6].reason
    assert by_line[7].field == "kind"
    assert "JSON object" in by_line[8].reason
    assert by_line[9].field == "question" and by_line[9].reason == "empty"
    assert by_line[3].message().startswith(f"{path}:3: field 'question'")


def test_column_mapping_system_prompt_and_chat_messages(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"uid": 7, "problem": "Integrate x.", "solution": "x^2/2", "type": "math", "year": 2024},
            {"uid": 8, "chat": [{"role": "user", "content": "Bonjour ?"}], "type": "general", "lang": "fr"},
        ],
    )
    mapping = ColumnMapping(id="uid", question="problem", reference="solution", domain="type", messages="chat", language="lang")
    got = load_prompts(str(path), IngestConfig(mapping=mapping, system_prompt="Be exact.", math_instruction=False, source="unit"))
    rows = got.prompts.to_pylist()
    assert [r["prompt_id"] for r in rows] == ["7", "8"]
    assert rows[0]["messages"] == [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Integrate x."}]
    assert json.loads(rows[0]["metadata"]) == {"year": 2024}
    assert rows[1]["language"] == "fr" and rows[1]["kind"] == "non_reasoning"
    assert rows[1]["verifier"] == "none" and rows[1]["reference"] is None
    assert {r["source"] for r in rows} == {"unit"}


def test_ids_derived_from_content_are_stable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "A?"}, {"question": "B?"}, {"question": "A?"}])
    first = load_prompts(str(path), IngestConfig())
    again = load_prompts(str(path), IngestConfig())
    assert first.prompts.column("prompt_id").to_pylist() == again.prompts.column("prompt_id").to_pylist()
    assert first.prompts.num_rows == 2 and "duplicate prompt_id" in first.rejects[0].reason


def test_parquet_file_folder_and_saved_datasets_folder(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "domain": "math"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    (tmp_path / "folder").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "folder" / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), tmp_path / "folder" / "b.parquet")
    import datasets

    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))

    for source, split in [(tmp_path / "p.parquet", "train"), (tmp_path / "folder", "train"), (tmp_path / "saved", "test")]:
        got = load_prompts(str(source), IngestConfig(split=split))
        assert got.prompts.column("prompt_id").to_pylist() == [f"q{i}" for i in range(5)], source
    with pytest.raises(DatakitError, match="no split 'train'"):
        load_prompts(str(tmp_path / "saved"), IngestConfig())


def test_parquet_wrong_type_names_the_row(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([{"id": "a", "question": "ok"}, {"id": "b", "question": None}]), tmp_path / "p.parquet")
    got = load_prompts(str(tmp_path / "p.parquet"), IngestConfig())
    assert got.prompts.num_rows == 1
    assert got.rejects[0].line == 2 and got.rejects[0].field == "question"


def test_unreachable_hub_id_is_a_clear_error() -> None:
    with pytest.raises(DatakitError, match="not a local file or folder"):
        load_prompts("no-such-org/no-such-dataset", IngestConfig())


def test_several_inputs_are_read_in_order_each_tagged_with_its_own_source(tmp_path: Path) -> None:
    other = tmp_path / "chat.jsonl"
    other.write_text(json.dumps({"id": "hi", "question": "Hello!", "domain": "general"}) + "\n" + json.dumps({"id": "demo-math-000", "question": "dup"}) + "\n")
    got = load_prompts([str(DEMO_MATH), str(other)], IngestConfig())
    rows = got.prompts.to_pylist()
    assert [r["prompt_id"] for r in rows][-2:] == ["demo-math-049", "hi"]
    assert {r["source"] for r in rows[:-1]} == {"math.jsonl"} and rows[-1]["source"] == "chat.jsonl"
    assert rows[-1]["kind"] == "non_reasoning"
    (reject,) = got.rejects
    assert (reject.file, reject.line, reject.field) == (str(other), 2, "id") and f"{DEMO_MATH}:1" in reject.reason


def test_limit_keeps_the_first_valid_prompts() -> None:
    got = load_prompts(str(DEMO_MATH), IngestConfig(limit=3))
    assert got.prompts.column("prompt_id").to_pylist() == ["demo-math-000", "demo-math-001", "demo-math-002"]
