"""Language filter throughput: the word-level filter against the sentence-level one it replaced
(datakit/filters/language.py at 2a0f1c0, read from git history), and against the word-level filter
before its lexicon (d7e4f1f: windows judged by LID and per-word votes alone), on the same chains, in
one run.

    python bench/language.py                  # 2,000 synthetic chains + the 224 labelled ones
    python bench/language.py --chains 20000   # more synthetic chains
    python bench/language.py --rounds 3       # each side 3 times, in turn, its best kept (a busy machine)

Chains: tests/data/language/chains.jsonl (hand-labelled, 12 languages), and synthetic chains of
thought made from them: each joins 6 labelled chains of one language as paragraphs (chains labelled
not mixed: a corpus is mostly pure), so every row has R1-like length. Runs: `mix` (about 45% en, 35% zh, the rest spread over the other ten: a
multilingual corpus), `en`, `zh` and `de` (synthetic chains of that language only), each followed by
the labelled set, and `cold`. Each side (filter) runs in its own process on one core (BLAS threads off):
`score` then `keep` on the whole frame, the best of 3 passes after an untimed call on 20 rows (model
load), timed in CPU seconds of the side's process (other work on a shared machine stretches wall time,
and the sides run one after the other). That is the steady state of a long run, where the word-level filter's per-word cache is
filled; the `cold` row times one pass over the labelled set in a fresh process, every word new.
Words are letter runs and CJK characters, counted the same way for every side. The labelled set's
precision/recall/F1 of each side is printed too (the `F1 holdout` column: on the held-out set,
tests/data/language/holdout.jsonl, scored after the timed passes). The previous filters are read from
git history; a shallow clone or an sdist has none, and their sides are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import report_side, run_side

ROOT = Path(__file__).resolve().parents[1]
CHAINS = ROOT / "tests" / "data" / "language" / "chains.jsonl"
HOLDOUT = ROOT / "tests" / "data" / "language" / "holdout.jsonl"
OLD_DESIGN = "2a0f1c0"  # the last commit whose language filter judged sentences and paragraphs whole
PREVIOUS = "d7e4f1f"  # the word-level filter before the lexicon (evidence words, sentences, quote edges)
REVISIONS = {"old": OLD_DESIGN, "previous": PREVIOUS}
WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_]+")
WEIGHTS = {"en": 45, "zh": 35}  # the other labelled languages share the rest evenly


def chains(synthetic: int, only: str | None = None, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(labelled chains, synthetic chains made of 6 pure labelled ones of one language each; all of
    language `only` when given)."""
    labelled = [json.loads(line) for line in CHAINS.read_text().splitlines()]
    by_language: dict[str, list[str]] = {}
    for chain in labelled:
        if not chain["mixed"]:  # a corpus is mostly pure; the labelled set (half mixed) follows
            by_language.setdefault(chain["language"], []).append(chain["text"])
    others = [lang for lang in by_language if lang not in WEIGHTS]
    weights = {**WEIGHTS, **{lang: (100 - sum(WEIGHTS.values())) / len(others) for lang in others}}
    if only:
        weights = {only: 1}
    rng = random.Random(seed)
    languages = rng.choices(list(weights), weights=list(weights.values()), k=synthetic)
    made = [{"language": lang, "text": "\n\n".join(rng.choices(by_language[lang], k=6))} for lang in languages]
    return labelled, made


def load_filter(side: str, folder: Path) -> object:
    """The filter of one side: this tree's, or an earlier one's from git history (`REVISIONS`)."""
    if side == "datakit":
        from datakit.filters.language import Language

        return Language()
    path = folder / f"{side}_language.py"
    path.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{REVISIONS[side]}:datakit/filters/language.py"],
                                   capture_output=True, text=True, check=True).stdout)
    spec = importlib.util.spec_from_file_location(f"{side}_language", path)
    module = sys.modules[f"{side}_language"] = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # for its dataclass
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.Language()


def has_revision(revision: str) -> bool:
    ref = f"{revision}:datakit/filters/language.py"
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", ref], capture_output=True, check=False).returncode == 0


