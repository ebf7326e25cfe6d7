"""The filter stage end to end: funnel, rejects with reasons, report and plots, crashes, resume, bad input."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from datakit.dataset import write_shard
from datakit.errors import DatakitError
from datakit.filter import FilterConfig, run_filter
from datakit.filters import Filter, reason
from datakit.schema import SAMPLE_SCHEMA, text_hash

SAMPLING = {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 512, "seed": 0}


def _sample(prompt: int, index: int, answer: str, reasoning: str = "I add the numbers carefully and check the sum twice.", finish: str = "stop") -> dict:
    completion = f"<think>\n{reasoning}\n</think>\n\n{answer}"
    return {
        "prompt_id": f"p{prompt}", "messages": [{"role": "user", "content": f"What is {prompt} + {prompt}?"}],
        "domain": "math", "kind": "reasoning", "language": "en", "reference": str(2 * prompt), "verifier": "math",
        "source": "unit", "metadata": "{}", "sample_index": index, "completion": completion, "reasoning": reasoning,
        "answer": answer, "finish_reason": finish, "prompt_tokens": 20, "completion_tokens": 30 + index,
        "generator": "unit", "sampling": SAMPLING,
    }


def _samples_folder(root: Path) -> Path:
    rows = []
    for p in range(1, 7):
        rows += [
            _sample(p, 0, f"The answer is \\boxed{{{2 * p}}}."),
            _sample(p, 1, f"\\boxed{{{2 * p + 1}}}"),  # wrong
            _sample(p, 2, "", finish="length"),  # truncated
            _sample(p, 3, f"So \\boxed{{{2 * p}}}", reasoning="Wait, let me check that again. " * 30),  # loops
        ]
    rows[-4] = _sample(6, 0, "I am not sure.")  # prompt 6: no correct sample at all
    folder = root / "samples"
    for shard, start in enumerate(range(0, len(rows), 8)):
        write_shard(folder, shard, pa.Table.from_pylist(rows[start : start + 8], schema=SAMPLE_SCHEMA))
    (folder / "manifest.json").write_text(json.dumps({"stage": "sample", "model": "unit"}))
    return folder


def _chain(root: Path, body: str) -> Path:
    path = root / "chain.yaml"
    path.write_text(body)
    return path


CHAIN = """
name: unit
filters:
  - format
  - repetition: {n: 5, max_repetition: 0.3}
  - correctness: {timeout_s: 20, workers: 1}
  - best_of_n: {k: 1}
