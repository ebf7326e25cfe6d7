"""Filter chains: YAML files listing filters in the order they run, each with its parameters.

    name: r1-reasoning
    filters:
      - format: {require_think: true}
      - length: {max_reasoning_tokens: 32768}
      - correctness
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from datakit.errors import DatakitError
from datakit.filters import Filter, make_filter


@dataclass
class Chain:
    name: str
    filters: list[Filter]
    text: str  # the YAML as written, kept in manifests and reports

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def score_columns(self) -> dict[str, Any]:
        return {column: dtype for f in self.filters for column, dtype in f.scores.items()}


def load_chain(path: str | Path) -> Chain:
    """Parse and check a chain file; every error names the file and the entry."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise DatakitError(f"{path}: cannot read the filter chain: {e}") from e
    return parse_chain(text, str(path))


def parse_chain(text: str, path: str) -> Chain:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise DatakitError(f"{path}: cannot read the filter chain: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("filters"), list) or not data["filters"]:
        raise DatakitError(f"{path}: a chain is a mapping with a non-empty `filters:` list")
    unknown = set(data) - {"name", "description", "filters"}
    if unknown:
        raise DatakitError(f"{path}: unknown key(s) {sorted(unknown)}; a chain has name, description, filters")
    filters = [_entry(item, f"{path} filters[{i}]") for i, item in enumerate(data["filters"])]
    names = [f.name for f in filters]
    if len(set(names)) != len(names):
        raise DatakitError(f"{path}: a filter appears twice ({names}); their score columns would collide")
    return Chain(name=str(data.get("name") or Path(path).stem), filters=filters, text=text)


def _entry(item: Any, where: str) -> Filter:
    if isinstance(item, str):
        return make_filter(item, {}, where)
    if isinstance(item, dict) and len(item) == 1:
        (name, params), = item.items()
        if params is not None and not isinstance(params, dict):
            raise DatakitError(f"{where} ({name}): parameters must be a mapping, got {params!r}")
        return make_filter(name, params, where)
    raise DatakitError(f"{where}: expected `- name` or `- name: {{param: value}}`, got {item!r}")
