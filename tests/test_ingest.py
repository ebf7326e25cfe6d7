import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DEMO_MATH, ROOT, write_jsonl

from datakit.code_tests import CodeTests
from datakit.errors import DatakitError
from datakit.ingest import (
    CHOICE_INSTRUCTION_V1,
    CHOICE_LETTERS,
    R1_MATH_INSTRUCTION,
    ColumnMapping,
    IngestConfig,
    load_prompts,
)
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


GPQA_OPTIONS = "Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3"  # GPQA's columns, right answer first
GPQA_MAP = ColumnMapping(id="Record ID", question="Question", reference="Correct Answer", choices=GPQA_OPTIONS)


def gpqa_rows(n: int) -> list[dict]:
    return [
        {"Record ID": f"rec{i}", "Question": f"Which is element {i}?", "Correct Answer": f"right {i}",
         "Incorrect Answer 1": f"wrong a{i}", "Incorrect Answer 2": f"wrong b{i}", "Incorrect Answer 3": f"wrong c{i}", "Subdomain": "Chemistry"}
        for i in range(n)
    ]


def test_choice_rows_letter_shuffled_options_and_grade_by_letter(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gpqa.jsonl", gpqa_rows(3))
    got = load_prompts(str(path), IngestConfig(mapping=GPQA_MAP, domain="science"))
    assert got.rejects == []
    for row in got.prompts.to_pylist():
        meta = json.loads(row["metadata"])
        letter = row["reference"]
        assert row["verifier"] == "choice" and row["domain"] == "science" and row["kind"] == "reasoning"
        assert meta["choices"][CHOICE_LETTERS.index(letter)] == f"right {row['prompt_id'][3:]}"
        assert meta["choice_order"][CHOICE_LETTERS.index(letter)] == 0  # the right answer is GPQA's first column
        assert sorted(meta["choice_order"]) == [0, 1, 2, 3] and meta["Subdomain"] == "Chemistry"
        content = row["messages"][-1]["content"]
        listed = [f"{x}) {text}" for x, text in zip("ABCD", meta["choices"])]
        assert content == f"Which is element {row['prompt_id'][3:]}?\n\n" + "\n".join(listed) + f"\n\n{CHOICE_INSTRUCTION_V1}"
        assert R1_MATH_INSTRUCTION not in content and "Correct Answer" not in row["metadata"]


def test_the_right_letter_is_uniform_and_a_rerun_asks_the_same_question(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gpqa.jsonl", gpqa_rows(800))
    first = load_prompts(str(path), IngestConfig(mapping=GPQA_MAP))
    letters = first.prompts.column("reference").to_pylist()
    counts = {x: letters.count(x) for x in "ABCD"}
    # 800 rows whose right answer always comes first: each letter near 200 (a binomial sd of ~12; the seed fixes the draw)
    assert all(160 <= n <= 240 for n in counts.values()), counts
    chi2 = sum((n - 200) ** 2 / 200 for n in counts.values())
    assert chi2 < 11.3, counts  # below the 1% critical value for 3 degrees of freedom
    again = load_prompts(str(path), IngestConfig(mapping=GPQA_MAP))
    assert again.prompts.to_pylist() == first.prompts.to_pylist()
    other = load_prompts(str(path), IngestConfig(mapping=GPQA_MAP, choice_seed=1)).prompts.column("reference").to_pylist()
    assert other != letters and sum(a == b for a, b in zip(letters, other)) < 300  # another seed, another order


def test_the_reference_may_be_the_option_text_its_letter_or_its_index(tmp_path: Path) -> None:
    options = ["red", "green", "blue"]
    rows = [
        {"id": "text", "question": "Sky?", "choices": options, "answer": "blue"},
        {"id": "letter", "question": "Sky?", "choices": options, "answer": "C"},
        {"id": "paren", "question": "Sky?", "choices": options, "answer": "(C)"},
        {"id": "index", "question": "Sky?", "choices": options, "answer": 2},
        {"id": "no-id-a", "question": "Grass?", "choices": options, "answer": 1, "domain": "math"},
    ]
    del rows[-1]["id"]
    got = load_prompts(str(write_jsonl(tmp_path / "mc.jsonl", rows)), IngestConfig())
    assert got.rejects == []
    for row in got.prompts.to_pylist():
        meta = json.loads(row["metadata"])
        right = "green" if row["domain"] == "math" else "blue"
        assert meta["choices"][CHOICE_LETTERS.index(row["reference"])] == right, row["prompt_id"]
        assert R1_MATH_INSTRUCTION not in row["messages"][-1]["content"]  # a choice prompt asks for a letter, not a value
    again = load_prompts(str(write_jsonl(tmp_path / "mc2.jsonl", rows)), IngestConfig())
    assert again.prompts.to_pylist()[-1]["messages"] == got.prompts.to_pylist()[-1]["messages"]  # no id: seeded by content


def test_bad_choice_rows_are_rejected_naming_the_field(tmp_path: Path) -> None:
    rows = [
        {"id": "nomatch", "question": "Q?", "choices": ["a", "b"], "answer": "c"},
        {"id": "dup", "question": "Q?", "choices": ["a", "b", "a"], "answer": "a"},
        {"id": "one", "question": "Q?", "choices": ["a"], "answer": "a"},
        {"id": "eleven", "question": "Q?", "choices": [str(i) for i in range(11)], "answer": 0},
        {"id": "range", "question": "Q?", "choices": ["a", "b"], "answer": 2},
        {"id": "letter-out-of-range", "question": "Q?", "choices": ["a", "b"], "answer": "C"},
        {"id": "digits", "question": "Q?", "choices": ["a", "b"], "answer": "1"},
        {"id": "ambiguous", "question": "Q?", "choices": ["B", "A"], "answer": "A"},
        {"id": "text", "question": "Q?", "choices": "a, b", "answer": "a"},
        {"id": "empty", "question": "Q?", "choices": ["a", " "], "answer": "a"},
        {"id": "noref", "question": "Q?", "choices": ["a", "b"]},
        {"id": "judge", "question": "Q?", "choices": ["a", "b"], "answer": "a", "verifier": "judge"},
    ]
    got = load_prompts(str(write_jsonl(tmp_path / "bad.jsonl", rows)), IngestConfig())
    assert got.prompts.num_rows == 0
    by_line = {r.line: (r.field, r.reason) for r in got.rejects}
    assert by_line[1] == ("answer", "'c' matches no option's text or letter (an index must be an integer)")
    assert by_line[2][0] == "choices[2]" and "duplicate option 'a' (the same as 'choices[0]')" in by_line[2][1]
    assert by_line[3] == ("choices", "1 option(s); a choice prompt needs 2 to 10 (letters A-J)")
    assert by_line[4][0] == "choices" and "11 option(s)" in by_line[4][1]
    assert by_line[5] == ("answer", "index 2 is out of range for 2 options")
    assert by_line[6][0] == "answer" and "matches no option" in by_line[6][1]
    assert by_line[7][0] == "answer" and "an index must be an integer" in by_line[7][1]
    assert by_line[8] == ("answer", "'A' is both an option's text and another option's letter")
    assert by_line[9][0] == "choices" and "expected a list of option texts, got str" in by_line[9][1]
    assert by_line[10] == ("choices[1]", "empty option")
    assert by_line[11][0] == "answer" and "missing" in by_line[11][1]
    assert by_line[12][0] == "verifier" and "graded by `choice`" in by_line[12][1]
    missing = {**gpqa_rows(1)[0], "Incorrect Answer 2": None}
    (reject,) = load_prompts(str(write_jsonl(tmp_path / "gpqa.jsonl", [missing])), IngestConfig(mapping=GPQA_MAP)).rejects
    assert reject.message() == f"{tmp_path / 'gpqa.jsonl'}:1: field 'Incorrect Answer 2': expected an option text, got NoneType None"


def test_a_hub_dataset_is_loaded_with_its_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load(name: str, configuration: str | None = None, split: str | None = None) -> datasets.Dataset:
        calls.append((name, configuration, split))  # the Hub is out of reach in tests: what ingest asks for is the point
        return datasets.Dataset.from_list(gpqa_rows(2))

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    got = load_prompts("Idavidrein/gpqa", IngestConfig(mapping=GPQA_MAP, config="gpqa_diamond", domain="science"))
    assert calls == [("Idavidrein/gpqa", "gpqa_diamond", "train")]
    assert got.prompts.column("verifier").to_pylist() == ["choice", "choice"]