"""


def test_funnel_rejects_report_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "filtered"
    summary = run_filter(FilterConfig(input=str(_samples_folder(tmp_path)), output=str(out), chain=str(_chain(tmp_path, CHAIN)), workers=1, progress=False))
    accepted = pl.read_parquet(out / "accepted" / "shards" / "*.parquet")
    rejected = pl.read_parquet(out / "rejected" / "shards" / "*.parquet")
    assert accepted.height + rejected.height == 24
    assert sorted(accepted["prompt_id"].to_list()) == ["p1", "p2", "p3", "p4", "p5"]
    assert (accepted["sample_index"] == 0).all() and accepted["rejected_by"].null_count() == accepted.height
    assert rejected["rejected_by"].null_count() == 0 and rejected["reject_reason"].null_count() == 0
    why = {(r["prompt_id"], r["sample_index"]): (r["rejected_by"], r["reject_reason"]) for r in rejected.iter_rows(named=True)}
    assert why[("p1", 1)] == ("correctness", "wrong: math: boxed 3, expected 2")
    assert why[("p1", 2)] == ("format", "truncated: finish_reason=length")
    assert why[("p1", 3)][0] == "repetition"
    assert why[("p6", 0)][0] == "correctness" and why[("p6", 0)][1].startswith("no_answer:")
    # a row stopped early carries nulls for the scores of filters it never reached
    assert rejected.filter(pl.col("rejected_by") == "format")["correct_verdict"].null_count() == 6
    assert set(SAMPLE_SCHEMA.names) <= set(accepted.columns)

    report = json.loads((out / "report.json").read_text())
    assert report == summary.report
    assert [(s["filter"], s["rows_in"], s["dropped"]) for s in report["funnel"]] == [
        ("format", 24, 6), ("repetition", 18, 6), ("correctness", 12, 7), ("best_of_n", 5, 0),
    ]
    assert report["funnel"][2]["reasons"] == {"wrong": 6, "no_answer": 1}
    assert report["prompts"] == {"in": 6, "zero_accepted": 1, "zero_accepted_examples": ["p6"]}
    assert report["by_domain"]["math"] == {"in": 24, "out": 5, "pass_rate": round(5 / 24, 4)}
    assert sum(report["length_histogram"]["before"]) == 24 and sum(report["length_histogram"]["after"]) == 5
    for plot in summary.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@dataclass
class Explodes(Filter):
    """Crashes on answers containing 'boom', to show a crash rejects only its row."""

    name = "explodes_for_test"
    reads = ("answer",)
    scores = {"answer_chars": pl.Int64}

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        if any("boom" in a for a in rows["answer"].to_list()):
            raise ValueError("boom in the answer")
        return rows.select(answer_chars=pl.col("answer").str.len_chars().cast(pl.Int64))

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        return frame.select(pl.when(pl.col("answer_chars") > 1000).then(reason("too_long", "x")).otherwise(None)).to_series()


def test_a_filter_crashing_on_one_row_rejects_that_row_only(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    rows = [_sample(1, 0, "fine"), _sample(1, 1, "boom"), _sample(2, 0, "fine too")]
    write_shard(folder, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    out = tmp_path / "out"
    run_filter(FilterConfig(input=str(folder), output=str(out), chain=str(_chain(tmp_path, "filters: [explodes_for_test]")), workers=1, progress=False, plots=False))
    rejected = pl.read_parquet(out / "rejected" / "shards" / "*.parquet")
    assert rejected["reject_reason"].to_list() == ["filter_error: ValueError: boom in the answer"]
    assert pl.read_parquet(out / "accepted" / "shards" / "*.parquet").height == 2


def test_resume_after_a_lost_shard_gives_the_same_output(tmp_path: Path) -> None:
    samples, chain = _samples_folder(tmp_path), _chain(tmp_path, CHAIN)
    config = FilterConfig(input=str(samples), output=str(tmp_path / "out"), chain=str(chain), workers=2, progress=False, plots=False)
    run_filter(config)
    before = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*.parquet")}
    # as if killed while shard 1 was being written: its accepted file and stats never landed
    (tmp_path / "out" / "stats" / "part-00001.json").unlink()
    (tmp_path / "out" / "accepted" / "shards" / "part-00001.parquet").unlink()
    summary = run_filter(config)
    assert (summary.shards_written, summary.shards_skipped) == (1, 2)
    after = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*.parquet")}
    assert after.keys() == before.keys()
    for key, data in before.items():
        assert pl.read_parquet(io.BytesIO(data)).equals(pl.read_parquet(tmp_path / "out" / key)), key
    assert pl.read_parquet(tmp_path / "out" / "accepted" / "shards" / "*.parquet").height == 5


def test_bad_input_is_refused_before_any_work(tmp_path: Path) -> None:
    samples = _samples_folder(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DatakitError, match="filters\\[1\\]: unknown filter 'nope'"):
        run_filter(FilterConfig(input=str(samples), output=str(out), chain=str(_chain(tmp_path, "filters: [format, nope]"))))
    thin = tmp_path / "thin"
    write_shard(thin, 0, pa.table({"prompt_id": ["a"], "answer": ["x"]}))
    with pytest.raises(DatakitError, match="filter 'format' needs column\\(s\\) \\['completion', 'reasoning', 'finish_reason'\\]"):
        run_filter(FilterConfig(input=str(thin), output=str(out), chain=str(_chain(tmp_path, "filters: [format]"))))
    (samples / "shards" / "part-00001.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatakitError, match="part-00001.parquet: not a readable Parquet file"):
        run_filter(FilterConfig(input=str(samples), output=str(out), chain=str(_chain(tmp_path, "filters: [format]"))))
    assert not out.exists()


def test_foreign_traces_with_a_column_mapping(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    lines = [
        {"id": "q1", "response": "<think>\nTwo plus two.\n</think>\n\n\\boxed{4}", "gold": "4", "verifier": "math", "stop": "stop"},
        {"id": "q1", "response": "<think>\nTwo plus two.\n</think>\n\n\\boxed{5}", "gold": "4", "verifier": "math", "stop": "stop"},
    ]
    traces.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    chain = _chain(tmp_path, "filters: [format, {correctness: {workers: 1}}]")
    mapping = {"prompt_id": "id", "completion": "response", "reference": "gold", "finish_reason": "stop"}
    summary = run_filter(FilterConfig(input=str(traces), output=str(out), chain=str(chain), mapping=mapping, progress=False, plots=False))
    assert summary.report["rows_out"] == 1
    accepted = pl.read_parquet(out / "accepted" / "shards" / "*.parquet")
    assert accepted["answer"].to_list() == ["\\boxed{4}"] and accepted["sample_index"].to_list() == [0]
    assert accepted["text_hash"].to_list() == [text_hash("Two plus two.", "\\boxed{4}")]  # derived, as the split texts are


def test_text_hash_is_written_afresh_from_the_text(tmp_path: Path) -> None:
    """What the rows came with may predate an edit of their text: filter's output carries the hash of
    the text it read (what mix trusts to find repeated samples without reading the text)."""
    rows = [{**_sample(1, i, f"The answer is \\boxed{{{2 + i}}}."), "text_hash": 12345} for i in range(2)]
    write_shard(tmp_path / "samples", 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    out = tmp_path / "out"
    run_filter(FilterConfig(input=str(tmp_path / "samples"), output=str(out), chain=str(_chain(tmp_path, "filters: [format]")), progress=False, plots=False))
    accepted = pl.read_parquet(out / "accepted" / "shards" / "*.parquet")
    assert accepted.height == 2 and accepted["text_hash"].to_list() == [text_hash(r["reasoning"], r["answer"]) for r in rows]


def test_a_new_threshold_re_decides_from_stored_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = _samples_folder(tmp_path)
    first = tmp_path / "first"
    run_filter(FilterConfig(input=str(samples), output=str(first), chain=str(_chain(tmp_path, CHAIN)), workers=1, progress=False, plots=False))
    # looser repetition threshold, same n: the stored repetition and correctness scores are reused
    looser = CHAIN.replace("max_repetition: 0.3", "max_repetition: 0.99")
    from datakit.filters.text import Repetition

    calls: list[int] = []
    original = Repetition.score
    monkeypatch.setattr(Repetition, "score", lambda self, rows: calls.append(rows.height) or original(self, rows))
    second = tmp_path / "second"
    summary = run_filter(FilterConfig(input=str(first), output=str(second), chain=str(_chain(tmp_path, looser)), workers=1, progress=False, plots=False))
    assert calls == []  # every row reached repetition in the first run: nothing recomputed
    funnel = {s["filter"]: s for s in summary.report["funnel"]}
    assert funnel["repetition"]["dropped"] == 0 and funnel["format"]["dropped"] == 6
    # the looping samples now reach correctness: they were never checked, so they are checked now
    assert funnel["correctness"]["rows_in"] == 18 and funnel["correctness"]["reasons"] == {"wrong": 6, "no_answer": 1}
    accepted = pl.read_parquet(second / "accepted" / "shards" / "*.parquet")
    # p6's looping sample has the right answer: with loops allowed, every prompt keeps one sample
    assert sorted(accepted["prompt_id"]) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert "_previous_rejected_by" not in accepted.columns
    rejected = pl.read_parquet(second / "rejected" / "shards" / "*.parquet")
    assert rejected.height == 18 and rejected["rejected_by"].null_count() == 0
    # a changed score parameter (n) recomputes
    other_n = CHAIN.replace("n: 5", "n: 6")
    run_filter(FilterConfig(input=str(first), output=str(tmp_path / "third"), chain=str(_chain(tmp_path, other_n)), workers=1, progress=False, plots=False))
    assert calls and sum(calls) == 18


def test_shipped_chains_parse_and_name_real_filters() -> None:
    from conftest import ROOT
    from datakit.chain import load_chain

    chains = {p.stem: load_chain(p) for p in sorted((ROOT / "filters").glob("*.yaml"))}
    assert {"r1-reasoning", "r1-non-reasoning", "demo"} <= set(chains)
    reasoning = [f.name for f in chains["r1-reasoning"].filters]
    assert reasoning[0] == "format" and reasoning[-1] == "best_of_n"
    assert {"correctness", "language", "length", "long_paragraph", "code_block", "repetition"} <= set(reasoning)
    non_reasoning = [f.name for f in chains["r1-non-reasoning"].filters]
    assert "judge" in non_reasoning and "language" in non_reasoning and "correctness" not in non_reasoning
