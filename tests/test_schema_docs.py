"""data/README.md must document every column of every schema, and `import datakit` must stay light."""

import re
import subprocess
import sys

from conftest import ROOT
from datakit.schema import PROMPT_SCHEMA, SAMPLE_SCHEMA, SCHEMA_VERSION


def test_every_column_is_documented() -> None:
    doc = (ROOT / "data" / "README.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, flags=re.M))
    assert set(SAMPLE_SCHEMA.names) - documented == set()
    assert set(PROMPT_SCHEMA.names) <= documented
    assert f"schema version {SCHEMA_VERSION}" in doc


def test_every_mix_column_is_documented() -> None:
    from datakit.mix import MIX_SCHEMA, REMOVED_FIELDS

    doc = (ROOT / "data" / "README.md").read_text()
    documented = set(re.findall(r"`(\w+)`", "\n".join(line.split(" | ")[0] for line in doc.splitlines() if line.startswith("| `"))))
    assert set(MIX_SCHEMA.names) | {f.name for f in REMOVED_FIELDS} <= documented


def test_every_filter_column_is_documented() -> None:
    from datakit.filters import REGISTRY, load_builtin_filters

    load_builtin_filters()
    doc = (ROOT / "data" / "README.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, flags=re.M))
    columns = {c for cls in REGISTRY.values() if not cls.__module__.startswith("test") for c in cls.scores}
    assert columns | {"rejected_by", "reject_reason"} <= documented


def test_importing_datakit_and_its_cli_pulls_in_neither_torch_nor_vllm() -> None:
    code = "import sys, datakit, datakit.cli, datakit.sample; print(sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
