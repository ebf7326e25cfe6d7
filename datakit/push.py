"""`datakit push`: publish a stage folder (sample, filter or mix) on the Hugging Face Hub as a dataset.

The folder is first staged: the exact tree that is uploaded (the card as README.md, the shards under
data/<config>/ in the Hub's file naming, the manifest, report and plots under datakit/), built beside
the stage folder because a stage never edits its input. The card is rendered from the manifests,
reports and rows alone, with nothing time-dependent, so staging the same folder twice gives the same
bytes, and the upload compares file hashes with the repo to skip a push that would change nothing.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import yaml

from datakit import __version__
from datakit.dataset import MANIFEST, SHARD_DIR, card_configs, read_json, read_manifest, write_text_atomic
from datakit.decontam import unchecked
from datakit.errors import DatakitError
from datakit.schema import RULE_VERIFIERS, verified_by
from datakit.sft_format import PROMPT_COMPLETION

CARD = "README.md"
DATA_DIR = "data"
DATAKIT_DIR = "datakit"
# Stage files that travel with the data: the card links the plots, the rest is the full record.
DATAKIT_FILES = ("manifest.json", "report.json", "funnel.png", "lengths.png", "mix.png")
# The repo folders push owns: remote files in them that the staging lacks are deleted.
OWNED_DIRS = (DATA_DIR, DATAKIT_DIR)
CARD_TEMPLATE = "dataset_card.md"  # in datakit/templates/: the card's markdown body, a Jinja template
TAGS = ["reasoning", "synthetic", "distillation", "datakit", "rejection-sampling"]
# The columns the card counts rows by, in groups (kind and domain together).
PROFILE_GROUPS = {"kind/domain": ("kind", "domain"), "language": ("language",), "generator": ("generator",), "source": ("source",)}
SIZE_CATEGORIES = [
    (10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"), (10**12, "100B<n<1T"),
]

# Hub configs per stage: (config name, sub-folder holding its shards, what it holds); the first is
# the default config.
LAYOUT = {
    "sample": [("default", "", "one row per prompt and sample, unfiltered")],
    "filter": [
        ("accepted", "accepted", "samples that passed every filter"),
        ("rejected", "rejected", "samples a filter dropped, with `rejected_by` and `reject_reason` (for auditing, not training)"),
    ],
    "mix": [
        ("default", "", "the SFT corpus, in TRL's conversational format (`messages`)"),
        (PROMPT_COMPLETION, PROMPT_COMPLETION, "the same rows in TRL's conversational prompt/completion format (`prompt`, `completion`): loss on the completion only, with any chat template"),
        ("removed", "removed", "rows removed by dedup and decontamination, with `removed_by` and `removed_reason` (for auditing, not training)"),
    ],
}


@dataclass
class PushConfig:
    """Everything `datakit push` needs; a recipe's `push:` section maps onto it one-to-one."""

    folder: str = ""  # a finished sample, filter or mix folder
    repo_id: str = ""  # ORG/NAME of the dataset repo
    private: bool = False  # create the repo private (an existing repo keeps its visibility)
    staging: str = ""  # where the upload is built; default: <folder>-hub beside the folder
    license: str = "other"  # a Hub license id; "other": the card says the teacher's and prompts' terms apply
    pretty_name: str = ""  # default: the repo's name
    dry_run: bool = False  # stage and render the card, upload nothing


@dataclass
class Part:
    """One Hub config: its name and the shards it is made of."""

    name: str
    what: str
    files: list[Path]
    rows: int


@dataclass
class Stage:
    """A finished stage folder, read for pushing."""

    kind: str  # sample | filter | mix
    folder: Path
    manifest: dict[str, Any]
    report: dict[str, Any] | None
    parts: list[Part]  # the default config first
    extras: list[str]  # DATAKIT_FILES present in the folder


@dataclass
class Step:
    """One stage behind the pushed rows, as its manifest recorded it."""

    manifest: dict[str, Any]
    report: dict[str, Any] | None
    source: str | None  # the mix source it came in through


@dataclass
class PushSummary:
    staging: Path
    repo_id: str
    files: list[str]  # repo paths, as staged
    parts: list[Part]
    committed: bool = False  # False on a dry run, or when the repo already held these exact files
    dry_run: bool = False

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id}"


