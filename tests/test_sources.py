"""Every Hub dataset the full R1 recipe samples from, read through the recipe's own mapping against a few
rows in that dataset's published schema (tests/data/sources/README.md says where each was read): a wrong
column name, a missing struct field or an unmapped category fails here, not as a cluster full of rejects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from datakit.errors import DatakitError
from datakit.ingest import CHOICE_LETTERS, IngestConfig, load_prompts
from datakit.pipeline import load_pipeline

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tests" / "data" / "sources"
RECIPE = ROOT / "recipes" / "r1-800k-distill.yaml"

# Hub id -> (fixture, the domains its rows must land in, verifier): one entry per sample run of the recipe
EXPECTED = {
    "AI-MO/NuminaMath-1.5": (SOURCES / "numinamath-1.5.jsonl", {"math"}, "math"),
    "deepmind/code_contests": (ROOT / "tests" / "data" / "code" / "code_contests.jsonl", {"code"}, "code"),
    "allenai/sciq": (SOURCES / "sciq.jsonl", {"science"}, "choice"),
    "MegaScience/TextbookReasoning": (SOURCES / "textbook_reasoning.jsonl", {"science", "math"}, None),
    "K-and-K/knights-and-knaves": (SOURCES / "knights_and_knaves.jsonl", {"logic"}, "judge"),
    "tatsu-lab/alpaca": (SOURCES / "alpaca.jsonl", {"general"}, "judge"),
    "databricks/databricks-dolly-15k": (SOURCES / "dolly-15k.jsonl", {"writing", "qa", "general"}, "judge"),
    "wmt/wmt19": (SOURCES / "wmt19-de-en.jsonl", {"translation"}, "judge"),
}
KIND = {"math": "reasoning", "code": "reasoning", "science": "reasoning", "logic": "reasoning"}


def recipe_sources() -> dict[str, tuple[IngestConfig, str]]:
    """Each sample run's Hub input, ingest config and teacher, as the recipe file says (the self-cognition run
    reads the prompts the recipe's `identity:` stage writes: tests/test_identity.py)."""
    steps = load_pipeline(RECIPE)
    generated = {s.config.output for s in steps if s.stage == "identity"}
    return {s.config.input: (s.config.ingest, s.config.model) for s in steps if s.stage == "sample" and s.config.input not in generated}


def test_the_recipe_samples_every_domain_but_self_cognition_from_a_named_source() -> None:
    sources = recipe_sources()
    assert set(sources) == set(EXPECTED)
    covered = set().union(*(domains for _, domains, _ in EXPECTED.values()))
    assert covered == {"math", "code", "science", "logic", "general", "writing", "qa", "translation"}


@pytest.mark.parametrize("hub_id", sorted(EXPECTED))
def test_each_recipe_mapping_ingests_its_fixture(hub_id: str) -> None:
    ingest, teacher = recipe_sources()[hub_id]
    fixture, domains, verifier = EXPECTED[hub_id]
    rows = [line for line in fixture.read_text().splitlines() if line.strip()]
    got = load_prompts(str(fixture), ingest)
    assert not got.rejects, [r.message() for r in got.rejects]
    assert got.prompts.num_rows == len(rows)
    assert 5 <= len(rows) <= 10 or fixture.parent.name == "code"  # tests/data/code's rows serve test_code_tests too
    prompts = got.prompts.to_pylist()
    assert {p["domain"] for p in prompts} == domains  # every mapped category really occurs in the fixture
    for p in prompts:
        kind = KIND.get(p["domain"], "non_reasoning")
        assert p["kind"] == kind
        assert teacher == ("deepseek-ai/DeepSeek-R1" if kind == "reasoning" else "deepseek-ai/DeepSeek-V3")
        assert p["verifier"] == (verifier or {"science": "judge", "math": "math"}[p["domain"]])
        question = p["messages"][-1]["content"]
        assert p["messages"][-1]["role"] == "user" and question.strip() and "\n\n\n" not in question
        if ingest.question_template:
            assert not re.search(r"\{[a-z_]+(\.[a-z_]+)*\}", question)  # no template field left unfilled
        assert p["reference"] and p["reference"].strip()
        if p["verifier"] == "choice":
            assert p["reference"] in CHOICE_LETTERS
            assert f"{p['reference']}) " in question  # the right letter names one of the listed options


def test_composed_questions_read_every_column_they_name() -> None:
    """Alpaca's optional input follows the instruction (and leaves no blank tail when empty); Dolly's
    context follows its instruction; WMT's German side is the question, its English side the reference."""
    sources = recipe_sources()
    alpaca = load_prompts(str(SOURCES / "alpaca.jsonl"), sources["tatsu-lab/alpaca"][0]).prompts.to_pylist()
    assert alpaca[0]["messages"][-1]["content"] == "Give three tips for staying healthy."
    assert alpaca[1]["messages"][-1]["content"] == "Identify the odd one out.\n\nTwitter, Instagram, Telegram"
    assert alpaca[1]["reference"] == "Telegram"
    dolly = load_prompts(str(SOURCES / "dolly-15k.jsonl"), sources["databricks/databricks-dolly-15k"][0]).prompts.to_pylist()
    assert dolly[0]["messages"][-1]["content"].startswith("When did Virgin Australia start operating?\n\nVirgin Australia, the trading")
    assert [p["domain"] for p in dolly] == ["qa", "general", "qa", "writing", "general", "writing", "qa", "qa"]
    assert "category" not in json.loads(dolly[0]["metadata"])  # consumed by the domain map
    wmt = load_prompts(str(SOURCES / "wmt19-de-en.jsonl"), sources["wmt/wmt19"][0]).prompts.to_pylist()
    assert wmt[3]["messages"][-1]["content"] == "Translate the following German text into English:\n\nDas Spiel endete unentschieden."
    assert wmt[3]["reference"] == "The match ended in a draw." and json.loads(wmt[3]["metadata"]) == {}


def test_an_unmapped_category_or_a_template_typo_is_a_reject_naming_row_field_and_value(tmp_path: Path) -> None:
    dolly_ingest = recipe_sources()["databricks/databricks-dolly-15k"][0]
    bad = tmp_path / "dolly.jsonl"
    bad.write_text(
        json.dumps({"instruction": "Tell a joke.", "context": "", "response": "Knock knock.", "category": "humor"}) + "\n"
        + json.dumps({"instruction": "Hi", "response": "Hello", "category": "open_qa"}) + "\n"
    )
    rejects = load_prompts(str(bad), dolly_ingest).rejects
    assert [(r.line, r.field) for r in rejects] == [(1, "category"), (2, "context")]
    assert "'humor' is not in `domains`" in rejects[0].message() and str(bad) in rejects[0].message()
    assert "no such column" in rejects[1].reason
    with pytest.raises(DatakitError, match="not datakit domains"):
        load_prompts(str(bad), IngestConfig(domains={"humor": "comedy"}))
