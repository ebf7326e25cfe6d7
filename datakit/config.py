"""Typed configs from recipe YAML: defaults < recipe < `--set a.b=c` < named CLI flags.

Recipes map one-to-one onto the config dataclasses; an unknown key or a value of the wrong type is
an error naming its path, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from datakit.errors import DatakitError

T = TypeVar("T")

# Field metadata for settings that change how a run goes, not what it writes (excluded from the hash).
NOT_HASHED = {"hash": False}


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file: a mapping of stage names to their settings."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DatakitError(f"{path}: cannot read recipe: {e}") from e
    if not isinstance(data, dict):
        raise DatakitError(f"{path}: a recipe must be a mapping of stage names to settings")
    return data


def load_recipe_section(path: str | Path, section: str) -> dict[str, Any]:
    """The `section:` mapping of a recipe file (empty when the recipe has none)."""
    part = load_recipe(path).get(section) or {}
    if not isinstance(part, dict):
        hint = " (it lists several runs: `datakit run` runs them all)" if isinstance(part, list) else ""
        raise DatakitError(f"{path}: `{section}` must be a mapping{hint}")
    return part


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides (values parsed as YAML scalars) to a nested mapping."""
    for item in overrides:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise DatakitError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sampling.temperature=0.7")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DatakitError(f"--set {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw) if raw else ""
    return data


def build(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a nested mapping, checking every key and type."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise DatakitError(f"unknown setting {where + unknown[0]!r}; known: {', '.join(sorted(names))}")
    values = {name: _coerce(hints[name], value, where + name) for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise DatakitError(f"{where or cls.__name__}: {e}") from e


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        # `str | list[str]`: the member whose shape matches the value (a list or a scalar)
        shaped = [a for a in inner if (typing.get_origin(a) is list) == isinstance(value, list)]
        return _coerce((shaped or inner)[0], value, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DatakitError(f"setting {path!r} must be a mapping, got {value!r}")
        return build(tp, value, path + ".")
    if origin is dict:
        if not isinstance(value, dict):
            raise DatakitError(f"setting {path!r} must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise DatakitError(f"setting {path!r} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise DatakitError(f"setting {path!r} must be {tp.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def hashed_view(config: Any) -> Any:
    """The config without its NOT_HASHED fields: what decides the stage's output."""
    if not dataclasses.is_dataclass(config):
        return config
    return {
        f.name: hashed_view(getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.metadata.get("hash", True)
    }


def fingerprint(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
