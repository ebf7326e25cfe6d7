"""Prompt ingest: JSONL, Parquet, a saved `datasets` folder or a Hub dataset -> prompt records.

Every input row either becomes a prompt record (see `datakit.schema.PROMPT_SCHEMA`) or a reject
naming the file, line and field at fault; nothing is dropped without a reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datakit.code_tests import programming_language, split_columns, tests_from_row
from datakit.errors import DatakitError, RowError
from datakit.reader import Reject, iter_jsonl, language_problem
from datakit.schema import DOMAINS, KINDS, PROMPT_SCHEMA, VERIFIERS, default_kind, default_verifier
from datakit.verify import option_letter

R1_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Versioned: a changed wording is a new constant (_V2), so prompts built with this one stay comparable.
CHOICE_INSTRUCTION_V1 = "Please reason step by step, and put the letter of the correct option within \\boxed{}."
CHOICE_LETTERS = "ABCDEFGHIJ"  # the letters `datakit.verify.check_choice` grades: 2 to 10 options


@dataclass
class ColumnMapping:
    """Which input column holds each prompt field (a missing optional column falls back to a default)."""

    id: str = "id"
    question: str = "question"
    messages: str = "messages"
    reference: str = "answer"
    tests: str = "tests"
    domain: str = "domain"
    language: str = "language"
    kind: str = "kind"
    verifier: str = "verifier"
    # multiple choice: one column holding a list of option texts, or several comma-separated text columns
    # (GPQA: "Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3")
    choices: str = "choices"


@dataclass
class IngestConfig:
    """How input rows become prompts."""

    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    system_prompt: str | None = None
    math_instruction: bool = True  # append R1's "\boxed{}" instruction to math questions
    domain: str = "general"  # for rows without a domain column
    # The domain column's values -> datakit domains (dolly's category: creative_writing -> writing, ...); a
    # value the map lacks rejects its row. Empty: the column holds datakit domains itself.
    domains: dict[str, str] = field(default_factory=dict)
    # The user turn composed from several columns, e.g. "{instruction}\n\n{input}" or
    # "Translate into English:\n\n{translation.de}" (dotted: a field of a struct column); a line whose
    # columns are all empty is left out. None: the `question` column as it is.
    question_template: str | None = None
    language: str = "en"  # for rows without a language column
    source: str | None = None  # provenance tag; defaults to the input's file name or Hub id
    split: str = "train"  # for dataset folders and Hub ids holding several splits
    config: str | None = None  # a Hub dataset's configuration (GPQA: gpqa_diamond); None: its default
    limit: int | None = None  # keep only the first N valid prompts
    choice_seed: int = 0  # with each prompt's id, seeds its option order: the right letter is uniform, re-runs agree


@dataclass
class Ingested:
    prompts: pa.Table
    rejects: list[Reject]
    rows_read: int


def load_prompts(sources: str | list[str], config: IngestConfig) -> Ingested:
    """Read every row of each source, in order, and turn it into a prompt record or a reject."""
    unknown = sorted({d for d in config.domains.values() if d not in DOMAINS})
    if unknown:
        raise DatakitError(f"ingest.domains maps to {', '.join(unknown)}, not datakit domains ({', '.join(DOMAINS)})")
    if problem := language_problem(config.language):
        raise DatakitError(f"ingest.language: {problem}")
    records: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    first_seen: dict[str, str] = {}
    rows_read = 0
    for source in [sources] if isinstance(sources, str) else sources:
        tag = config.source or _default_source(source)
        for line, row, raw in _iter_rows(source, config):
            if config.limit is not None and len(records) >= config.limit:
                break
            rows_read += 1
            try:
                if isinstance(row, RowError):
                    raise row
                record = to_prompt(row, config, tag)
                if record["prompt_id"] in first_seen:
                    raise RowError("id", f"duplicate prompt_id {record['prompt_id']!r} (first at {first_seen[record['prompt_id']]})")
            except RowError as e:
                rejects.append(Reject(source, line, e.field, e.reason, raw))
                continue
            first_seen[record["prompt_id"]] = f"{source}:{line}"
            records.append(record)
    return Ingested(pa.Table.from_pylist(records, schema=PROMPT_SCHEMA), rejects, rows_read)


def to_prompt(row: Any, config: IngestConfig, source: str) -> dict[str, Any]:
    """Validate one input row and build its prompt record; raise RowError naming the bad field."""
    if not isinstance(row, dict):
        raise RowError(None, f"expected a JSON object, got {type(row).__name__}")
    m = config.mapping
    messages = _messages(row, m, config)
    domain = _domain(row, m, config)
    options = _options(row, m)
    if domain == "math" and config.math_instruction and options is None:
        messages = _with_math_instruction(messages)
    declared_verifier = _optional_str(row, m.verifier)
    code = options is None and (declared_verifier == "code" or (declared_verifier is None and domain == "code"))
    shown: dict[str, Any] = {}
    if options is not None:
        if declared_verifier not in (None, "choice"):
            raise RowError(m.verifier, f"a row with options ({m.choices!r}) is graded by `choice`, got {declared_verifier!r}")
        messages, reference, shown = _choice_prompt(row, m, config, messages, options)
        declared_verifier, consumed = "choice", [m.reference, *split_columns(m.choices)]
    elif code:
        reference, consumed = _code_reference(row, m)
    else:
        reference, consumed = _reference(row, m), [m.reference, *split_columns(m.tests)]
    kind = _optional_str(row, m.kind) or default_kind(domain)
    if kind not in KINDS:
        raise RowError(m.kind, f"must be one of {', '.join(KINDS)}, got {kind!r}")
    verifier = declared_verifier or default_verifier(domain, reference is not None)
    if verifier not in VERIFIERS:
        raise RowError(m.verifier, f"must be one of {', '.join(VERIFIERS)}, got {verifier!r}")
    language = _optional_str(row, m.language)
    if code and programming_language(language):  # e.g. open-r1's `language: cpp` names the code's, not the answer's
        language = None
    if language is not None and (problem := language_problem(language)):
        raise RowError(m.language, problem)  # the language filter would drop every sample of it
    used = {m.id, m.question, m.messages, *consumed, *template_columns(config.question_template), m.domain, m.language, m.kind, m.verifier}
    used |= {name.split(".")[0] for name in consumed}  # a dotted reference consumes its struct column
    extra = {**{k: v for k, v in row.items() if k not in used}, **shown}
    return {
        "prompt_id": _prompt_id(row, m, messages),
        "messages": messages,
        "domain": domain,
        "kind": kind,
        "language": language or config.language,
        "reference": reference,
        "verifier": verifier,
        "source": source,
        "metadata": json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str),
    }


def _messages(row: dict[str, Any], m: ColumnMapping, config: IngestConfig) -> list[dict[str, str]]:
    if row.get(m.messages) is not None:
        messages = _check_messages(row[m.messages], m.messages)
    elif config.question_template is not None:
        messages = [{"role": "user", "content": render_question(row, config.question_template, m.question)}]
    else:
        question = row.get(m.question)
        if question is None:
            raise RowError(m.question, f"missing (no {m.question!r} or {m.messages!r} column in this row)")
        if not isinstance(question, str):
            raise RowError(m.question, f"expected a string, got {type(question).__name__} {question!r:.60}")
        if not question.strip():
            raise RowError(m.question, "empty")
        messages = [{"role": "user", "content": question}]
    if config.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": config.system_prompt}, *messages]
    return messages


def template_columns(template: str | None) -> list[str]:
    """The columns a question template reads (dotted names as written)."""
    if template is None:
        return []
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render_question(row: dict[str, Any], template: str, field_name: str) -> str:
    """Fill `template` from the row's columns. A template line whose columns are all empty (alpaca's
    `input`, dolly's `context`) is dropped, with its text and the blank line it would leave, so no stray gaps remain;
    a column the row lacks is an error naming it (a typo in the template, not an empty value)."""
    kept: list[tuple[str, bool]] = []  # (rendered line, a blank line of the template itself)
    for line in template.split("\n"):
        parts = list(string.Formatter().parse(line))
        values = {name: _template_value(row, name) for _, name, _, _ in parts if name}
        if values and not any(values.values()):
            continue
        rendered = "".join(text + (format(values[name], spec or "") if name else "") for text, name, spec, _ in parts)
        kept.append((rendered, not values and not rendered.strip()))
    lines = [text for i, (text, blank) in enumerate(kept) if not (blank and (i == 0 or i == len(kept) - 1 or kept[i - 1][1]))]
    question = "\n".join(lines).strip()
    if not question:
        raise RowError(field_name, f"empty: every column of the question template {template!r} is empty")
    return question


def _template_value(row: dict[str, Any], name: str) -> str:
    found, value = lookup(row, name)
    if not found:
        raise RowError(name, "no such column in this row (named by the question template)")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(name, f"expected text for the question template, got {type(value).__name__} {value!r:.60}")
    return str(value).strip()


def lookup(row: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(found, value) of a column, or of a field inside struct columns by a dotted path ("translation.en");
    a column whose own name has a dot is found first."""
    if path in row:
        return True, row[path]
    node: Any = row
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _domain(row: dict[str, Any], m: ColumnMapping, config: IngestConfig) -> str:
    """The row's datakit domain: its domain column (through `domains` when set), else the config's."""
    value = _optional_str(row, m.domain)
    if not config.domains:
        return (value or config.domain).strip().lower()
    return map_domain(value, config.domains, m.domain)


