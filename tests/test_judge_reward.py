"""The LLM judge (strict verdict parsing; through the openai fake server and the embedded model) and
the reward-model filter on a tiny random reward model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datakit.filters import make_filter
from datakit.filters.judge import judge_prompt, parse_verdict
from test_openai_backend import FakeServer


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("VERDICT: CORRECT", "correct"),
        ("The candidate matches.\nVERDICT: INCORRECT\n", "incorrect"),
        ("**Verdict:** correct", "correct"),
        ("The answer is incorrect.", "unparseable"),  # no verdict line: "correct" inside "incorrect" never counts
        ("This is correct", "unparseable"),
        ("VERDICT: CORRECT\nVERDICT: INCORRECT", "unparseable"),  # contradicting lines
        ("VERDICT: CORRECT\nVERDICT: CORRECT", "correct"),
        ("VERDICT: CORRECTISH", "unparseable"),
        ("", "unparseable"),
    ],
)
def test_strict_verdict_parsing(reply: str, verdict: str) -> None:
    assert parse_verdict(reply) == verdict


def _rows(**columns: list[Any]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "prompt_id": [f"p{i}" for i in range(n)],
        "messages": [[{"role": "user", "content": f"Question {i}?"}] for i in range(n)],
        "answer": ["Paris"] * n,
        "reference": ["Paris"] * n,
        "verifier": ["judge"] * n,
    }
    return pl.DataFrame({**base, **columns})


class JudgeServer(FakeServer):
    """Replies with a verdict chosen by the candidate answer in the prompt."""

    def reply_for(self, prompt: str) -> str:
        if "Candidate answer:\nLyon" in prompt:
            return "The answer is incorrect.\nVERDICT: INCORRECT"
        if "Candidate answer:\nhmm" in prompt:
            return "I think it's incorrect"
        return "VERDICT: CORRECT"


def test_judge_through_an_openai_compatible_server() -> None:
    server = JudgeServer()
    try:
        judge = make_filter("judge", {"model": "judge-model", "backend": {"name": "openai", "openai": {"base_url": server.url}}}, "t")
        rows = _rows(answer=["Paris", "Lyon", "hmm", "Paris"], verifier=["judge", "judge", "judge", "math"])
        judge.setup({})
        scores = judge.score(rows)
        frame = pl.concat([rows, scores], how="horizontal")
        verdicts = judge.keep(frame).to_list()
    finally:
        server.httpd.shutdown()
    assert scores["judge_verdict"].to_list() == ["correct", "incorrect", "unparseable", "skipped"]
    assert scores["judge_score"].to_list() == [1.0, 0.0, None, None]
    assert verdicts[0] is None and verdicts[3] is None
    assert verdicts[1] == "judge_incorrect: judge-model says incorrect"
    assert verdicts[2].startswith("judge_unparseable: no single VERDICT line in the reply: I think it's incorrect")
    assert len(server.requests) == 3 and server.requests[0]["temperature"] == 0.0
    assert "Reference answer:\nParis" in server.requests[0]["messages"][0]["content"]


def test_judge_takes_rows_the_rules_left_undecided() -> None:
    judge = make_filter("judge", {}, "t")
    row = {"verifier": "math", "reference": "4", "correct_verdict": "no_answer"}
    assert judge._needs_judging(row)
    assert not judge._needs_judging({**row, "correct_verdict": "correct"})
    assert make_filter("judge", {"judge_rule_verified": True}, "t")._needs_judging({**row, "correct_verdict": "wrong"})
    assert "Question 0?" in judge_prompt(_rows(answer=["x"]).row(0, named=True), "v1")


@pytest.mark.slow
def test_judge_on_the_embedded_model(embedded_model_folder: str) -> None:
    judge = make_filter("judge", {"backend": {"name": "hf", "hf": {"batch_prompts": 4}}, "max_tokens": 24}, "t")
    rows = _rows(answer=["Paris", "Berlin"], reference=["Paris", "Paris"])
    judge.setup({})
    scores = judge.score(rows)
    judge.close()
    assert set(scores["judge_verdict"].to_list()) <= {"correct", "incorrect", "unparseable"}
    assert all(isinstance(reply, str) and reply for reply in scores["judge_reply"].to_list())


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig.from_pretrained(tiny_model)
    config.num_labels = 1
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return str(folder)


def test_reward_model_scores_and_floor(tiny_reward_model: str) -> None:
    rows = _rows(answer=["Paris", "Lyon", "Paris is the capital"])
    rm = make_filter("reward_model", {"model": tiny_reward_model, "dtype": "float32", "batch_size": 2}, "t")
    rm.setup({})
    scores = rm.score(rows)["reward_score"].to_list()
    assert len(scores) == 3 and len(set(scores)) == 3
    assert rm.score(rows.slice(1, 1))["reward_score"][0] == pytest.approx(scores[1], abs=1e-4)  # batching does not change a score
    floor = sorted(scores)[1]
    rm_floor = make_filter("reward_model", {"model": tiny_reward_model, "min_score": floor}, "t")
    verdicts = rm_floor.keep(pl.DataFrame({"reward_score": scores})).to_list()
    assert sum(v is None for v in verdicts) == 2
    assert next(v for v in verdicts if v).startswith("low_reward: reward ")


class AgreeingJudge(FakeServer):
    def reply_for(self, prompt: str) -> str:
        return "VERDICT: INCORRECT" if "four" in prompt.split("Candidate answer:")[1] else "VERDICT: CORRECT"


def test_rules_first_judge_second_with_agreement_in_the_report(tmp_path: Path) -> None:
    import json

    import pyarrow as pa

    from datakit.dataset import write_shard
    from datakit.filter import FilterConfig, run_filter
    from datakit.schema import SAMPLE_SCHEMA
    from test_filter_stage import _sample

    rows = [_sample(2, 0, "\\boxed{4}"), _sample(2, 1, "\\boxed{4} (four)"), _sample(2, 2, "I think it is four."), _sample(2, 3, "\\boxed{5}")]
    write_shard(tmp_path / "samples", 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    server = AgreeingJudge()
    chain = tmp_path / "chain.yaml"
    chain.write_text(
        "filters:\n"
        "  - correctness: {unverified: judge, workers: 1}\n"
        f"  - judge: {{model: j, judge_rule_verified: true, backend: {{name: openai, openai: {{base_url: '{server.url}'}}}}}}\n"
    )
    try:
        summary = run_filter(FilterConfig(input=str(tmp_path / "samples"), output=str(tmp_path / "out"), chain=str(chain), progress=False, plots=False))
    finally:
        server.httpd.shutdown()
    out = pl.read_parquet(tmp_path / "out" / "*" / "shards" / "*.parquet").sort("sample_index")
    assert out["correct_verdict"].to_list() == ["correct", "correct", "no_answer", "wrong"]
    # the rules could not read sample 2, so the judge decided it; sample 3 the rules rejected outright
    assert out["judge_verdict"].to_list() == ["correct", "incorrect", "incorrect", None]
    assert out["rejected_by"].to_list() == [None, "judge", "judge", "correctness"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rule_judge_agreement"] == {"rows": 2, "agree": 1, "rate": 0.5, "pairs": {"correct/correct": 1, "correct/incorrect": 1}}
    assert summary.report == report
