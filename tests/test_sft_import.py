"""Bringing an existing `messages`-format SFT set into the mix (R1 reused parts of DeepSeek-V3's SFT data):
rows in Tulu 3's published schema, mapped by the recipe's own `sft:` settings, enter by quota, with R1's
empty think block, deduplicated and decontaminated like sampled rows; malformed ones are rejects."""

from __future__ import annotations

import json
from pathlib import Path

from datakit.config import build, load_recipe_section
from datakit.dataset import read_table
from datakit.decontam import Benchmark
from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix

ROOT = Path(__file__).resolve().parent.parent
TULU = ROOT / "tests" / "data" / "sources" / "tulu-3-sft-mixture.jsonl"


def tulu_source() -> MixSource:
    """The recipe's tulu-3 source, pointed at the local fixture."""
    mix = build(MixConfig, load_recipe_section(ROOT / "recipes" / "r1-800k.yaml", "mix"))
    spec = next(s for s in mix.sources if s.sft is not None)
    assert spec.path == "allenai/tulu-3-sft-mixture"
    return MixSource(path=str(TULU), name=spec.name, sft=spec.sft)


def test_an_sft_set_enters_by_quota_with_r1_think_blocks_and_rejects_named(tmp_path: Path) -> None:
    quotas = {"non_reasoning": {"general": 5, "qa": 5, "writing": 5}}
    config = MixConfig(sources=[tulu_source()], output=str(tmp_path / "mix"), quotas=quotas,
                       decontamination=DecontaminationConfig(benchmarks=[]), progress=False)
    report = run_mix(config).report
    rows = {r["prompt_id"]: r for r in read_table(tmp_path / "mix").to_pylist()}
    assert sorted(rows) == ["ai2-adapt-dev/flan_v2_converted_1", "ai2-adapt-dev/no_robots_converted_2",
                            "ai2-adapt-dev/oasst1_converted_0", "ai2-adapt-dev/tulu_v3.9_wildchat_100k_3"]
    assert {r["domain"] for r in rows.values()} == {"general", "qa", "writing"}
    assert {r["kind"] for r in rows.values()} == {"non_reasoning"}
    flan = rows["ai2-adapt-dev/flan_v2_converted_1"]["messages"]
    assert flan[-1] == {"role": "assistant", "content": "<think>\n\n</think>\n\nYes"}  # R1's empty block
    haiku = rows["ai2-adapt-dev/no_robots_converted_2"]["messages"]
    assert [m["role"] for m in haiku] == ["system", "user", "assistant"]
    chat = rows["ai2-adapt-dev/tulu_v3.9_wildchat_100k_3"]["messages"]
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]  # earlier turns kept as context
    assert chat[-1]["content"] == "<think>\nSomething surprising and true.\n</think>\n\nOctopuses have three hearts."
    rejects = [json.loads(line) for line in (tmp_path / "mix" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(5, "source"), (6, "messages[2].role"), (7, "messages[1].role")]  # 1-based lines
    assert "'ai2-adapt-dev/personahub_math_v5_regen_149960' is not in `domains`" in rejects[0]["reason"]
    assert "the last turn must be the assistant's" in rejects[1]["reason"] and "'bot'" in rejects[2]["reason"]
    assert all(r["file"].startswith(str(TULU)) for r in rejects)
    assert report["rows_rejected"] == 3 and report["rows_out"] == 4


def test_imported_rows_are_deduplicated_and_decontaminated_like_sampled_ones(tmp_path: Path) -> None:
    twice = tmp_path / "again.jsonl"
    twice.write_text(TULU.read_text().splitlines()[0].replace("oasst1_converted_0", "copy_0") + "\n")
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "problem": "Answer with yes or no: is the sun a star?"}) + "\n")
    imp = tulu_source().sft
    config = MixConfig(
        sources=[tulu_source(), MixSource(path=str(twice), name="again", sft=imp)],
        output=str(tmp_path / "mix"), quotas={"non_reasoning": {"general": 10, "qa": 10, "writing": 10}},
        decontamination=DecontaminationConfig(n=8, benchmarks=[Benchmark("bench", str(bench), ["problem"], "id")]),
        progress=False,
    )
    report = run_mix(config).report
    kept = {r["prompt_id"] for r in read_table(tmp_path / "mix").to_pylist()}
    assert "ai2-adapt-dev/flan_v2_converted_1" not in kept and "copy_0" not in kept
    assert report["removed"]["contaminated"] == 1 and report["removed"]["exact_duplicate"] == 1
