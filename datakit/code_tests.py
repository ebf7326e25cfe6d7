"""What a code problem's tests are, in one canonical form, and how the published datasets write them.

A code prompt's `reference` is `CodeTests.to_reference()`: compact JSON that the code verifier reads
back with `CodeTests.from_reference`. Ingest builds it from a row's tests column with
`tests_from_row`, which recognises HumanEval, MBPP, APPS, TACO, CodeContests, LiveCodeBench and
open-r1's codeforces. Stdlib only: the verifier imports this on its trusted side.
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import json
import math
import pickle
import re
import zlib
from dataclasses import dataclass, fields
from typing import Any

from datakit.errors import RowError

# LiveCodeBench's private tests are base64(zlib(pickle(json))): a cap on what one problem may inflate to.
MAX_DECOMPRESSED_BYTES = 512 * 2**20

# APPS and TACO compare call-based returns this way (their harness also accepts the first element of
# any longer list, which lets wrong answers through; only one-element lists are unwrapped here).
APPS_CALL_CHECKER = '''\
import json


def check(input, output, expected):
    """APPS/TACO call-based comparison: the return value equals the expected value, or its only
    element where the dataset wrapped the expected value in a one-element list."""
    got, want = json.loads(output), json.loads(expected)
    return got == want or (isinstance(want, list) and len(want) == 1 and got == want[0])
'''


@dataclass(frozen=True)
class Case:
    """One test: the program's stdin and expected stdout, or (call-based) JSON arguments and return value."""

    input: str
    output: str

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"case {name}: expected a string, got {type(value).__name__}")


