"""R1's evaluation table as presets: AIME 2024, MATH-500, GPQA Diamond and LiveCodeBench, each with its Hub
copy, configuration, split, column mapping, domain and k, so `datakit eval --benchmark r1` scores a model
the way DeepSeek-R1 scored its distilled students (arXiv 2501.12948, §3.1 and Table 5).

R1 samples with temperature 0.6 and top-p 0.95 up to 32,768 tokens (`SamplingParams`' defaults) and
estimates pass@1 from k answers a problem, "typically between 4 and 64, depending on the test set size";
the only k it names is AIME's 64 (cons@64). The others here follow that rule: fewer problems, more answers
each, about 1,500-2,000 answers a benchmark (AIME: 30 x 64, MATH-500: 500 x 4, GPQA Diamond: 198 x 8,
LiveCodeBench v4_v5: a few hundred problems x 8; R1 reports pass@1 only for code).

A preset can also read a local copy in the dataset's published schema (`PRESET=PATH`): that is how the
tests and offline users run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError

GPQA_OPTIONS = "Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3"  # the right answer is always first
DEFAULT_K = 4  # answers per problem of a benchmark that is not a preset


@dataclass(frozen=True)
class Preset:
    """One benchmark of R1's table: where it is published and how its columns map onto a prompt."""

    name: str
    path: str  # Hub dataset id
    split: str
    domain: str  # math (boxed answers, math-verify), science (lettered options, choice) or code (tests in the sandbox)
    k: int
    mapping: dict[str, str] = field(default_factory=dict)
    config: str | None = None  # the Hub dataset's configuration
    question_template: str | None = None  # the user turn from several columns (`IngestConfig.question_template`)

    def settings(self, path: str | None = None) -> dict[str, Any]:
        """The benchmark as a recipe's `eval.benchmarks` entry writes it (`EvalBenchmark`), optionally read
        from a local copy at `path`."""
        ingest: dict[str, Any] = {"mapping": dict(self.mapping), "split": self.split}
        if self.config is not None:
            ingest["config"] = self.config
        if self.question_template is not None:
            ingest["question_template"] = self.question_template
        return {"name": self.name, "path": path or self.path, "k": self.k, "domain": self.domain, "ingest": ingest}


PRESETS = {
    preset.name: preset
    for preset in (
        Preset("aime24", "HuggingFaceH4/aime_2024", "train", "math", 64, {"question": "problem", "reference": "answer"}),
        Preset("math500", "HuggingFaceH4/MATH-500", "test", "math", 4, {"id": "unique_id", "question": "problem", "reference": "answer"}),
        # GPQA's four answer columns become options in a seeded order per question (`IngestConfig.choice_seed`)
        Preset("gpqa_diamond", "Idavidrein/gpqa", "train", "science", 8,
               {"id": "Record ID", "question": "Question", "reference": "Correct Answer", "choices": GPQA_OPTIONS}, "gpqa_diamond"),
        # v4_v5: the problems published between LiveCodeBench's releases 4 and 5 (about Aug 2024 - Jan 2025,
        # R1's window); AtCoder and Codeforces stdin/stdout problems and LeetCode functional ones, whose
        # starter code follows the statement: it names the class and method the tests call (empty otherwise)
        Preset("livecodebench", "lighteval/code_generation_lite", "test", "code", 8,
               {"id": "question_id", "question": "question_content", "tests": "public_test_cases,private_test_cases"}, "v4_v5",
               "{question_content}\n\n{starter_code}"),
    )
}
R1_TABLE = "r1"  # `--benchmark r1`: the four presets, in R1's table order


def benchmark_settings(item: str, k: int | None = None, domain: str | None = None, mapping: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The `EvalBenchmark` settings one `--benchmark` value names: `r1` (the four presets), a preset's name
    (its Hub copy), PRESET=PATH (the preset read from a local file or folder in the published schema), or
    NAME=PATH / PATH (any problems; the domain comes from the rows' `domain` column or `domain`). `k`,
    `domain` and `mapping`, when given, apply over a preset's own."""
    name, eq, path = item.partition("=")
    if not eq and item in (R1_TABLE, *PRESETS) and not Path(item).exists():
        names = list(PRESETS) if item == R1_TABLE else [item]
        return [_override(PRESETS[n].settings(), k, domain, mapping) for n in names]
    if not eq:
        name, path = Path(item).stem, item
    if not name or not path:
        raise DatakitError(f"--benchmark {item!r}: expected r1, a preset ({', '.join(PRESETS)}), PRESET=PATH or NAME=PATH")
    if name in PRESETS:
        return [_override(PRESETS[name].settings(path), k, domain, mapping)]
    plain = {"name": name, "path": path, "k": DEFAULT_K, "domain": None, "ingest": {"mapping": {}}}
    return [_override(plain, k, domain, mapping)]


def _override(settings: dict[str, Any], k: int | None, domain: str | None, mapping: dict[str, str] | None) -> dict[str, Any]:
    if k is not None:
        settings["k"] = k
    if domain is not None:
        settings["domain"] = domain
    settings["ingest"]["mapping"].update(mapping or {})
    return settings
