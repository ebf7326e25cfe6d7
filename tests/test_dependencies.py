"""Every package datakit imports is one it declares: a fresh install that happens to lack a package
pulled in by another (numpy, sympy, tokenizers came that way) must not break at import time."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules() -> set[str]:
    """Top-level names of the modules datakit's source imports (absolute imports only)."""
    names = set()
    for path in (ROOT / "datakit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"datakit"}


def declared_distributions() -> set[str]:
    """Normalised names of the distributions pyproject.toml lists, in dependencies and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in requirements}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared_in_pyproject():
    installed = packages_distributions()
    declared = declared_distributions()
    providers = {module: installed.get(module, [module]) for module in imported_modules()}  # an extra not installed: its own name
    undeclared = {module: dists for module, dists in sorted(providers.items()) if not any(_normalise(d) in declared for d in dists)}
    assert not undeclared, f"imported by datakit but not declared in pyproject.toml: {undeclared}"


def test_the_check_sees_the_imports_that_were_missing():
    """The scan finds imports inside functions too (sympy is imported where it is used)."""
    assert {"numpy", "sympy", "tokenizers", "vllm", "ray"} <= imported_modules()