@dataclass(frozen=True)
class CodeTests:
    """A code problem's tests: a Python test program (`tests`) or input/output `cases`, never both.

    `tests` runs after the candidate's code and calls its function (HumanEval's `check(candidate)`
    then `check(entry_point)`, MBPP's asserts); `setup` is code the problem itself defines that the
    tests may call (HumanEval's prompt, MBPP's test_setup_code), run on the trusted side.
    `cases` feed stdin and compare stdout; with `fn_name` they are call-based: `input` is a JSON array
    of arguments and `output` the JSON of the expected return value (a LeetCode-style candidate
    defines `class Solution` with that method). `checker` is Python defining
    `check(input, output, expected) -> bool` for problems with several right answers (call-based:
    the JSON texts). `note` says what the dataset had that could not be kept. `language` is the
    programming language the problem declares (`python`, `cpp`, …; None = any).
    """

    tests: str | None = None
    entry_point: str | None = None
    setup: str | None = None
    cases: tuple[Case, ...] = ()
    fn_name: str | None = None
    checker: str | None = None
    time_limit_s: float | None = None
    memory_mb: int | None = None
    language: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        if self.language is not None:
            object.__setattr__(self, "language", normalise_language(self.language))
        if self.time_limit_s is not None:
            object.__setattr__(self, "time_limit_s", _positive_seconds(self.time_limit_s))
        self._check_kinds()
        self._check_values()

    def _check_kinds(self) -> None:
        """Exactly one kind of test, and only the fields that kind uses."""
        if (self.tests is None) == (not self.cases):
            raise ValueError("a code reference needs exactly one of `tests` (a Python test program) or `cases` (input/output pairs)")
        if self.tests is not None:
            for name in ("fn_name", "checker"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` goes with `cases`, not with a test program")
        else:
            for name in ("entry_point", "setup"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` goes with a test program (`tests`), not with `cases`")

    def _check_values(self) -> None:
        for name in ("tests", "setup", "checker"):
            value = getattr(self, name)
            if value is not None:
                _check_python(name, value)
        for name in ("entry_point", "fn_name"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.isidentifier()):
                raise ValueError(f"`{name}` must be a Python identifier, got {value!r:.60}")
        for i, case in enumerate(self.cases):
            if not isinstance(case, Case):
                raise ValueError(f"cases[{i}]: expected a Case, got {type(case).__name__}")
        if self.checker is not None and not _defines_check(self.checker):
            raise ValueError("`checker` must define check(input, output, expected)")
        if self.memory_mb is not None and (isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int) or self.memory_mb <= 0):
            raise ValueError(f"`memory_mb` must be a positive integer, got {self.memory_mb!r}")
        if self.note is not None and not isinstance(self.note, str):
            raise ValueError(f"`note` must be a string, got {type(self.note).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as plain JSON values."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            out[f.name] = [{"input": c.input, "output": c.output} for c in value] if f.name == "cases" else value
        return out

    def to_reference(self) -> str:
        """The canonical reference text: compact JSON, keys sorted, unset fields left out."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeTests:
        """Build from datakit's own field names; unknown fields are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if "cases" in values:
            values["cases"] = _cases_from_json(values["cases"])
        for name in ("tests", "entry_point", "setup", "fn_name", "checker", "language", "note"):
            if values.get(name) is not None and not isinstance(values[name], str):
                raise ValueError(f"`{name}` must be a string, got {type(values[name]).__name__}")
        return cls(**values)

    @classmethod
    def from_reference(cls, text: str) -> CodeTests:
        """Read a reference; text that is not a JSON object is a Python test program (the legacy form)."""
        if not isinstance(text, str):
            raise ValueError(f"a code reference must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("the code reference is empty")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        return cls.from_dict(data) if isinstance(data, dict) else cls(tests=text)

    def summary(self) -> str:
        """One line for reports, e.g. "12 stdin/stdout cases, cpp, 2 s, 256 MB"."""
        n = len(self.cases)
        if self.tests is not None:
            parts = ["function tests" + (f", entry point {self.entry_point}" if self.entry_point else "")]
        elif self.fn_name:
            parts = [f"{n} call-based case{'s' * (n != 1)} of {self.fn_name}()"]
        else:
            parts = [f"{n} stdin/stdout case{'s' * (n != 1)}"]
        if self.checker:
            parts.append("custom checker")
        if self.language:
            parts.append(self.language)
        if self.time_limit_s is not None:
            parts.append(f"{self.time_limit_s:g} s")
        if self.memory_mb is not None:
            parts.append(f"{self.memory_mb} MB")
        return ", ".join(parts)


def normalise_language(name: str) -> str:
    """`python` for Python 3 spellings, `cpp` for C++ ones, else the name in lower case."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`language` must be a non-empty string, got {name!r:.60}")
    return programming_language(name) or name.strip().lower()


def programming_language(value: Any) -> str | None:
    """`python` or `cpp` when `value` names one of them (python3, pypy3, c++17, GNU C++20, …), else None.

    Lets ingest tell a dataset's programming-language column from the answer's natural language."""
    if not isinstance(value, str):
        return None
    key = re.sub(r"[\s_-]+", "", value.lower())
    if re.fullmatch(r"(python|py|pypy)3?(\.\d+)?", key):
        return "python"
    if re.fullmatch(r"(gnu)?(c\+\+|cpp|cxx|g\+\+)(\d\d)?", key):
        return "cpp"
    return None


def split_columns(column: str) -> list[str]:
    """`public_tests,private_tests` -> the column names whose cases are joined."""
    return [name.strip() for name in column.split(",") if name.strip()]


def tests_from_row(row: dict[str, Any], column: str) -> CodeTests:
    """The tests of a dataset row, read from `column` (several, comma-separated, join their cases).

    Each value may be a string (JSON, LiveCodeBench's encoded private tests, or a Python test
    program), a list or a dict; companion fields of the row (entry_point, prompt, test_setup_code,
    time_limit, memory_limit, metadata, …) are read by their dataset names. Raises RowError naming
    the column at fault.
    """
    present = [(name, row[name]) for name in split_columns(column) if row.get(name) is not None]
    if not present:
        raise RowError(column, "missing")
    parts = [(name, _parse(row, name, value)) for name, value in present]
    if len(parts) == 1 and isinstance(parts[0][1], CodeTests):
        return parts[0][1]
    programs = [name for name, part in parts if isinstance(part, CodeTests)]
    if programs:
        raise RowError(programs[0], "only columns of input/output cases can be joined; this one holds a complete test description")
    return _cases_tests(row, column, [part for _, part in parts if isinstance(part, _Cases)])


@dataclass
class _Cases:
    """Cases read from one column, before they are joined with other columns' and the row's limits."""

    cases: list[Case]
    fn_name: str | None = None
    checker: str | None = None


def _parse(row: dict[str, Any], name: str, value: Any) -> CodeTests | _Cases:
    if isinstance(value, str):
        value = _decode_text(name, value)
        if isinstance(value, str):
            return _program(row, name, value)
    if isinstance(value, dict):
        return _from_mapping(row, name, value)
    if isinstance(value, list):
        return _from_list(row, name, value)
    raise RowError(name, f"expected test cases or a test program, got {type(value).__name__}")


def _decode_text(name: str, text: str) -> Any:
    """JSON where the text is JSON, LiveCodeBench's encoded cases where it is that, else the text itself."""
    stripped = text.strip()
    if not stripped:
        raise RowError(name, "empty")
    if stripped[0] in "{[":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as e:
            raise RowError(name, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    raw = _base64_zlib(stripped)
    return text if raw is None else _decode_lcb(name, raw)


def _base64_zlib(text: str) -> bytes | None:
    """The bytes of `text` if it is base64 of a zlib stream (zlib.compress starts with 0x78), else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw[:1] == b"\x78" else None


def _decode_lcb(name: str, raw: bytes) -> Any:
    """LiveCodeBench's base64(zlib(pickle(JSON string))), without ever running what a pickle asks for."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw, MAX_DECOMPRESSED_BYTES)
    except zlib.error as e:
        raise RowError(name, f"looks like base64 of zlib data but does not inflate: {e}") from None
    if inflater.unconsumed_tail:
        raise RowError(name, f"encoded tests inflate past {MAX_DECOMPRESSED_BYTES // 2**20} MiB")
    if not inflater.eof:
        raise RowError(name, "encoded tests are truncated (the zlib stream does not end)")
    payload = _load_string_pickle(name, data)
    try:
        return json.loads(payload)
    except json.JSONDecodeError as e:
        raise RowError(name, f"the decoded tests are not JSON: {e.msg}") from None


class _StringOnlyUnpickler(pickle.Unpickler):
    """Refuses every class and function lookup, so a pickle can only build plain data, never run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only a plain string payload is accepted")


def _load_string_pickle(name: str, data: bytes) -> str:
    try:
        value = _StringOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # malformed pickles raise many types; all mean "unusable payload"
        raise RowError(name, f"unusable pickle payload: {e}") from None
    if not isinstance(value, str):
        raise RowError(name, f"the pickle holds a {type(value).__name__}, expected a JSON string")
    return value


def _from_mapping(row: dict[str, Any], name: str, data: dict[str, Any]) -> CodeTests | _Cases:
    if not data:
        raise RowError(name, "empty")
    keys = set(data)
    if keys & {"tests", "cases"}:
        try:
            return CodeTests.from_dict(data)
        except ValueError as e:
            raise RowError(name, str(e)) from None
    if keys & {"inputs", "outputs"}:
        return _apps(name, data)
    if {"input", "output"} <= keys:
        return _paired(name, data["input"], data["output"])
    raise RowError(name, f"unrecognised test format: an object with keys {', '.join(sorted(map(str, keys))[:8])}")


def _from_list(row: dict[str, Any], name: str, items: list[Any]) -> CodeTests | _Cases:
    if not items:
        return _Cases([])
    if all(isinstance(item, str) for item in items):
        return _mbpp(row, name, items)
    if all(isinstance(item, dict) for item in items):
        return _case_dicts(row, name, items)
    raise RowError(name, "expected a list of {input, output} objects or of assert statements")


def _apps(name: str, data: dict[str, Any]) -> _Cases:
    """APPS/TACO `input_output`: stdin/stdout strings (or lists of lines), or call-based with fn_name."""
    inputs, outputs, fn_name = data.get("inputs"), data.get("outputs"), data.get("fn_name")
    _check_pairs(name, inputs, outputs, "inputs", "outputs")
    if fn_name is None:
        return _stdio_cases(name, inputs, outputs, "inputs", "outputs")
    if not isinstance(fn_name, str):
        raise RowError(name, f"fn_name: expected a string, got {type(fn_name).__name__}")
    cases = []
    for i, (args, expected) in enumerate(zip(inputs, outputs)):
        if not isinstance(args, list):
            raise RowError(name, f"inputs[{i}]: expected a list of arguments, got {type(args).__name__}")
        cases.append(Case(_json_text(name, f"inputs[{i}]", args), _json_text(name, f"outputs[{i}]", expected)))
    wrapped = any(isinstance(expected, list) and len(expected) == 1 for expected in outputs)
    return _Cases(cases, fn_name, APPS_CALL_CHECKER if wrapped else None)


def _paired(name: str, inputs: Any, outputs: Any) -> _Cases:
    """CodeContests: {"input": [...], "output": [...]}, the i-th output for the i-th input."""
    _check_pairs(name, inputs, outputs, "input", "output")
    return _stdio_cases(name, inputs, outputs, "input", "output")


def _check_pairs(name: str, inputs: Any, outputs: Any, inputs_key: str, outputs_key: str) -> None:
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise RowError(name, f"expected `{inputs_key}` and `{outputs_key}` lists")
    if len(inputs) != len(outputs):
        raise RowError(name, f"{len(inputs)} inputs but {len(outputs)} outputs")


def _stdio_cases(name: str, inputs: list[Any], outputs: list[Any], inputs_key: str, outputs_key: str) -> _Cases:
    return _Cases([
        Case(_stdio_text(name, f"{inputs_key}[{i}]", x), _stdio_text(name, f"{outputs_key}[{i}]", y))
        for i, (x, y) in enumerate(zip(inputs, outputs))
    ])


def _case_dicts(row: dict[str, Any], name: str, items: list[dict[str, Any]]) -> _Cases:
    """A list of {input, output} (codeforces, canonical), with LiveCodeBench's `testtype` where present."""
    kinds = {str(item.get("testtype", "stdin")) for item in items}
    if not kinds <= {"stdin", "functional"}:
        raise RowError(name, f"unknown testtype {sorted(kinds - {'stdin', 'functional'})[0]!r}; expected stdin or functional")
    if len(kinds) > 1:
        raise RowError(name, "mixes stdin and functional tests")
    for i, item in enumerate(items):
        for key in ("input", "output"):
            if key not in item:
                raise RowError(name, f"[{i}]: missing {key!r}")
            if not isinstance(item[key], str):
                raise RowError(name, f"[{i}].{key}: expected a string, got {type(item[key]).__name__}")
    if kinds == {"stdin"}:
        return _Cases([Case(item["input"], item["output"]) for item in items])
    return _Cases([_lcb_functional_case(name, i, item) for i, item in enumerate(items)], _lcb_function(row))


def _lcb_functional_case(name: str, i: int, item: dict[str, str]) -> Case:
    """LiveCodeBench functional test: one JSON argument per input line -> a JSON array; output is JSON."""
    lines = item["input"].split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    arguments = [_json_value(name, f"[{i}].input line {n + 1}", line) for n, line in enumerate(lines)]
    expected = _json_value(name, f"[{i}].output", item["output"])
    return Case(_json_text(name, f"[{i}].input", arguments), _json_text(name, f"[{i}].output", expected))


def _lcb_function(row: dict[str, Any]) -> str:
    """The method a functional LiveCodeBench problem calls: `metadata`'s func_name."""
    metadata = row.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError as e:
            raise RowError("metadata", f"invalid JSON: {e.msg}") from None
    name = metadata.get("func_name") if isinstance(metadata, dict) else None
    if not isinstance(name, str):
        raise RowError("metadata", "functional tests need the function's name (`func_name` in metadata)")
    return name


def _program(row: dict[str, Any], name: str, text: str) -> CodeTests:
    """HumanEval's `test` (defines check(candidate)), ending with check(entry_point); or any test program."""
    entry_point = _optional_text(row, "entry_point") or None
    if entry_point and "def check(" in text and f"check({entry_point})" not in text:
        text = text + f"\n\ncheck({entry_point})\n"
    return _build(name, tests=text, entry_point=entry_point, setup=_setup(row, entry_point))


def _mbpp(row: dict[str, Any], name: str, asserts: list[str]) -> CodeTests:
    """MBPP's `test_list` asserts, then its `challenge_test_list` (a right solution passes both)."""
    lines = [line for line in asserts if line.strip()]
    challenge = row.get("challenge_test_list") if name != "challenge_test_list" else None
    if challenge is not None:
        if not isinstance(challenge, list) or not all(isinstance(line, str) for line in challenge):
            raise RowError("challenge_test_list", "expected a list of assert statements")
        lines += [line for line in challenge if line.strip()]
    if not lines:
        raise RowError(name, "no tests")
    entry_point = _optional_text(row, "entry_point") or None
    return _build(name, tests="\n".join(lines) + "\n", entry_point=entry_point, setup=_setup(row, entry_point))


def _setup(row: dict[str, Any], entry_point: str | None) -> str | None:
    """Code the problem defines for its tests: HumanEval's prompt (only beside an entry point, and only
    when it is Python: elsewhere `prompt` is the question), MBPP's test_setup_code and test_imports."""
    parts = []
    prompt = row.get("prompt")
    if entry_point and isinstance(prompt, str) and _parses(prompt):
        parts.append(prompt)
    setup_code = _optional_text(row, "test_setup_code")
    if setup_code and setup_code.strip():
        parts.append(setup_code)
    imports = row.get("test_imports")
    if imports:
        if not isinstance(imports, list) or not all(isinstance(line, str) for line in imports):
            raise RowError("test_imports", "expected a list of import statements")
        parts.append("\n".join(imports))
    return "\n".join(parts) or None


def _cases_tests(row: dict[str, Any], column: str, parts: list[_Cases]) -> CodeTests:
    """Join the columns' cases and add the row's limits, language and checker."""
    fn_names = {part.fn_name for part in parts if part.cases}
    if len(fn_names) > 1:
        raise RowError(column, f"the columns disagree on the function called: {', '.join(sorted(map(str, fn_names)))}")
    cases = [case for part in parts for case in part.cases]
    if not cases:
        raise RowError(column, "no test cases")
    _refuse_unverifiable(row)
    checker = next((part.checker for part in parts if part.checker), None)
    note = None
    if checker is None:
        checker, note = _companion_checker(row)
    return _build(
        column,
        cases=cases,
        fn_name=fn_names.pop(),
        checker=checker,
        note=note,
        time_limit_s=_time_limit(row),
        memory_mb=_memory_limit(row),
        language=programming_language(row.get("language")),
    )


def _refuse_unverifiable(row: dict[str, Any]) -> None:
    """Interactive and file-I/O problems cannot be checked by feeding stdin and reading stdout."""
    interaction = row.get("interaction_format")
    if isinstance(interaction, str) and interaction.strip():
        raise RowError("interaction_format", "interactive problem: stdin/stdout cases cannot check it")
    mode = row.get("input_mode")
    if mode and mode != "stdio":
        raise RowError("input_mode", f"{mode!r}: only problems that read stdin and write stdout can be checked")
    for name in ("input_file", "output_file"):
        if isinstance(row.get(name), str) and row[name].strip():
            raise RowError(name, f"the problem uses the file {row[name]!r}: only stdin/stdout problems can be checked")


def _companion_checker(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """A row's Python check(input, output, expected) is kept; any other checker (C++ testlib source,
    open-r1's command-line checker.py) cannot run here, so it is named in a note instead."""
    for name in ("checker", "generated_checker"):
        source = row.get(name)
        if not isinstance(source, str) or not source.strip():
            continue
        if _parses(source) and _defines_check(source):
            return source, None
        kind = "C++ source" if "#include" in source else "not a Python check(input, output, expected) function"
        return None, (
            f"{name} ({kind}) was not kept: outputs are compared with the expected ones, "
            "so a right answer that differs from them is rejected"
        )
    return None, None


def _time_limit(row: dict[str, Any]) -> float | None:
    """`time_limit` as seconds (codeforces), {seconds, nanos} (CodeContests) or "2 seconds" (TACO);
    a limit that cannot be read is left unset rather than guessed."""
    value = row.get("time_limit")
    if isinstance(value, dict):
        seconds, nanos = value.get("seconds") or 0, value.get("nanos") or 0
        value = seconds + nanos / 1e9 if _is_number(seconds) and _is_number(nanos) else None
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)?\s*", value, re.IGNORECASE)
        value = float(match.group(1)) if match else None
    return float(value) if _is_number(value) and 0 < value < math.inf else None


def _memory_limit(row: dict[str, Any]) -> int | None:
    """MiB from `memory_limit_bytes` (CodeContests) or `memory_limit` in MB (codeforces, "256 megabytes" in TACO), rounded up."""
    value = row.get("memory_limit_bytes")
    if _is_number(value) and value > 0:
        return math.ceil(value / 2**20)
    value = row.get("memory_limit")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:mb|mib|megabytes?)?\s*", value, re.IGNORECASE)
        value = float(match.group(1)) if match else None
    return math.ceil(value) if _is_number(value) and 0 < value < math.inf else None


def _build(column: str, **values: Any) -> CodeTests:
    try:
        return CodeTests(**values)
    except ValueError as e:
        raise RowError(column, str(e)) from None


def _cases_from_json(value: Any) -> list[Case]:
    if not isinstance(value, list):
        raise ValueError(f"`cases` must be a list of {{input, output}} objects, got {type(value).__name__}")
    cases = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"input", "output"}:
            raise ValueError(f"cases[{i}]: expected an object with exactly `input` and `output`")
        try:
            cases.append(Case(item["input"], item["output"]))
        except ValueError as e:
            raise ValueError(f"cases[{i}]: {e}") from None
    return cases


def _stdio_text(column: str, where: str, value: Any) -> str:
    """A stdin or stdout text; a list of lines (APPS) is joined and ends with a newline."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value) + "\n"
    raise RowError(column, f"{where}: expected a string or a list of lines, got {type(value).__name__}")


def _json_value(column: str, where: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RowError(column, f"{where}: not JSON: {e.msg}") from None


def _json_text(column: str, where: str, value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise RowError(column, f"{where}: not JSON-serialisable: {e}") from None


def _optional_text(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is not None and not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type(value).__name__}")
    return value


def _check_python(name: str, source: Any) -> None:
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"`{name}` must be non-empty Python source")
    try:
        ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"`{name}` is not valid Python: {e.msg} (line {e.lineno})") from None
    except ValueError as e:  # e.g. null bytes
        raise ValueError(f"`{name}` is not valid Python: {e}") from None


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _defines_check(source: str) -> bool:
    """A top-level `def check(input, output, expected)` (three positional parameters)."""
    return any(
        isinstance(node, ast.FunctionDef) and node.name == "check" and len(node.args.posonlyargs + node.args.args) == 3
        for node in ast.parse(source).body
    )


def _positive_seconds(value: Any) -> float:
    if not _is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"`time_limit_s` must be a positive number of seconds, got {value!r}")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
