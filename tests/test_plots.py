"""Every plot, read back: the stages run on small fixtures (filter -> mix -> distill on the tiny model ->
eval's grading of written answers), each plot is drawn from the report its stage wrote, and the numbers on
the Figure's artists (bar heights and edges, error-bar segments, epoch lines, ticks, legend) are checked
against that report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from matplotlib.patches import Rectangle

from datakit.dataset import write_json_atomic, write_shard
from datakit.distill import DistillConfig, run_distill
from datakit.eval import EvalBenchmark, EvalConfig, _score, assemble_scores, model_label, model_roles
from datakit.filter import FilterConfig, run_filter
from datakit.filters.correctness import Correctness
from datakit.ingest import load_prompts
from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix
from datakit.plots import (
    epoch_ends,
    eval_figure,
    funnel_figure,
    length_bars,
    lengths_figure,
    loss_figure,
    mix_figure,
)
from datakit.schema import SAMPLE_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
SAMPLING = {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 4096, "seed": 0}
CHAIN = """
name: plots
filters:
  - format
  - repetition: {n: 5, max_repetition: 0.3}
  - correctness: {timeout_s: 20, workers: 1}
"""
LENGTHS = [40, 90, 200, 700, 1500, 3000]  # completion tokens, across bins from 0-64 to 2048-4096


def sample_row(prompt: int, index: int) -> dict[str, Any]:
    """Sample `index` of prompt `prompt`: index 1 wrong, index 2 truncated, index 3 looping on odd prompts."""
    reasoning = "Wait, let me check that again. " * 30 if index == 3 and prompt % 2 else f"{prompt} and {prompt} make {2 * prompt}."
    answer = f"\\boxed{{{2 * prompt + (index == 1)}}}"
    return {
        "prompt_id": f"p{prompt}", "messages": [{"role": "user", "content": f"What is {prompt} + {prompt}?"}], "domain": "math",
        "kind": "reasoning", "language": "en", "reference": str(2 * prompt), "verifier": "math", "source": "unit", "metadata": "{}",
        "sample_index": index, "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}", "reasoning": reasoning, "answer": answer,
        "finish_reason": "length" if index == 2 else "stop", "prompt_tokens": 20,
        "completion_tokens": LENGTHS[(prompt + index) % len(LENGTHS)], "generator": "unit", "sampling": SAMPLING,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    """A run folder as the demo's: samples/ (written), filtered/, mix/, student/ (the stages themselves)."""
    root = tmp_path_factory.mktemp("run")
    rows = [sample_row(p, i) for p in range(1, 9) for i in range(4)]
    for shard, start in enumerate(range(0, len(rows), 16)):
        write_shard(root / "samples", shard, pa.Table.from_pylist(rows[start : start + 16], schema=SAMPLE_SCHEMA))
    write_json_atomic(root / "samples" / "manifest.json", {"stage": "sample", "model": "unit"})
    (root / "chain.yaml").write_text(CHAIN)
    run_filter(FilterConfig(input=str(root / "samples"), output=str(root / "filtered"), chain=str(root / "chain.yaml"), workers=1, progress=False))
    run_mix(MixConfig(sources=[MixSource(path=str(root / "filtered"))], output=str(root / "mix"), quotas={"reasoning": {"math": 8, "science": 3}},
                      decontamination=DecontaminationConfig(benchmarks=[]), progress=False))
    run_distill(DistillConfig(model=tiny_model, dataset=str(root / "mix"), output=str(root / "student"), max_length=128, learning_rate=3e-3,
                              warmup_ratio=0.0, num_train_epochs=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                              bf16=False, gradient_checkpointing=False, logging_steps=1, save_steps=100, report_to=[], progress=False, seed=0))
    return root


def report(folder: Path, name: str = "report.json") -> dict[str, Any]:
    return json.loads((folder / name).read_text())