def run_push(config: PushConfig, api: Any = None) -> PushSummary:
    """Stage `config.folder` and, unless a dry run, upload it; `api` is an `HfApi` (tests pass a fake)."""
    if not config.folder or not config.repo_id:
        raise DatakitError("push needs a stage folder and a repo id (ORG/NAME)")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", config.repo_id):
        raise DatakitError(f"repo id {config.repo_id!r}: expected ORG/NAME, e.g. my-org/r1-distill-mix")
    stage = open_stage(Path(config.folder))
    folder = stage.folder.resolve()  # so that `.` stages to ../<name>-hub
    staging = Path(config.staging) if config.staging else folder.parent / f"{folder.name}-hub"
    files = stage_folder(stage, staging, render_card(stage, config))
    summary = PushSummary(staging, config.repo_id, files, stage.parts, dry_run=config.dry_run)
    if not config.dry_run:
        message = f"datakit {__version__}: push {stage.kind} folder, run {stage.manifest.get('run_hash', '?')}"
        summary.committed = upload(staging, files, config, message, api)
    return summary


# --- the stage folder -----------------------------------------------------------------------------


def open_stage(folder: Path) -> Stage:
    """Read a finished stage folder; refuse anything else with the reason."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise DatakitError(f"{folder}: no {MANIFEST}; push takes a folder written by `datakit sample`, `filter` or `mix`")
    kind = manifest.get("stage")
    if kind not in LAYOUT:
        hint = f" (push {folder.parent}, the stage folder holding it)" if "/" in str(kind) else ""
        raise DatakitError(f"{folder}: stage {kind!r} cannot be pushed{hint}; push a sample, filter or mix folder")
    if not manifest.get("complete"):
        raise DatakitError(f"{folder}: the {kind} stage has not finished (manifest says complete: false); re-run its command first")
    parts = []
    for name, sub, what in LAYOUT[kind]:
        rows = {f: pq.ParquetFile(f).metadata.num_rows for f in sorted((folder / sub / SHARD_DIR).glob("part-*.parquet"))}
        files = [f for f, n in rows.items() if n]  # `datasets` fails on an empty Parquet file: leave those out
        if not files and not parts:
            raise DatakitError(f"{folder}: no rows under {Path(sub, SHARD_DIR)}/, so the `{name}` config would be empty; nothing to push")
        if files:  # a config without files (e.g. nothing removed) is left out: it would break `load_dataset`
            _check_same_columns(name, files)
            parts.append(Part(name, what, files, sum(rows.values())))
    report = read_json(folder / "report.json", "re-run the stage or fix the file")
    return Stage(kind, folder, manifest, report, parts, [f for f in DATAKIT_FILES if (folder / f).is_file()])


def _check_same_columns(config: str, files: list[Path]) -> None:
    """`datasets` reads a config only when all its files have the same columns: refuse to push one it cannot load."""
    first = set(pq.read_schema(files[0]).names)
    for f in files[1:]:
        other = set(pq.read_schema(f).names)
        if other != first:
            raise DatakitError(
                f"{f} and {files[0]} have different columns ({', '.join(sorted(first ^ other))}); the `{config}` config would "
                "not load with `datasets`, so it cannot be pushed"
            )


def lineage(stage: Stage) -> list[Step]:
    """The pushed stage and every stage behind it (a filter's input, a mix's sources), in that order."""
    return list(_walk(stage.manifest, stage.report, None))


def _walk(manifest: dict[str, Any], report: dict[str, Any] | None, source: str | None) -> Iterator[Step]:
    yield Step(manifest, report, source)
    if manifest.get("input_manifest"):
        yield from _walk(manifest["input_manifest"], None, source)
    for s in manifest.get("sources") or []:
        if s.get("manifest"):
            yield from _walk(s["manifest"], s.get("report"), s["name"])


def profile(parts: list[Part]) -> dict[str, Counter]:
    """Rows per (config, value) of the column groups the card describes, read a shard at a time."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for part in parts:
        for f in part.files:
            names = pq.read_schema(f).names
            table = pq.read_table(f, columns=[c for keys in PROFILE_GROUPS.values() for c in keys if c in names])
            for group, keys in PROFILE_GROUPS.items():
                if all(k in names for k in keys):
                    for row in table.group_by(list(keys)).aggregate([([], "count_all")]).to_pylist():
                        counts[group][(part.name, tuple(row[k] for k in keys))] += row["count_all"]
    return counts


def _values(counter: Counter) -> list[Any]:
    """The distinct values of a one-column group, over every config."""
    return sorted({value for _, (value,) in counter}, key=str)


# --- staging --------------------------------------------------------------------------------------


