"""Every plot datakit draws, from the reports the stages write: one place, one look.

Each `*_figure` function takes what its stage wrote (the filter's and mix's report.json, distill's
`loss_history`, eval's scores.json) and returns a matplotlib Figure, so a test can read the numbers back
from the drawn artists; `save` writes it as a PNG. Figures are built without pyplot: no global state,
no display needed, and nothing to close.

| file | stage | what it shows |
|---|---|---|
| funnel.png | filter | rows left after each filter, and what each one dropped (its commonest reasons) |
| lengths.png | filter | completion length before and after filtering, bars as wide as their bins |
| mix.png | mix | every quota against the rows it got (short ones in red) and the rows available |
| loss.png | distill | training loss by optimizer step, epoch ends marked |
| eval.png | eval | pass@1 and cons@k per benchmark, with 95% intervals, before/after and their difference |
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from datakit.distill import loss_trend

DPI = 100  # small PNGs: a card or README shows them at about this size
KEPT, DROPPED, QUOTA, SHORT, NEUTRAL = "#4C72B0", "#C44E52", "#DDDDDD", "#C44E52", "#8C8C8C"
MET = "#55A868"
ROLE_COLORS = {"before": NEUTRAL, "after": MET}
OTHER_COLORS = ["#4C72B0", "#DD8452", "#8172B3", "#937860", "#DA8BC3"]
NOTE = 8  # font size of annotations on the bars


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (making its folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _thousands(ax: Axes, axis: str = "x") -> None:
    """Integer counts with thousands separators, never fractional ticks."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


# --- filter --------------------------------------------------------------------------------------


def funnel_figure(report: dict[str, Any]) -> Figure:
    """funnel.png: one bar per step, input first: the rows left after it, and beside them (red) the rows
    that step dropped, with its two commonest reasons."""
    steps = report["funnel"]
    names = ["input", *(s["filter"] for s in steps)]
    left = [report["rows_in"], *(s["rows_out"] for s in steps)]
    dropped = [0, *(s["dropped"] for s in steps)]
    fig = _figure(8, 0.55 * len(names) + 1.6)
    ax = fig.add_subplot()
    rows = list(range(len(names)))
    ax.barh(rows, left, color=KEPT, label="rows left after the step")
    ax.barh(rows, dropped, left=left, color=DROPPED, label="dropped by the step")
    ax.text(report["rows_in"], 0, f"  {report['rows_in']:,}", va="center", fontsize=NOTE)
    for row, step in enumerate(steps, start=1):
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in list(step["reasons"].items())[:2])
        note = f"  {step['rows_out']:,} left, {step['dropped']:,} dropped" + (f" ({reasons})" if reasons else "")
        ax.text(step["rows_in"], row, note, va="center", fontsize=NOTE)
    ax.set_yticks(rows, names)
    ax.invert_yaxis()  # the input on top, the funnel flowing down
    ax.set_xlim(0, max(report["rows_in"], 1) * 1.8)
    _thousands(ax)
    ax.set_xlabel("samples")
    ax.set_title(f"filter funnel: {report['chain']} ({report['rows_out']:,} of {report['rows_in']:,} kept)")
    ax.legend(loc="lower right", fontsize=NOTE)
    return fig


def length_bars(histogram: dict[str, Any]) -> tuple[list[float], list[float], list[int], list[int]]:
    """(left edges, widths, counts before, counts after) of the bins from the first to the last non-empty one:
    no empty categories at either end. The report's last bin is open-ended; it is drawn one doubling wide."""
    edges, before, after = histogram["bins"], histogram["before"], histogram["after"]
    used = [i for i, (b, a) in enumerate(zip(before, after)) if b or a] or [0]
    first, last = used[0], used[-1]
    rights = [*edges[1:], max(edges[-1] * 2, 1)]
    lefts = edges[first : last + 1]
    widths = [right - left for left, right in zip(lefts, rights[first : last + 1])]
    return lefts, widths, before[first : last + 1], after[first : last + 1]


