"""Self-cognition prompts from templates: filled with the recipe's identity, distinct, seeded, read by ingest,
and run as the first stage of a recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError
from datakit.identity import LANGUAGES, IdentityConfig, run_identity
from datakit.ingest import IngestConfig, load_prompts
from datakit.pipeline import check_pipeline, load_pipeline, step_inputs


def _rows(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _config(tmp_path: Path, **kw: object) -> IdentityConfig:
    return IdentityConfig(**{"name": "Aster", "creator": "Example Labs", "output": str(tmp_path / "identity.jsonl"), **kw})  # type: ignore[arg-type]


def test_prompts_carry_the_identity_a_reference_and_the_self_cognition_tags(tmp_path: Path) -> None:
    summary = run_identity(_config(tmp_path, count=400, knowledge_cutoff="July 2024", can_browse=False))
    rows = _rows(summary.output)
    assert summary.written == len(rows) == 400 and set(summary.by_language) == {"en", "zh"}
    assert set(summary.by_topic) == {"who", "creator", "model", "human", "cutoff", "browse"}
    assert {(r["domain"], r["kind"], r["verifier"]) for r in rows} == {("self_cognition", "non_reasoning", "judge")}
    for r in rows:
        system, user = r["messages"]
        assert system["role"] == "system" and "Aster" in system["content"] and "Example Labs" in system["content"]
        assert "July 2024" in system["content"] and user["role"] == "user" and user["content"].strip()
        assert "{" not in r["answer"] and "{" not in system["content"]  # every placeholder filled
    cutoff = [r for r in rows if r["topic"] == "cutoff"]
    assert cutoff and all("July 2024" in r["answer"] for r in cutoff)
    browse = [r for r in rows if r["topic"] == "browse" and r["language"] == "en"]
    assert browse and all("can't" in r["answer"] or "no internet" in r["answer"] for r in browse)  # can_browse: false
    who = [r for r in rows if r["topic"] == "who"]
    assert all("Aster" in r["answer"] for r in who)
    assert any("创造" in r["messages"][1]["content"] or "开发" in r["messages"][1]["content"] for r in rows if r["language"] == "zh")


def test_distinct_ids_and_prompts_and_the_same_file_for_the_same_seed(tmp_path: Path) -> None:
    first = run_identity(_config(tmp_path, count=3000))
    text = first.output.read_text()
    rows = _rows(first.output)
    assert len({r["id"] for r in rows}) == len({r["messages"][-1]["content"] for r in rows}) == 3000
    assert run_identity(_config(tmp_path, count=3000)).output.read_text() == text
    other = run_identity(_config(tmp_path, count=3000, seed=1, output=str(tmp_path / "other.jsonl")))
    assert other.output.read_text() != text and {r["id"] for r in _rows(other.output)} != {r["id"] for r in rows}


def test_asking_for_more_than_the_templates_make_writes_all_of_them_and_says_so(tmp_path: Path) -> None:
    summary = run_identity(_config(tmp_path, count=1_000_000, languages=["en"]))
    rows = _rows(summary.output)
    en = LANGUAGES["en"]
    per_topic = len(en.openings) * len(en.contexts) * len(en.closings) * 6  # six questions per topic
    assert summary.distinct == summary.written == len(rows) == 4 * per_topic  # no cutoff or browse facts: four topics
    assert len({r["messages"][-1]["content"] for r in rows}) == len(rows)
    result = CliRunner().invoke(app, ["identity", str(tmp_path / "cli.jsonl"), "--name", "Aster", "--creator", "Example Labs", "--language", "en", "--count", "99999"])
    assert result.exit_code == 0, result.output
    assert f"the templates make {summary.distinct:,} distinct ones" in result.output and len(_rows(tmp_path / "cli.jsonl")) == summary.distinct


def test_ten_thousand_prompts_in_five_languages(tmp_path: Path) -> None:
    summary = run_identity(_config(tmp_path, count=10_000, languages=list(LANGUAGES), knowledge_cutoff="2025", can_browse=True))
    assert summary.written == 9288 and summary.distinct == 9288  # all distinct combinations: fewer than asked
    ingested = load_prompts(str(summary.output), IngestConfig())  # what the sample stage reads
    assert ingested.rejects == [] and ingested.prompts.num_rows == 9288
    assert set(ingested.prompts.column("domain").to_pylist()) == {"self_cognition"}
    assert set(ingested.prompts.column("language").to_pylist()) == set(LANGUAGES)
    metadata = json.loads(ingested.prompts.column("metadata")[0].as_py())
    assert set(metadata) == {"topic", "template"} and metadata["template"].startswith("datakit-identity-v1:")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": ""}, "needs the model's `name` and its `creator`"),
        ({"languages": ["en", "xx"]}, r"identity.languages: \['xx'\]; templates exist for en, zh, fr, es, de"),
        ({"count": 0}, "identity.count: must be >= 1"),
        ({"output": "prompts.parquet"}, "identity.output: must be a .jsonl file"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(DatakitError, match=message):
        run_identity(_config(tmp_path, **settings))


def test_identity_runs_first_in_a_recipe_and_its_prompts_feed_a_sample_run(tmp_path: Path) -> None:
    prompts = str(tmp_path / "out" / "identity.jsonl")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "sample": {"input": prompts, "output": str(tmp_path / "out" / "samples"), "cot": {"mode": "prompted"}},
        "identity": {"name": "Aster", "creator": "Example Labs", "count": 50, "output": prompts},
    }))
    steps = load_pipeline(recipe)
    assert [s.stage for s in steps] == ["identity", "sample"] and step_inputs(steps[0]) == []
    assert check_pipeline(steps) == []  # the prompts file does not exist yet: the identity stage makes it
    result = CliRunner().invoke(app, ["identity", "--recipe", str(recipe), "--set", "count=20"])
    assert result.exit_code == 0, result.output
    assert len(_rows(prompts)) == 20 and "wrote 20 self-cognition prompts" in result.output