def hub_files(stage: Stage) -> dict[str, Path]:
    """Repo path -> local file: shards named as the Hub names splits, so `datasets` detects them.

    datakit/manifest.json comes first: it marks the folder as staged by push (see _check_staging), so
    a staging killed half-way is redone on the next run."""
    files = {f"{DATAKIT_DIR}/{name}": stage.folder / name for name in stage.extras}
    for part in stage.parts:
        for i, f in enumerate(part.files):
            files[f"{DATA_DIR}/{part.name}/train-{i:05d}-of-{len(part.files):05d}.parquet"] = f
    return files


def stage_folder(stage: Stage, staging: Path, card: str) -> list[str]:
    """Make `staging` hold exactly the card and the stage's files (hard links where possible); return
    the repo paths. Files already right are left alone and stale ones removed, so re-staging is idempotent."""
    _check_staging(stage.folder, staging)
    files = hub_files(stage)
    for rel, src in files.items():
        _place(src, staging / rel)
    card_path = staging / CARD
    if not card_path.is_file() or card_path.read_text() != card:
        write_text_atomic(card_path, card)
    wanted = {*files, CARD}
    for path in sorted(staging.rglob("*"), reverse=True):  # children before their folders
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.relative_to(staging).as_posix() not in wanted:
            path.unlink()
    return sorted(wanted)