def figures(rejected: list[bool], mixed: list[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of rejecting the chains labelled mixed."""
    tp = sum(r and m for r, m in zip(rejected, mixed))
    precision, recall = tp / max(sum(rejected), 1), tp / max(sum(mixed), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def run(side: str, synthetic: int, cold: bool, only: str | None) -> dict:
    """Time one side on the chains (`cold`: the labelled ones only, with no warm-up call)."""
    import polars as pl

    labelled, made = chains(synthetic, only)
    rows = labelled if cold else made + labelled
    frame = pl.DataFrame({"reasoning": [r["text"] for r in rows], "language": [r["language"] for r in rows]})
    with tempfile.TemporaryDirectory(prefix="bench-language-") as folder:
        f = load_filter(side, Path(folder))
    f.setup({})  # type: ignore[attr-defined]
    if not cold:
        f.score(frame.head(20))  # type: ignore[attr-defined]
    seconds = float("inf")
    for _ in range(1 if cold else 3):  # the best of 3: other work on the machine only ever slows a pass
        started = time.process_time()
        scores = f.score(frame)  # type: ignore[attr-defined]
        verdicts = f.keep(pl.concat([frame, scores], how="horizontal")).to_list()  # type: ignore[attr-defined]
        seconds = min(seconds, time.process_time() - started)
    precision, recall, f1 = figures([v is not None for v in verdicts[len(rows) - len(labelled):]], [r["mixed"] for r in labelled])
    holdout = [json.loads(line) for line in HOLDOUT.read_text().splitlines()] if HOLDOUT.exists() else []
    f1_holdout = None
    if holdout and not cold:
        frame = pl.DataFrame({"reasoning": [r["text"] for r in holdout], "language": [r["language"] for r in holdout]})
        verdicts = f.keep(pl.concat([frame, f.score(frame)], how="horizontal")).to_list()  # type: ignore[attr-defined]
        f1_holdout = figures([v is not None for v in verdicts], [r["mixed"] for r in holdout])[2]
    return {"rows": len(rows), "words": sum(len(WORDS.findall(r["text"])) for r in rows), "seconds": seconds,
            "precision": precision, "recall": recall, "f1": f1, "f1_holdout": f1_holdout}


def compare(synthetic: int = 2000, rounds: int = 1) -> list[dict]:
    """The filters on the same chains, each in its own process: rows for bench/run.py's table
    (`rate`: chains/s on one core; `baseline`: the sentence-level filter; `previous`, when its
    revision is in the history: the word-level filter before the lexicon, and `ratio_previous`). With
    `rounds` > 1 the sides run that many times in turn and each keeps its fastest run."""
    if not has_revision(OLD_DESIGN):
        print(f"language: {OLD_DESIGN} is not in this clone's history; nothing to compare against")
        return []
    with_previous = has_revision(PREVIOUS)
    rows = []
    for name, args in (("mix", []), ("en", ["--only", "en"]), ("zh", ["--only", "zh"]), ("de", ["--only", "de"]), ("cold", ["--cold"])):
        args = ["--chains", str(synthetic), *args]
        sides = ["old", "datakit", *(["previous"] if with_previous else [])]
        best: dict[str, dict] = {}
        for _ in range(rounds):
            for side in sides:
                result = run_side(__file__, side, args)
                if side not in best or result["seconds"] < best[side]["seconds"]:
                    best[side] = result
        base, ours, previous = best["old"], best["datakit"], best.get("previous")
        for result in (base, ours, previous):
            if result is not None:
                result["rate"] = result["rows"] / result["seconds"]
                result["words_rate"] = result["words"] / result["seconds"]
        row = {"stage": f"language {name}", "rows": ours["rows"], "unit": "chain/s",
               "baseline": base, "datakit": ours, "ratio": ours["rate"] / base["rate"], "ratio_means": "chains/s on one core"}
        if previous is not None:
            row.update(previous=previous, ratio_previous=ours["rate"] / previous["rate"])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=2000, help="synthetic chains (6 labelled chains each)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side, in turn; the fastest is kept")
    parser.add_argument("--side", choices=["datakit", *REVISIONS], help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per side (read when numpy loads)
        report_side(run(args.side, args.chains, args.cold, args.only))
        return
    results = compare(args.chains, args.rounds)
    if not results:
        return
    header = (f"{'run':<21} {'chains':>7} {'side':<12} {'chains/s':>9} {'words/s':>10} {'precision':>9} {'recall':>7} {'F1':>6} "
              f"{'F1 holdout':>10} {'RSS MB':>7}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        sides = [(f"@{OLD_DESIGN}", r["baseline"]), *([(f"@{PREVIOUS}", r["previous"])] if "previous" in r else []), ("this tree", r["datakit"])]
        for name, side in sides:
            holdout = "—" if side.get("f1_holdout") is None else f"{side['f1_holdout']:.3f}"
            print(f"{r['stage'].removeprefix('language '):<21} {r['rows']:>7,} {name:<12} {side['rate']:>9.1f} "
                  f"{side['words_rate']:>10,.0f} {side['precision']:>9.3f} {side['recall']:>7.3f} {side['f1']:>6.3f} {holdout:>10} {side['peak_rss_mb']:>7.0f}")
        against = f"ratio this tree / @{OLD_DESIGN}: {r['ratio']:.2f}x"
        if "ratio_previous" in r:
            against += f", / @{PREVIOUS}: {r['ratio_previous']:.2f}x"
        print(f"{'':<21} {against}")
    print("chains/s and words/s on one core; precision/recall/F1: rejecting the labelled chains marked mixed "
          "(F1 holdout: on tests/data/language/holdout.jsonl).")


if __name__ == "__main__":
    main()