def lengths_figure(report: dict[str, Any]) -> Figure:
    """lengths.png: the length column before and after filtering, as a histogram with unequal bins must be
    drawn: each bar spans its bin's real edges and stands as high as its samples per unit of length (per
    doubling on a log axis, per narrowest bin on a linear one), so its area is its count; the counts
    themselves (accepted/all) are written on top. Where the bins span more than 16x the x axis is
    logarithmic (said on the axis), and the first bin, from 0, starts at 1."""
    histogram = report["length_histogram"]
    lefts, widths, before, after = length_bars(histogram)
    rights = [left + width for left, width in zip(lefts, widths)]
    logarithmic = rights[-1] / max(lefts[0], 1) > 16
    if logarithmic:
        lefts = [max(left, 1) for left in lefts]
        spans, unit = [math.log2(right / left) for left, right in zip(lefts, rights)], "doubling of length"
    else:
        spans, unit = [width / min(widths) for width in widths], f"{min(widths):,} tokens"
    fig = _figure(8, 3.8)
    ax = fig.add_subplot()
    shown = {"before": [n / span for n, span in zip(before, spans)], "after": [n / span for n, span in zip(after, spans)]}
    widths = [right - left for left, right in zip(lefts, rights)]
    ax.bar(lefts, shown["before"], widths, align="edge", color=NEUTRAL, alpha=0.55, edgecolor="white", label=f"before filtering ({sum(before):,})")
    ax.bar(lefts, shown["after"], widths, align="edge", color=MET, edgecolor="white", label=f"accepted ({sum(after):,})")
    for left, right, height, kept, total in zip(lefts, rights, shown["before"], after, before):
        if not total:
            continue
        middle = math.sqrt(left * right) if logarithmic else (left + right) / 2
        ax.text(middle, height, f"{kept:,}/{total:,}", ha="center", va="bottom", fontsize=7)
    column = histogram["column"].replace("_", " ")
    if logarithmic:
        ax.set_xscale("log", base=2)
        ax.set_xticks([*lefts, rights[-1]])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.xaxis.set_minor_locator(MaxNLocator(nbins=1))  # no unlabelled minor ticks between the bin edges
    else:
        _thousands(ax)
    ax.set_xlabel(f"{column}{' (log scale)' if logarithmic else ''}; bars span their bins")
    ax.set_xlim(lefts[0], rights[-1])
    ax.set_ylim(0, max(shown["before"] + [1]) * 1.15)  # room for the counts on top
    ax.set_ylabel(f"samples per {unit}")
    ax.set_title("length before and after filtering (on each bar: accepted/all)")
    ax.legend(fontsize=NOTE)
    return fig


# --- mix -----------------------------------------------------------------------------------------


def mix_figure(report: dict[str, Any]) -> Figure:
    """mix.png: per kind and domain, the quota (grey), the rows taken (green when the quota is met, red when
    short) and the rows available after dedup and decontamination (a black tick)."""
    quotas = report["quotas"]
    fig = _figure(10, 0.45 * len(quotas) + 1.8)
    ax = fig.add_subplot()
    rows = np.arange(len(quotas))
    short = np.array([q["short_by"] > 0 for q in quotas], dtype=bool)
    taken = np.array([q["taken"] for q in quotas])
    drawn = [ax.barh(rows, [q["quota"] for q in quotas], height=0.8, color=QUOTA, label="quota")]
    if (~short).any():
        drawn.append(ax.barh(rows[~short], taken[~short], height=0.45, color=MET, label="taken: quota met"))
    if short.any():
        drawn.append(ax.barh(rows[short], taken[short], height=0.45, color=SHORT, label="taken: short of quota"))
    drawn += ax.plot([q["available"] for q in quotas], rows, "|", color="black", markersize=14, markeredgewidth=2,
                     label="available (after dedup and decontamination)")
    right = max([max(q["quota"], q["taken"], q["available"]) for q in quotas] + [1])
    for row, q in zip(rows, quotas):
        ax.text(max(q["quota"], q["taken"], q["available"]), row, f"  {q['taken']:,} / {q['quota']:,}", va="center", fontsize=NOTE)
    ax.set_yticks(rows, [f"{q['kind'].replace('_', '-')} / {q['domain']}" for q in quotas])
    ax.invert_yaxis()
    ax.set_xlim(0, right * 1.3)
    _thousands(ax)
    ax.set_xlabel("rows (taken / quota)")
    ax.set_title(f"mix: {report['rows_out']:,} rows; removed {sum(report['removed'].values()):,} (duplicates, contamination)")
    # beside the bars, never over one; in drawing order: the bars, then the marker
    ax.legend(handles=drawn, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=NOTE)
    return fig


