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

    def models(self) -> list[dict[str, Any]]:
        """The models the chain's filters run (judge, reward model), for manifests, reports and cards."""
        return [{"filter": f.name, **card} for f in self.filters if (card := f.model_card())]


def load_chain(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> Chain:
    """Parse and check a chain file, with `overrides` (filter name -> parameters) merged onto its entries;
    every error names the file and the entry."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise DatakitError(f"{path}: cannot read the filter chain: {e}") from e
    return parse_chain(text, str(path), overrides)


def parse_chain(text: str, path: str, overrides: dict[str, dict[str, Any]] | None = None) -> Chain:
    """A chain from its YAML. With `overrides` (a stage config's `filters:`, e.g. the judge's model chosen
    in a recipe), the chain's text becomes the merged chain as run, so manifests, reports and cards show
    the judge that decided, not the file's default."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise DatakitError(f"{path}: cannot read the filter chain: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("filters"), list) or not data["filters"]:
        raise DatakitError(f"{path}: a chain is a mapping with a non-empty `filters:` list")
    unknown = set(data) - {"name", "description", "filters"}
    if unknown:
        raise DatakitError(f"{path}: unknown key(s) {sorted(unknown)}; a chain has name, description, filters")
    entries = [_named(item, f"{path} filters[{i}]") for i, item in enumerate(data["filters"])]
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise DatakitError(f"{path}: a filter appears twice ({names}); their score columns would collide")
    if overrides:
        missing = sorted(set(overrides) - set(names))
        if missing:
            raise DatakitError(f"filters.{missing[0]}: the chain {path} has no {missing[0]!r} filter to set; it has {', '.join(names)}")
        entries = [(name, merge(params, overrides.get(name) or {})) for name, params in entries]
        data = {**data, "filters": [{name: params} for name, params in entries]}
        text = f"# {path}, with the stage's `filters:` settings merged in\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    filters = [make_filter(name, params, f"{path} filters[{i}]") for i, (name, params) in enumerate(entries)]
    return Chain(name=str(data.get("name") or Path(path).stem), filters=filters, text=text)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in, nested mappings key by key (backend.name alone keeps backend.vllm)."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _named(item: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(filter name, parameters) of one `- name` or `- name: {param: value}` entry."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        (name, params), = item.items()
        if params is not None and not isinstance(params, dict):
            raise DatakitError(f"{where} ({name}): parameters must be a mapping, got {params!r}")
        return str(name), params or {}
    raise DatakitError(f"{where}: expected `- name` or `- name: {{param: value}}`, got {item!r}")