def bars(ax: Axes) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_stages_write_their_plots(run: Path) -> None:
    for plot in ("filtered/funnel.png", "filtered/lengths.png", "mix/mix.png", "student/loss.png"):
        assert (run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot


def test_the_funnel_shows_rows_left_and_dropped_per_step(run: Path) -> None:
    data = report(run / "filtered")
    ax = funnel_figure(data).axes[0]
    left, dropped = bars(ax)
    steps = data["funnel"]
    assert [p.get_width() for p in left] == [data["rows_in"], *(s["rows_out"] for s in steps)]
    assert [p.get_width() for p in dropped] == [0, *(s["dropped"] for s in steps)]
    assert [p.get_x() for p in dropped] == [p.get_width() for p in left]  # each drop starts where its rows left end
    assert [t.get_text() for t in ax.get_yticklabels()] == ["input", "format", "repetition", "correctness"]
    assert ax.yaxis_inverted() and all(s["dropped"] for s in steps)  # input on top; every step dropped something here
    wrong = steps[2]["reasons"]["wrong"]
    assert any(f"wrong {wrong}" in t.get_text() for t in ax.texts)
    assert legend_texts(ax) == ["rows left after the step", "dropped by the step"]


def test_length_bars_span_their_bins_with_area_as_count_and_no_empty_tail(run: Path) -> None:
    histogram = report(run / "filtered")["length_histogram"]
    ax = lengths_figure({"length_histogram": histogram}).axes[0]
    before, after = bars(ax)
    edges, used = histogram["bins"], len(before)
    assert edges[:3] == [0, 64, 128] and used == 7 and histogram["before"][used - 1] and not any(histogram["before"][used:])  # ends at the longest
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel() and ax.get_ylabel() == "samples per doubling of length"
    assert [p.get_x() for p in before] == [1, *edges[1:used]]  # on a log axis the first bin, 0-64, starts at 1
    assert [p.get_x() + p.get_width() for p in before] == edges[1 : used + 1]  # each bar ends at its bin's upper edge
    doublings = [6, *[1] * (used - 1)]  # 1-64 is six doublings, the others one
    assert [p.get_height() * d for p, d in zip(before, doublings)] == pytest.approx(histogram["before"][:used])
    assert [p.get_height() * d for p, d in zip(after, doublings)] == pytest.approx(histogram["after"][:used])
    counts = [t.get_text() for t in ax.texts]
    assert counts == [f"{a}/{b}" for a, b in zip(histogram["after"][:used], histogram["before"][:used]) if b]  # none on an empty bin
    assert legend_texts(ax) == [f"before filtering ({sum(histogram['before'])})", f"accepted ({sum(histogram['after'])})"]


def test_a_narrow_length_range_keeps_a_linear_axis() -> None:
    histogram = {"column": "completion_tokens", "bins": [0, 64, 128, 256, 512], "before": [0, 3, 5, 0, 0], "after": [0, 1, 2, 0, 0]}
    assert length_bars(histogram) == ([64, 128], [64, 128], [3, 5], [1, 2])
    ax = lengths_figure({"length_histogram": histogram}).axes[0]
    assert ax.get_xscale() == "linear" and "log" not in ax.get_xlabel() and ax.get_xlim() == (64, 256)
    assert [(p.get_x(), p.get_width(), p.get_height()) for p in bars(ax)[0]] == [(64, 64, 3), (128, 128, 2.5)]  # 5 in a bin twice as wide
    assert ax.get_ylabel() == "samples per 64 tokens"
    open_ended = {**histogram, "before": [0, 0, 0, 0, 2], "after": [0, 0, 0, 0, 1]}
    assert length_bars(open_ended) == ([512], [512], [2], [1])  # the open last bin, drawn one doubling wide


def test_the_mix_legend_names_every_series_drawn(run: Path) -> None:
    data = report(run / "mix")
    ax = mix_figure(data).axes[0]
    quota, met, short = bars(ax)
    math_q, science_q = data["quotas"]
    assert (math_q["short_by"], science_q["short_by"]) == (0, 3)  # one quota met, one short: both colours drawn
    assert [p.get_width() for p in quota] == [8, 3]
    assert [p.get_width() for p in met] == [8] and [p.get_width() for p in short] == [0]
    assert list(ax.lines[0].get_xdata()) == [math_q["available"], science_q["available"]]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["reasoning / math", "reasoning / science"]
    assert legend_texts(ax) == ["quota", "taken: quota met", "taken: short of quota", "available (after dedup and decontamination)"]
    swatches = {to_hex(h.get_facecolor()) for h in ax.get_legend().legend_handles if isinstance(h, Rectangle)}
    assert {to_hex(p.get_facecolor()) for c in (quota, met, short) for p in c} <= swatches  # every bar colour has its swatch
    assert any(t.get_text() == "  0 / 3" for t in ax.texts)


def test_the_loss_has_integer_steps_and_the_epoch_boundary(run: Path) -> None:
    history = report(run / "student", "manifest.json")["loss_history"]
    assert [h["step"] for h in history] == list(range(1, 9)) and history[3]["epoch"] == pytest.approx(1.0)  # 8 rows, 2 a step: 4 steps an epoch
    fig = loss_figure(history)
    ax = fig.axes[0]
    curve, boundary = ax.lines
    assert list(curve.get_xdata()) == [h["step"] for h in history] and list(curve.get_ydata()) == [h["loss"] for h in history]
    assert list(boundary.get_xdata()) == [4, 4] and epoch_ends(history) == [(1, 4.0)]  # epoch 1 ends at step 4; the run's end is no boundary
    assert any(t.get_text() == " end of epoch 1" for t in ax.texts)
    fig.canvas.draw()
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
    assert epoch_ends([{"step": 1, "loss": 2.0}]) == []  # a manifest from before epochs were logged: no lines


@pytest.fixture(scope="module")
def scores(run: Path, tiny_model: str) -> dict[str, Any]:
    """scores.json for the tiny model (before) and its student (after) on the demo's held-out problems, from
    written answers graded as eval grades: the student right on more problems than its base."""
    bench = EvalBenchmark(name="demo-heldout", path=str(ROOT / "data" / "demo" / "heldout.jsonl"), k=4)
    problems = load_prompts(bench.path, bench.ingest).prompts.to_pylist()
    models = [tiny_model, str(run / "student")]
    results = []
    for model, right_every in zip(models, (8, 3)):
        rows = [
            {**p, "sample_index": i, "completion": answer, "reasoning": "", "answer": answer, "finish_reason": "stop", "prompt_tokens": 9,
             "completion_tokens": 5, "generator": model, "sampling": SAMPLING}
            for n, p in enumerate(problems) for i in range(4)
            for answer in [f"\\boxed{{{p['reference'] if n % right_every == 0 and i < 3 else 'no'}}}"]
        ]
        folder = run / "eval" / model_label(model) / bench.name
        write_shard(folder, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
        results.append(_score(Correctness(workers=1), folder, model, model_label(model), bench))
    config = EvalConfig(models=models, benchmarks=[bench], output=str(run / "eval"))
    scores = assemble_scores(config, results)
    write_json_atomic(run / "eval" / "scores.json", scores)
    return scores


def test_eval_shows_k_problems_intervals_roles_and_the_difference(scores: dict[str, Any], tiny_model: str) -> None:
    before, after = scores["results"]
    assert scores["roles"] == {model_label(tiny_model): "before", "student": "after"}
    fig = eval_figure(scores)
    passed, voted = fig.axes
    comparison = scores["comparisons"][0]
    for ax, metric, shown in ((passed, "pass@1", "pass@1 (mean of 4 answers)"), (voted, "cons@k", "cons@4 (majority of 4 answers)")):
        (drawn,) = bars(ax)
        assert [p.get_height() for p in drawn] == pytest.approx([before[metric] * 100, after[metric] * 100])
        segments = drawn.errorbar.lines[2][0].get_segments()
        assert [y for s in segments for y in (s[0][1], s[1][1])] == pytest.approx([x * 100 for r in (before, after) for x in r[f"{metric}_ci"]])
        assert [s[0][0] for s in segments] == [p.get_x() + p.get_width() / 2 for p in drawn]  # each whisker on its bar
        assert [t.get_text() for t in ax.get_xticklabels()] == ["before", "after"]
        assert {model_label(tiny_model), "student"} <= {t.get_text() for t in ax.texts}  # the names, small, under the roles
        title = ax.get_title()
        assert f"demo-heldout: {shown}, 40 problems" in title
        low, high = comparison[f"{metric}_diff_ci"]
        assert f"after − before: {comparison[f'{metric}_diff'] * 100:+.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}]" in title
        assert ("beyond noise" if comparison[f"{metric}_beyond_noise"] else "within noise") in title
        highest = max(after[f"{metric}_ci"][1], before[f"{metric}_ci"][1]) * 100
        assert highest < ax.get_ylim()[1] <= highest * 1.4 + 2 and ax.get_ylim()[0] == 0  # fitted, not 0-105%
        assert f"{after[metric] * 100:.1f}%" in {t.get_text() for t in ax.texts}


def test_eval_without_roles_labels_by_name_and_a_code_benchmark_has_no_vote_panel(scores: dict[str, Any]) -> None:
    code = [{**r, "benchmark": "humaneval", "cons@k": None, "cons@k_ci": None} for r in scores["results"]]
    fig = eval_figure({"results": scores["results"] + code})  # an older scores.json: no roles, no comparisons
    assert len(fig.axes) == 4
    names = [r["label"] for r in scores["results"]]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == names
    assert "−" not in fig.axes[0].get_title()
    no_vote = fig.axes[3]
    assert not no_vote.axison and "programs are not voted on" in no_vote.texts[0].get_text() and not bars(no_vote)
    assert "humaneval: cons@4" in no_vote.get_title()


def test_the_redraw_script_draws_every_plot_of_a_run_folder(run: Path, scores: dict[str, Any], tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "plots.py")]
    done = subprocess.run([*script, str(run), str(tmp_path / "plots")], capture_output=True, text=True, check=True)
    drawn = [Path(line) for line in done.stdout.splitlines()]
    assert sorted(p.name for p in drawn) == ["eval.png", "funnel.png", "lengths.png", "loss.png", "mix.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in drawn)
    empty = subprocess.run([*script, str(run / "samples"), str(tmp_path / "none")], capture_output=True, text=True, check=False)
    assert empty.returncode == 2 and "no stage folder with a report" in empty.stderr and not (tmp_path / "none").exists()


def test_epoch_ends_between_logged_steps_are_interpolated() -> None:
    every_other = [{"step": s, "epoch": s / 5, "loss": 1.0} for s in range(2, 16, 2)]  # 5 steps an epoch, logged every 2
    assert epoch_ends(every_other) == [(1, pytest.approx(5.0)), (2, pytest.approx(10.0))]


def test_roles_need_a_distill_folder_and_its_base_among_the_models(tmp_path: Path) -> None:
    student = tmp_path / "student"
    write_json_atomic(student / "manifest.json", {"stage": "distill", "config": {"model": "smollm2-135m-instruct"}})
    assert model_roles(["smollm2-135m-instruct", str(student)]) == {"smollm2-135m-instruct": "before", "student": "after"}
    assert model_roles(["org/other-model", str(student)]) == {"student": "after"}  # its base is not evaluated: no "before"
    assert model_roles(["smollm2-135m-instruct", "org/other-model"]) == {}  # no student: names only