# --- distill -------------------------------------------------------------------------------------


def epoch_ends(history: list[dict[str, float]]) -> list[tuple[int, float]]:
    """(epoch, step at which it ended) for every epoch that ended before the last logged step, read off the
    logged (step, epoch) pairs; none for a history without epochs."""
    if not history or any("epoch" not in h for h in history):
        return []
    steps, epochs = [h["step"] for h in history], [h["epoch"] for h in history]
    return [(e, float(np.interp(e, epochs, steps))) for e in range(1, math.ceil(epochs[-1])) if e >= epochs[0]]


def loss_figure(history: list[dict[str, float]]) -> Figure:
    """loss.png: the training loss at each logged optimizer step (integer ticks), a dashed line where each
    epoch ends, and the mean loss of the first and second half of the steps in the title."""
    first, last = loss_trend(history)
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker="o", ms=3, color=KEPT)
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for epoch, step in epoch_ends(history):
        ax.axvline(step, color=NEUTRAL, linestyle="--", linewidth=1)
        ax.text(step, 0.98, f" end of epoch {epoch}", transform=top, va="top", fontsize=NOTE, color="#555555")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (assistant tokens)")
    ax.set_title(f"distill: mean loss {first:.3f} (first half of steps) -> {last:.3f} (second half)", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


# --- eval ----------------------------------------------------------------------------------------

METRICS = ("pass@1", "cons@k")


def metric_name(metric: str, k: int) -> str:
    """What a panel measures, k included: "pass@1 (mean of 4 answers)", "cons@4 (majority of 4 answers)"."""
    return f"pass@1 (mean of {k} answers)" if metric == "pass@1" else f"cons@{k} (majority of {k} answers)"


def eval_figure(scores: dict[str, Any]) -> Figure:
    """eval.png: a row per benchmark, a panel per metric; in each, a bar per model (its role, before or
    after, as the label where eval knows it, the model's name small below) with its 95% interval as an
    error bar, the value above it, and each later model's paired difference from the first in the title.
    The y axis starts at 0 and ends just above the highest interval, so small scores are not flattened."""
    results = scores["results"]
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    fig = _figure(4.6 * len(METRICS), 3.9 * len(benches))
    axes = fig.subplots(len(benches), len(METRICS), squeeze=False)
    for row, bench in zip(axes, benches):
        mine = [r for r in results if r["benchmark"] == bench]
        compared = [c for c in scores.get("comparisons", []) if c["benchmark"] == bench]
        for ax, metric in zip(row, METRICS):
            _score_panel(ax, metric, mine, compared, scores.get("roles", {}))
    return fig


def _score_panel(ax: Axes, metric: str, results: list[dict[str, Any]], compared: list[dict[str, Any]], roles: dict[str, str]) -> None:
    bench, k = results[0]["benchmark"], results[0]["k"]
    problems = "/".join(str(n) for n in dict.fromkeys(r["problems"] for r in results))
    title = f"{bench}: {metric_name(metric, k)}, {problems} problems"
    if all(r[metric] is None for r in results):
        ax.set_title(title, fontsize=9)
        ax.text(0.5, 0.5, "no majority vote:\nprograms are not voted on", ha="center", va="center", transform=ax.transAxes, color="#555555")
        ax.set_axis_off()
        return
    values = [math.nan if r[metric] is None else r[metric] * 100 for r in results]
    intervals = [r.get(f"{metric}_ci") for r in results]
    below = [v - ci[0] * 100 if ci else math.nan for v, ci in zip(values, intervals)]
    above = [ci[1] * 100 - v if ci else math.nan for v, ci in zip(values, intervals)]
    colors = [ROLE_COLORS.get(roles.get(r["label"]), OTHER_COLORS[i % len(OTHER_COLORS)]) for i, r in enumerate(results)]
    positions = list(range(len(results)))
    ax.bar(positions, np.nan_to_num(values), 0.6, yerr=[below, above], capsize=5, color=colors, ecolor="black")
    highest = max([ci[1] * 100 for ci in intervals if ci] + [v for v in values if not math.isnan(v)] + [1.0])
    top = min(100.0, highest * 1.25 + 1)
    for x, value, ci in zip(positions, values, intervals):
        label = "—" if math.isnan(value) else f"{value:.1f}%"
        ax.text(x, (ci[1] * 100 if ci else np.nan_to_num(value)) + top * 0.015, label, ha="center", va="bottom", fontsize=NOTE)
    ax.set_ylim(0, top * 1.08)  # room for the values above the whiskers
    ax.set_xlim(-0.6, len(results) - 0.4)
    known = [roles.get(r["label"]) for r in results]
    ax.set_xticks(positions, [role or r["label"] for role, r in zip(known, results)], fontweight="bold" if any(known) else "normal")
    under = blended_transform_factory(ax.transData, ax.transAxes)
    for x, role, r in zip(positions, known, results):
        if role:
            ax.text(x, -0.13, r["label"], transform=under, ha="center", va="top", fontsize=7, color="#555555")
    ax.set_ylabel(f"{metric.replace('@k', f'@{k}')} (%), 95% interval")
    lines = [_difference(c, metric, roles) for c in compared if c.get(f"{metric}_diff") is not None]
    ax.set_title("\n".join([title, *lines]), fontsize=9)


def _difference(comparison: dict[str, Any], metric: str, roles: dict[str, str]) -> str:
    """One line: "after − before: +2.5 pts [−1.3, +6.0], within noise"."""
    model, baseline = (roles.get(comparison[side]) or comparison[side] for side in ("model", "baseline"))
    low, high = comparison[f"{metric}_diff_ci"]
    verdict = "beyond noise" if comparison[f"{metric}_beyond_noise"] else "within noise"
    return (f"{model} − {baseline}: {comparison[f'{metric}_diff'] * 100:+.1f} pts "
            f"[{low * 100:+.1f}, {high * 100:+.1f}], {verdict}")


# --- redrawing a run's plots ---------------------------------------------------------------------


def redraw(run: Path, out: Path) -> list[Path]:
    """Draw every plot of a run folder (e.g. out/demo) into `out`, from the reports its finished stage
    folders hold: a filter folder's report.json (funnel.png, lengths.png), a mix folder's (mix.png), a
    distill folder's manifest.json (loss.png), an eval folder's scores.json (eval.png). A stage folder is
    told by its manifest's `stage`; one without its report (still running) is skipped."""
    drawn = []
    for folder in sorted(p for p in run.iterdir() if p.is_dir()):
        manifest, report = _read(folder / "manifest.json"), _read(folder / "report.json")
        if manifest.get("stage") == "filter" and report:
            drawn += [save(funnel_figure(report), out / "funnel.png"), save(lengths_figure(report), out / "lengths.png")]
        elif manifest.get("stage") == "mix" and report:
            drawn.append(save(mix_figure(report), out / "mix.png"))
        elif manifest.get("stage") == "distill" and manifest.get("loss_history"):
            drawn.append(save(loss_figure(manifest["loss_history"]), out / "loss.png"))
        elif (folder / "scores.json").is_file():
            drawn.append(save(eval_figure(_read(folder / "scores.json")), out / "eval.png"))
    return drawn


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