def map_domain(value: str | None, domains: dict[str, str], column: str) -> str:
    """A category column's value through a `domains` map; a missing or unmapped value is a RowError
    naming the column and the value, never a silent default."""
    if value is None:
        raise RowError(column, "missing: `domains` maps this column's values to datakit domains")
    if value not in domains:
        raise RowError(column, f"value {value!r} is not in `domains` (maps {', '.join(sorted(domains))})")
    return domains[value]


def _check_messages(value: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowError(name, "expected a non-empty list of {role, content} messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise RowError(f"{name}[{i}]", "expected {role: str, content: str}")
        out.append({"role": msg["role"], "content": msg["content"]})
    if out[-1]["role"] != "user":
        raise RowError(name, f"the last message must be the user's, got {out[-1]['role']!r}")
    return out


def _with_math_instruction(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    last = messages[-1]
    if R1_MATH_INSTRUCTION in last["content"]:
        return messages
    return [*messages[:-1], {"role": "user", "content": f"{last['content'].rstrip()}\n{R1_MATH_INSTRUCTION}"}]


def _options(row: dict[str, Any], m: ColumnMapping) -> list[str] | None:
    """A multiple-choice row's option texts in the dataset's order (None for a row without options):
    one list column, or one text column per option."""
    names = split_columns(m.choices)
    if all(row.get(name) is None for name in names):
        return None
    if len(names) == 1:
        value = row[names[0]]
        if not isinstance(value, list):
            raise RowError(names[0], f"expected a list of option texts, got {type(value).__name__} {value!r:.60}")
        items = [(f"{names[0]}[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [(name, row.get(name)) for name in names]
    options: list[str] = []
    for where, value in items:
        if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise RowError(where, f"expected an option text, got {type(value).__name__} {value!r:.60}")
        text = str(value).strip()
        if not text:
            raise RowError(where, "empty option")
        if text in options:
            raise RowError(where, f"duplicate option {text!r} (the same as {items[options.index(text)][0]!r})")
        options.append(text)
    if not 2 <= len(options) <= len(CHOICE_LETTERS):
        raise RowError(m.choices, f"{len(options)} option(s); a choice prompt needs 2 to {len(CHOICE_LETTERS)} (letters A-J)")
    return options


def _choice_prompt(
    row: dict[str, Any], m: ColumnMapping, config: IngestConfig, messages: list[dict[str, str]], options: list[str]
) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    """The user turn with the options lettered in a seeded order, the right letter, and what metadata keeps.

    Datasets often list the right answer first (GPQA); shuffled per prompt, the right letter is uniform over
    the rows, so a model that favours a letter gains nothing. Seeded by `choice_seed` and the prompt's id
    (or its content), so a re-run asks the same question."""
    correct = _correct_option(row, m, options)
    key = row.get(m.id)
    if key is None:
        key = hashlib.sha256(json.dumps([messages, options], ensure_ascii=False).encode()).hexdigest()
    order = list(range(len(options)))
    random.Random(f"{config.choice_seed}:{key}").shuffle(order)  # a str seed hashes the same in every process
    shown = [options[i] for i in order]
    listing = "\n".join(f"{letter}) {text}" for letter, text in zip(CHOICE_LETTERS, shown))
    content = f"{messages[-1]['content'].rstrip()}\n\n{listing}\n\n{CHOICE_INSTRUCTION_V1}"
    letter = CHOICE_LETTERS[order.index(correct)]
    return [*messages[:-1], {"role": "user", "content": content}], letter, {"choices": shown, "choice_order": order}


def _correct_option(row: dict[str, Any], m: ColumnMapping, options: list[str]) -> int:
    """The dataset-order index of the right option: the reference is its 0-based index (an integer), its
    text, or its letter in the dataset's order; a reference that could name two options is refused."""
    value = row.get(m.reference)
    if value is None:
        raise RowError(m.reference, "missing: a multiple-choice row needs its right option (letter, 0-based index or text)")
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(options):
            raise RowError(m.reference, f"index {value} is out of range for {len(options)} options")
        return value
    if not isinstance(value, str):
        raise RowError(m.reference, f"expected an option's letter, 0-based index or text, got {type(value).__name__}")
    named = {options.index(value.strip())} if value.strip() in options else set()
    letter = option_letter(value, CHOICE_LETTERS[: len(options)])
    if letter is not None:
        named.add(CHOICE_LETTERS.index(letter))
    if not named:
        raise RowError(m.reference, f"{value!r:.60} matches no option's text or letter (an index must be an integer)")
    if len(named) > 1:
        raise RowError(m.reference, f"{value!r} is both an option's text and another option's letter")
    return named.pop()


def _code_reference(row: dict[str, Any], m: ColumnMapping) -> tuple[str | None, list[str]]:
    """Code prompts are checked by their tests, in the canonical form the code verifier reads
    (`datakit.code_tests`), and the columns they came from: the tests column(s), else a reference
    column holding tests as JSON. A plain-text answer is not taken for a test program (run after the
    candidate, most text passes anything): it stays in metadata and the row has no reference."""
    tests = split_columns(m.tests)
    if any(row.get(name) is not None for name in tests):
        return tests_from_row(row, m.tests).to_reference(), tests
    value = row.get(m.reference)
    if isinstance(value, (dict, list)) or (isinstance(value, str) and value.strip()[:1] in ("{", "[")):
        return tests_from_row(row, m.reference).to_reference(), [m.reference]
    return None, []


def _reference(row: dict[str, Any], m: ColumnMapping) -> str | None:
    """The reference answer, else a tests column taken as text."""
    for name in (m.reference, m.tests):
        value = lookup(row, name)[1]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise RowError(name, f"expected a string or number, got {type(value).__name__}")
        return str(value)
    return None


def _optional_str(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type(value).__name__} {value!r:.60}")
    return value


def _prompt_id(row: dict[str, Any], m: ColumnMapping, messages: list[dict[str, str]]) -> str:
    value = row.get(m.id)
    if value is None:  # no id given: derive a stable one from the prompt's content
        blob = json.dumps(messages, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowError(m.id, f"expected a string or integer, got {type(value).__name__}")
    return str(value)


def _default_source(source: str) -> str:
    path = Path(source)
    return path.name if path.exists() else source


def _iter_rows(source: str, config: IngestConfig) -> Iterator[tuple[int, Any, str]]:
    """Yield (line or row number, row or RowError, raw text) from whatever `source` is."""
    path = Path(source)
    if path.is_file() and path.suffix in (".jsonl", ".json", ".ndjson"):
        yield from iter_jsonl(path)
    elif path.is_file() and path.suffix == ".parquet":
        yield from _iter_arrow_rows(pq.ParquetFile(path).iter_batches())
    elif path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        yield from _iter_datasets(_load_from_disk(path, config.split))
    elif path.is_dir() and sorted(path.rglob("*.parquet")):
        for f in sorted(path.rglob("*.parquet")):
            yield from _iter_arrow_rows(pq.ParquetFile(f).iter_batches())
    elif path.exists():
        raise DatakitError(f"{source}: not a .jsonl, .parquet, Parquet folder or saved `datasets` folder")
    else:
        yield from _iter_datasets(_load_from_hub(source, config.split, config.config))


def _iter_arrow_rows(batches: Iterator[pa.RecordBatch | pa.Table]) -> Iterator[tuple[int, Any, str]]:
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            yield number, row, json.dumps(row, ensure_ascii=False, default=str)


def _iter_datasets(dataset: Any) -> Iterator[tuple[int, Any, str]]:
    yield from _iter_arrow_rows(dataset.with_format("arrow").iter(batch_size=1024))


def _load_from_disk(path: Path, split: str) -> Any:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DatakitError(f"{path}: no split {split!r}; it has {', '.join(loaded)} (use --split)")
        return loaded[split]
    return loaded


def _load_from_hub(name: str, split: str, configuration: str | None = None) -> Any:
    import datasets

    try:
        return datasets.load_dataset(name, configuration, split=split)
    except Exception as e:  # the hub client raises many types; all mean "could not get it"
        raise DatakitError(
            f"{name}: not a local file or folder, and loading it as a Hub dataset failed: {e}"
        ) from e