def _check_staging(folder: Path, staging: Path) -> None:
    a, b = folder.resolve(), staging.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise DatakitError(f"{staging}: the staging folder must lie outside the stage folder {folder} (a stage never edits its input)")
    if staging.exists() and (not staging.is_dir() or any(staging.iterdir())) and not (staging / DATAKIT_DIR / MANIFEST).is_file():
        # re-staging deletes what it did not put there: only ever in a folder push made
        raise DatakitError(f"{staging}: exists, is not empty and was not staged by datakit push; choose a new --staging folder")


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) `src` to `dst`, unless `dst` already has its bytes."""
    if dst.is_file() and (os.path.samefile(src, dst) or filecmp.cmp(src, dst, shallow=False)):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# --- the card -------------------------------------------------------------------------------------


def render_card(stage: Stage, config: PushConfig) -> str:
    """The dataset card: YAML metadata from huggingface_hub's DatasetCardData, then the body from
    datakit/templates/dataset_card.md: what the rows are, how they were checked and made."""
    from huggingface_hub import DatasetCard

    counts = profile(_counted(stage))
    steps = lineage(stage)
    verified = verification(stage)
    code, note = _usage(stage, config.repo_id)
    card = DatasetCard.from_template(
        _card_data(stage, config, counts),
        template_str=(files("datakit") / "templates" / CARD_TEMPLATE).read_text(encoding="utf-8"),
        title=_pretty_name(config),
        intro=_overview(stage, counts, verified),
        parts=stage.parts,
        checked=_checked(stage, verified),
        verification=_verification_rows(verified) if stage.kind != "sample" else [],
        composition=_composition(stage, counts),
        provenance=_provenance(stage, steps, counts),
        license_text=_license(config, counts),
        usage_code=code,
        usage_note=note,
        limitations=_limitations(stage, steps, counts),
    )
    return str(card).rstrip("\n") + "\n"


def size_category(rows: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), "n>1T")


def _card_data(stage: Stage, config: PushConfig, counts: dict[str, Counter]) -> Any:
    from huggingface_hub import DatasetCardData

    languages = [lang for lang in _values(counts["language"]) if re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", str(lang))]
    return DatasetCardData(
        license=config.license,
        pretty_name=_pretty_name(config),
        task_categories=["text-generation"],
        language=languages or None,
        size_categories=[size_category(stage.parts[0].rows)],  # of the default config: the rows a user trains on
        tags=TAGS,
        configs=card_configs({p.name: f"{DATA_DIR}/{p.name}/train-*" for p in stage.parts}),
    )


def _pretty_name(config: PushConfig) -> str:
    return config.pretty_name or config.repo_id.split("/")[-1]


def _overview(stage: Stage, counts: dict[str, Counter], verified: Counter | None) -> str:
    default = stage.parts[0]
    kinds = Counter()
    for (part, (kind, _)), n in counts["kind/domain"].items():
        if part == default.name:
            kinds[kind] += n
    split = f"{kinds['reasoning']:,} reasoning, {kinds['non_reasoning']:,} non-reasoning"
    teachers = _listing(_values(counts["generator"]))
    return {
        "sample": (
            f"Raw samples from the teacher ({teachers}) made by `datakit sample`, before any filtering: {default.rows:,} completions "
            f"({split}). Each row holds the prompt (`messages`), the completion split into `reasoning` (inside `<think>…</think>`) "
            "and `answer`, and the sampling parameters. Wrong, truncated and malformed answers are still here: these rows are the "
            "input of rejection sampling, not training data."
        ),
        "filter": (
            f"Teacher samples ({teachers}) after rejection sampling as in DeepSeek-R1 (arXiv 2501.12948, §2.3.3), made by "
            f"`datakit filter`: `accepted` holds the {default.rows:,} samples ({split}) that passed every filter of the chain, "
            "`rejected` the samples a filter dropped, each with the filter (`rejected_by`) and the reason (`reject_reason`). "
            "Every filter's score columns are kept, so thresholds can be re-decided without recomputing them."
        ),
        "mix": (
            f"A supervised fine-tuning corpus in the DeepSeek-R1 style (arXiv 2501.12948, §2.3.3): {default.rows:,} conversations "
            f"({split}) whose last turn is the teacher's answer ({teachers}) with its chain of thought in `<think>…</think>`. "
            f"Of these rows {_verified_phrase(verified)} (see *How the rows were checked*); all were deduplicated, decontaminated "
            "against benchmarks and drawn to per-domain quotas by `datakit mix`; the `removed` config keeps every row that dedup "
            "and decontamination removed, with the reason, for auditing."
        ),
    }[stage.kind]


# --- what proved the rows correct -----------------------------------------------------------------


def verification(stage: Stage) -> Counter | None:
    """Rows of the default config per `verified_by` value (a rule verifier's name, `judge`, `none`),
    read from the verdict columns a shard at a time; None for a mix whose rows do not record it."""
    found: Counter = Counter()
    for f in stage.parts[0].files:
        names = pq.read_schema(f).names
        if stage.kind == "mix" and "verified_by" not in names:
            return None  # a mix made before datakit carried the verdicts: unknown, never "unverified"
        wanted = [c for c in ("verified_by", "correct_verdict", "correct_verifier", "judge_verdict") if c in names]
        frame = pl.read_parquet(f, columns=wanted) if wanted else pl.DataFrame({"_": [None] * pq.ParquetFile(f).metadata.num_rows})
        found.update(frame.with_columns(verified_by(names).alias("verified_by"))["verified_by"].to_list())
    return found


def shares(verified: Counter) -> dict[str, int]:
    """Rows verified by a rule (math, code, choice, exact), by the judge, and not at all."""
    rule = sum(verified[v] for v in RULE_VERIFIERS)
    return {"rule": rule, "judge": verified["judge"], "none": sum(verified.values()) - rule - verified["judge"]}


def _verified_phrase(verified: Counter | None) -> str:
    if verified is None:
        return "it is not recorded which were proven correct"
    total, split = sum(verified.values()), shares(verified)
    return f"{_share(split['rule'] + split['judge'], total)} were proven correct and {_share(split['none'], total)} passed unverified"


def _checked(stage: Stage, verified: Counter | None) -> str:
    """What the verdicts prove about the default config, with the counts behind each claim."""
    default = stage.parts[0].name
    if verified is None:
        return (
            f"The rows of `{default}` do not record which check proved them (`verified_by`: a mix made by an older datakit), so "
            "how many were verified is unknown; see the filter chains below."
        )
    if stage.kind == "sample":
        return f"None of the {sum(verified.values()):,} rows has been checked: these are the teacher's raw samples."
    total, split = sum(verified.values()), shares(verified)
    return (
        f"Of the {total:,} rows of `{default}`, {split['rule']:,} ({_share(split['rule'], total)}) have a final answer proven correct "
        f"by a rule verifier (math-verify, code tests in a sandbox, choice or exact match), {split['judge']:,} "
        f"({_share(split['judge'], total)}) were judged correct by an LLM judge, and {split['none']:,} ({_share(split['none'], total)}) "
        "are unverified: no rule or judge checked them, and they passed on form alone (`unverified: keep`, or a source without a "
        "correctness check). The column `verified_by` (filter folders: `correct_verdict`, `judge_verdict`) says which, row by row."
    )


def _verification_rows(verified: Counter | None) -> list[dict[str, Any]]:
    if not verified:
        return []
    total = sum(verified.values())
    labels = {**{v: f"rule: `{v}`" for v in RULE_VERIFIERS}, "judge": "LLM judge", "none": "not verified"}
    order = [*RULE_VERIFIERS, "judge", "none"]
    return [{"label": labels[v], "rows": verified[v], "share": _share(verified[v], total)} for v in order if verified[v]]


def _counted(stage: Stage) -> list[Part]:
    """The configs the card's tables count rows of: `prompt_completion` holds the default's rows again."""
    return [p for p in stage.parts if p.name != PROMPT_COMPLETION]


def _composition(stage: Stage, counts: dict[str, Counter]) -> str:
    names = [p.name for p in _counted(stage)]
    out = ["## Rows by domain and kind", _count_table(counts["kind/domain"], names, ["kind", "domain"])]
    if counts["language"]:
        out += ["Rows by expected answer language (`language`):", _count_table(counts["language"], names, ["language"])]
    if counts["source"]:
        out += ["Rows by prompt source (`source`):", _count_table(counts["source"], names, ["prompt source"])]
    return "\n\n".join(out)


def _provenance(stage: Stage, steps: list[Step], counts: dict[str, Counter]) -> str:
    names = [p.name for p in _counted(stage)]
    out = [
        "### Teacher",
        "The model that wrote each row (`generator`):",
        _count_table(counts["generator"], names, ["teacher"]),
        "### Sampling",
        _sampling(steps),
    ]
    unrecorded = _unrecorded_sources(stage)
    if unrecorded:
        out.append(f"Mix source(s) {_listing(unrecorded)} carry no datakit manifest: how they were sampled and filtered is not recorded here.")
    for step in steps:
        if step.manifest.get("stage") == "filter":
            out += _filter_section(step, stage.extras if step is steps[0] else [])  # only the pushed stage's plots are staged
    if stage.kind == "mix":
        out += _mix_section(stage)
    out += ["### Versions and files", _versions(steps)]
    return "\n\n".join(out)


def _sampling(steps: list[Step]) -> str:
    runs = {s.manifest.get("run_hash"): s for s in steps if s.manifest.get("stage") == "sample"}
    if not runs:
        return "No `datakit sample` manifest is recorded for these rows (they were sampled elsewhere), so the sampling parameters are unknown."
    keys = list(dict.fromkeys(k for s in runs.values() for k in (s.manifest.get("config") or {}).get("sampling", {})))
    with_source = any(s.source for s in runs.values())
    rows = []
    for s in runs.values():
        config = s.manifest.get("config") or {}
        cells = [f"`{s.manifest.get('model', '?')}`", str((config.get("backend") or {}).get("name", "?"))]
        cells += [str(config.get("sampling", {}).get(k, "—")) for k in keys]
        rows.append(([f"`{s.source}`"] if with_source else []) + cells)
    header = (["mix source"] if with_source else []) + ["model", "backend"] + keys
    note = "Each prompt's seed derives from `seed` and its `prompt_id`; `top_k` 0 is off."
    return _table(header, rows, "l" * (len(header) - len(keys)) + "r" * len(keys)) + "\n\n" + note


def _filter_section(step: Step, images: list[str]) -> list[str]:
    chain = step.manifest.get("chain") or {}
    via = f" (mix source `{step.source}`)" if step.source else ""
    out = [
        f"### Filter chain `{chain.get('name', '?')}`{via}",
        "The chain as run: filters in order, each seeing only the rows the ones before kept.",
        "```yaml\n" + (chain.get("yaml") or "").rstrip("\n") + "\n```",
    ]
    report = step.report
    if not report:
        return out + ["No filter report was recorded, so the funnel is unknown."]
    rows = [
        [f"`{f['filter']}`", f"{f['rows_in']:,}", f"{f['dropped']:,}", f"{f['rows_out']:,}", ", ".join(f"{k} ({v:,})" for k, v in list(f["reasons"].items())[:3])]
        for f in report["funnel"]
    ]
    out.append(_table(["filter", "rows in", "dropped", "rows out", "top reasons"], rows, "lrrrl"))
    kept = f"Kept **{report['rows_out']:,}** of {report['rows_in']:,} samples ({_share(report['rows_out'], report['rows_in'])})"
    prompts = report.get("prompts") or {}
    if prompts:
        kept += f"; {prompts['zero_accepted']:,} of {prompts['in']:,} prompts have no accepted sample"
    out.append(kept + ".")
    if report.get("by_domain"):
        out.append("Pass rate by domain: " + ", ".join(f"{d} {v['out']:,}/{v['in']:,} ({v['pass_rate']:.0%})" for d, v in report["by_domain"].items()) + ".")
    agreement = report.get("rule_judge_agreement") or {}
    if agreement.get("rows"):
        out.append(f"Where both a rule verifier and the judge decided a row, they agreed on {agreement['agree']:,} of {agreement['rows']:,}.")
    out += [f"![{name}](datakit/{name})" for name in ("funnel.png", "lengths.png") if name in images]
    return out


def _mix_section(stage: Stage) -> list[str]:
    config = stage.manifest.get("config") or {}
    report = stage.report or {}
    out = ["### Mix", "The `mix:` recipe as resolved:", "```yaml\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip("\n") + "\n```"]
    if not report:
        return out + ["No mix report was recorded."]
    sources = [[f"`{s['name']}`", f"`{s['path']}`", f"{s['rows']:,}", _num(s.get("removed")), _num(s.get("chosen"))] for s in report.get("sources", [])]
    out.append(_table(["source", "path", "rows in", "removed", "chosen"], sources, "llrrr"))
    targets = report.get("targets") or {}
    out.append("Targets: " + "; ".join(f"{kind} {t['taken']:,} of {t['target']:,}" for kind, t in targets.items()) + ".")
    quotas = []
    for q in report.get("quotas", []):
        taken = f"{q['taken']:,}" + (f" ({q['upsampled']:,} drawn again)" if q.get("upsampled") else "")
        short = f"**{q['short_by']:,} short**" if q["short_by"] > 0 else "0"
        quotas.append([q["kind"], q["domain"], f"{q['quota']:,}", f"{q['available']:,}", taken, short])
    out.append(_table(["kind", "domain", "quota", "available", "taken", "short by"], quotas, "llrrrr"))
    shortfalls = report.get("shortfalls") or []
    if shortfalls:
        out.append(f"**{len(shortfalls)} quota(s) fell short**: " + "; ".join(f"{q['kind']}/{q['domain']} got {q['taken']:,} of {q['quota']:,}" for q in shortfalls) + ".")
    else:
        out.append("Every quota was met.")
    removed = report.get("removed") or {}
    near = f" (MinHash LSH, Jaccard ≈ {report['dedup']['jaccard_threshold']})" if report.get("dedup") else ""
    out.append(
        f"Removed before drawing: {removed.get('exact_duplicate', 0):,} exact duplicates, {removed.get('near_duplicate', 0):,} near "
        f"duplicates{near}, {removed.get('contaminated', 0):,} contaminated rows (all in the `removed` config)."
    )
    out += _decontamination(report.get("decontamination") or {})
    if "mix.png" in stage.extras:
        out.append("![mix: each quota against the rows taken](datakit/mix.png)")
    return out


def _decontamination(decontam: dict[str, Any]) -> list[str]:
    benchmarks = decontam.get("benchmarks") or {}
    if not benchmarks:
        return ["No benchmark was checked for contamination."]
    rows = [
        [f"`{name}`", "**not checked**", "—", "—"] if "error" in b else [f"`{name}`", f"{b['items']:,}", f"{b['ngrams']:,}", f"{b['removed']:,}"]
        for name, b in benchmarks.items()
    ]
    out = [f"Decontamination ({decontam.get('n', '?')}-gram overlap of normalised words with each benchmark's problems):", _table(["benchmark", "items", "n-grams", "rows removed"], rows, "lrrr")]
    failed = unchecked(decontam.get("benchmarks") or {})
    if failed:
        groups = "; ".join(", ".join(f"`{n}`" for n in names) + f": {error}" for error, names in failed.items())
        out.append(f"**Not checked** (the benchmark could not be loaded, so rows may overlap it): {groups}.")
    return out


def _versions(steps: list[Step]) -> str:
    with_source = any(s.source for s in steps)
    rows = [
        ([f"`{s.source}`" if s.source else "—"] if with_source else [])
        + [f"`{s.manifest.get('stage', '?')}`", str(s.manifest.get("datakit_version", "?")), str(s.manifest.get("schema_version", "?")), f"`{s.manifest.get('run_hash', '?')}`"]
        for s in steps
    ]
    header = (["mix source"] if with_source else []) + ["stage", "datakit", "schema version", "run hash"]
    files = (
        f"`{DATAKIT_DIR}/manifest.json` records every setting of this stage and of the stages before it (`input_manifest`, "
        f"`sources[].manifest`); `{DATAKIT_DIR}/report.json`, where present, the full report. The columns are described in "
        "datakit's `data/README.md`. Card rendered by datakit " + __version__ + "."
    )
    return _table(header, rows, "l" * len(header)) + "\n\n" + files


def _license(config: PushConfig, counts: dict[str, Counter]) -> str:
    teachers = _listing(_values(counts["generator"]))
    sources = _listing(_values(counts["source"]))
    if config.license == "other":
        text = (
            f"The pusher set no license (`license: other`). These rows were written by {teachers} from prompts in {sources}: "
            "the teacher model's terms of use and the licenses of the prompt sources apply to them. Check those terms before "
            "using or redistributing this data."
        )
    else:
        text = (
            f"Released under `{config.license}` by the pusher. The teacher model's terms of use ({teachers}) and the licenses "
            f"of the prompt sources ({sources}) may also apply."
        )
    return text


def _usage(stage: Stage, repo_id: str) -> tuple[str, str]:
    """The "How to use" code (it runs as printed, on a CPU as on a GPU) and the note under it."""
    names = [p.name for p in stage.parts]
    train_on = PROMPT_COMPLETION if PROMPT_COMPLETION in names else names[0]
    code = f'from datasets import load_dataset\n\nds = load_dataset("{repo_id}", "{train_on}", split="train")'
    if stage.kind != "mix":
        source = f"sources: [{{path: {repo_id}, config: accepted}}]" if stage.kind == "filter" else f"datakit filter {repo_id} out/filtered"
        return code, (
            "These rows are samples, not yet training conversations: `messages` is the prompt and `completion` the teacher's "
            f"reply (`reasoning` + `answer`). datakit reads this repo directly (`{source}`) to continue the pipeline; "
            "`datakit mix` writes TRL's conversational format."
        )
    code += (
        "\n\nimport torch\nfrom trl import SFTConfig, SFTTrainer\n\ntrainer = SFTTrainer(\n"
        '    model="Qwen/Qwen2.5-1.5B-Instruct",  # the student\n    train_dataset=ds,\n'
        "    # bf16 where the GPU has it; a CPU trains in fp32 (SFTConfig's default bf16=True fails there)\n"
        '    args=SFTConfig(output_dir="student", max_length=32768, bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported()),\n'
        ")\ntrainer.train()\ntrainer.save_model()  # the student, in student/"
    )
    if train_on == PROMPT_COMPLETION:
        form = (
            "`prompt_completion` holds the rows of `default` split before the final assistant turn (`prompt`, `completion`), so "
            "TRL puts the loss on the completion only, with any chat template; `default` holds them whole (`messages`), on which "
            "TRL trains every token unless the template has generation markers for `assistant_only_loss`."
        )
    else:
        form = "`SFTTrainer` reads the `messages` column as-is (TRL's conversational format)."
    return code, (
        f"{form} TRL applies the student's chat template; check that it keeps the `<think>` block of assistant turns (some strip "
        "it). The other columns are provenance; `removed` is for auditing, not training."
    )


def _limitations(stage: Stage, steps: list[Step], counts: dict[str, Counter]) -> list[str]:
    teachers = _listing(_values(counts["generator"]))
    out = [f"Synthetic data: every answer was written by {teachers} and carries its errors, biases and knowledge cut-off."]
    if stage.kind == "sample":
        out.append("Unfiltered: wrong, truncated, repetitive and language-mixed answers are included.")
    filters = [s for s in steps if s.manifest.get("stage") == "filter"]
    if not filters and stage.kind != "sample":
        out.append("No filter record is attached, so how these rows were checked is unknown.")
    out += [_chain_limitations(s) for s in filters]
    unrecorded = _unrecorded_sources(stage)
    if unrecorded:
        out.append(f"Rows of mix source(s) {_listing(unrecorded)} carry no datakit record: how they were sampled and checked is unknown.")
    if stage.kind == "filter":
        out.append("`rejected` holds the rows the chain dropped; it is for auditing and re-thresholding, not for training.")
    if stage.kind == "mix":
        out += _mix_limitations(stage.report or {})
    return out


def _chain_limitations(step: Step) -> str:
    """What a filter chain's checks cannot promise, as a bullet with one sub-bullet per check."""
    chain = step.manifest.get("chain") or {}
    filters = _chain_filters(chain.get("yaml", ""))
    notes = []
    if "correctness" in filters:
        notes.append(
            "Correctness was decided by rule verifiers (math-verify for math, unit tests in a sandbox for code, exact and "
            "choice matching): a right final answer reached by flawed reasoning passes, and a correct answer in an unexpected "
            "form can be rejected."
        )
        if filters["correctness"].get("unverified") == "keep":
            notes.append("Rows no rule can check (no reference, or verifier `judge`/`none`) passed the correctness filter unverified (`unverified: keep`).")
    if "judge" in filters:
        notes.append(f"An LLM judge (`{filters['judge'].get('model', 'the default model')}`) decided rows no rule could check; judges make mistakes, small ones more often.")
    if "reward_model" in filters:
        notes.append(f"A reward model (`{filters['reward_model'].get('model', '?')}`) scored answers; its preferences are not ground truth.")
    if "language" in filters:
        notes.append("Language consistency was judged by fastText LID-176 per paragraph (per sentence where a paragraph is mixed), which misreads short and mixed-script text.")
    if not notes:
        notes.append("No correctness check: rows passed on form alone.")
    via = f" (mix source `{step.source}`)" if step.source else ""
    return f"Filter chain `{chain.get('name', '?')}`{via}:" + "".join(f"\n  - {note}" for note in notes)


def _unrecorded_sources(stage: Stage) -> list[str]:
    """Mix sources without a datakit manifest (a foreign file or Hub dataset): nothing is known of their making."""
    return [s["name"] for s in stage.manifest.get("sources") or [] if not s.get("manifest")]


def _mix_limitations(report: dict[str, Any]) -> list[str]:
    decontam = report.get("decontamination") or {}
    out = [
        (
            f"Decontamination is by exact {decontam.get('n', '?')}-gram overlap of normalised words: it over-flags common phrases "
            "(audit `decontam_ngram` in `removed`) and misses paraphrased, translated or reformatted benchmark problems."
        )
    ]
    failed = unchecked(decontam.get("benchmarks") or {})
    if failed:
        names = [n for group in failed.values() for n in group]
        out.append("Not checked for contamination against " + ", ".join(f"`{n}`" for n in names) + " (could not be loaded); rows may overlap them.")
    if report.get("shortfalls"):
        out.append("Some quotas fell short (see the quota table), so the mix of domains differs from the recipe's targets.")
    if any(q.get("upsampled") for q in report.get("quotas", [])):
        out.append("Some rows are repeated copies drawn to fill a quota (`copy_index` > 0).")
    return out


def _chain_filters(text: str) -> dict[str, dict[str, Any]]:
    """Filter name -> parameters of a chain, read leniently: a folder made by another datakit version
    (whose filters may have other parameters) must still push."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    items = data.get("filters") if isinstance(data, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            found[item] = {}
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            found[str(name)] = params if isinstance(params, dict) else {}
    return found


def _count_table(counter: Counter, configs: list[str], labels: list[str]) -> str:
    """One row per value (a tuple: one cell per label), one column of row counts per config."""
    values = sorted({value for _, value in counter}, key=str)
    rows = [[*(f"`{v}`" for v in value), *(f"{counter[(c, value)]:,}" for c in configs)] for value in values]
    return _table([*labels, *(f"`{c}`" for c in configs)], rows, "l" * len(labels) + "r" * len(configs))


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows])


def _listing(values: list[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values) or "an unrecorded model"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


# --- upload ---------------------------------------------------------------------------------------


def upload(staging: Path, files: list[str], config: PushConfig, message: str, api: Any = None) -> bool:
    """Create the repo and commit the staged folder, deleting stale files under data/ and datakit/;
    skip the commit when the repo already holds exactly these files. Returns whether it committed.

    LFS blobs the Hub already holds are not sent again, so re-running a killed push resumes it."""
    import httpx
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    if constants.HF_HUB_OFFLINE:
        raise DatakitError(f"HF_HUB_OFFLINE is set, so nothing can be uploaded; the staged folder is ready at {staging}. Unset HF_HUB_OFFLINE to push, or use --dry-run.")
    api = api or HfApi()
    if not (api.token or get_token()):
        raise DatakitError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN to a token with write access (https://huggingface.co/settings/tokens)")
    try:
        api.create_repo(config.repo_id, repo_type="dataset", private=config.private or None, exist_ok=True)
        remote = {f.path: f for f in api.list_repo_tree(config.repo_id, repo_type="dataset", recursive=True) if isinstance(f, RepoFile)}
        changed = [p for p in files if not _same_file(staging / p, remote.get(p))]
        stale = [p for p in remote if p.split("/")[0] in OWNED_DIRS and p not in files]
        if not changed and not stale:
            return False
        api.upload_folder(
            repo_id=config.repo_id, repo_type="dataset", folder_path=staging, commit_message=message,
            delete_patterns=[f"{d}/*" for d in OWNED_DIRS],
        )
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        hint = {401: " (the token is invalid or expired: run `hf auth login`)", 403: f" (the token cannot write to {config.repo_id.split('/')[0]}: it needs write access)"}
        raise DatakitError(f"the Hub refused the push to {config.repo_id}{hint.get(status, '')}: {e}") from e
    except (ConnectionError, TimeoutError, httpx.TransportError) as e:
        raise DatakitError(f"cannot reach the Hugging Face Hub ({e}); the staged folder is ready at {staging}; re-run to resume") from e
    return True


def _same_file(local: Path, remote: Any) -> bool:
    """Whether the repo's file has these bytes: by its LFS sha256, or its git blob id for small files."""
    if remote is None or remote.size != local.stat().st_size:
        return False
    if remote.lfs:
        return remote.lfs.sha256 == _sha256(local)
    return remote.blob_id == hashlib.sha1(b"blob %d\0" % remote.size + local.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
