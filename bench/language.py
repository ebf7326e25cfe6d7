"""Language filter throughput: the word-level filter against the sentence-level one it replaced
(datakit/filters/language.py at 2a0f1c0, read from git history), on the same chains, in one run.

    python bench/language.py                  # 2,000 synthetic chains + the 224 labelled ones
    python bench/language.py --chains 20000   # more synthetic chains

Chains: tests/data/language/chains.jsonl (hand-labelled, 12 languages), and synthetic chains of
thought made from them: each joins 6 labelled chains of one language as paragraphs (chains labelled
not mixed: a corpus is mostly pure), so every row has R1-like length. Runs: `mix` (about 45% en, 35% zh, the rest spread over the other ten: a
multilingual corpus), `en`, `zh` and `de` (synthetic chains of that language only), each followed by
the labelled set, and `cold`. Each side (filter) runs in its own process on one core (BLAS threads off):
`score` then `keep` on the whole frame, the best of 3 passes after an untimed call on 20 rows (model
load). That is the steady state of a long run, where the word-level filter's per-word cache is
filled; the `cold` row times one pass over the labelled set in a fresh process, every word new.
Words are letter runs and CJK characters, counted the same way for both sides. The labelled set's
precision/recall/F1 of each side is printed too. The previous filter is read from git history; a
shallow clone or an sdist has none, and its side is skipped.
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
OLD_DESIGN = "2a0f1c0"  # the last commit whose language filter judged sentences and paragraphs whole
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
    """The filter of one side: this tree's, or the previous design's from git history."""
    if side == "datakit":
        from datakit.filters.language import Language

        return Language()
    path = folder / "old_language.py"
    path.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_DESIGN}:datakit/filters/language.py"],
                                   capture_output=True, text=True, check=True).stdout)
    spec = importlib.util.spec_from_file_location("old_language", path)
    module = sys.modules["old_language"] = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # for its dataclass
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.Language()


def has_old_design() -> bool:
    ref = f"{OLD_DESIGN}:datakit/filters/language.py"
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", ref], capture_output=True, check=False).returncode == 0


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
        started = time.perf_counter()
        scores = f.score(frame)  # type: ignore[attr-defined]
        verdicts = f.keep(pl.concat([frame, scores], how="horizontal")).to_list()  # type: ignore[attr-defined]
        seconds = min(seconds, time.perf_counter() - started)
    mixed = [r["mixed"] for r in labelled]
    rejected = [v is not None for v in verdicts[len(rows) - len(labelled):]]
    tp = sum(r and m for r, m in zip(rejected, mixed))
    precision = tp / max(sum(rejected), 1)
    recall = tp / sum(mixed)
    return {"rows": len(rows), "words": sum(len(WORDS.findall(r["text"])) for r in rows), "seconds": seconds,
            "precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def compare(synthetic: int = 2000) -> list[dict]:
    """Both filters on the same chains, each in its own process: rows for bench/run.py's table
    (`rate`: chains/s on one core; `baseline`: the previous filter)."""
    if not has_old_design():
        print(f"language: {OLD_DESIGN} is not in this clone's history; nothing to compare against")
        return []
    rows = []
    for name, args in (("mix", []), ("en", ["--only", "en"]), ("zh", ["--only", "zh"]), ("de", ["--only", "de"]), ("cold", ["--cold"])):
        args = ["--chains", str(synthetic), *args]
        base, ours = run_side(__file__, "old", args), run_side(__file__, "datakit", args)
        for result in (base, ours):
            result["rate"] = result["rows"] / result["seconds"]
            result["words_rate"] = result["words"] / result["seconds"]
        rows.append({"stage": f"language {name}", "rows": ours["rows"], "unit": "chain/s",
                     "baseline": base, "datakit": ours, "ratio": ours["rate"] / base["rate"], "ratio_means": "chains/s on one core"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=2000, help="synthetic chains (6 labelled chains each)")
    parser.add_argument("--side", choices=["datakit", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per side (read when numpy loads)
        report_side(run(args.side, args.chains, args.cold, args.only))
        return
    results = compare(args.chains)
    if not results:
        return
    header = f"{'run':<21} {'chains':>7} {'side':<12} {'chains/s':>9} {'words/s':>10} {'precision':>9} {'recall':>7} {'F1':>6} {'RSS MB':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        for name, side in ((f"@{OLD_DESIGN}", r["baseline"]), ("word-level", r["datakit"])):
            print(f"{r['stage'].removeprefix('language '):<21} {r['rows']:>7,} {name:<12} {side['rate']:>9.1f} "
                  f"{side['words_rate']:>10,.0f} {side['precision']:>9.3f} {side['recall']:>7.3f} {side['f1']:>6.3f} {side['peak_rss_mb']:>7.0f}")
        print(f"{'':<21} ratio word-level / @{OLD_DESIGN}: {r['ratio']:.2f}x")
    print("chains/s and words/s on one core; precision/recall/F1: rejecting the labelled chains marked mixed.")


if __name__ == "__main__":
    main()
