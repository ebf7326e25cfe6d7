from dataclasses import dataclass, field

import pytest

from datakit.config import NOT_HASHED, apply_overrides, build, fingerprint, hashed_view
from datakit.errors import DatakitError
from datakit.sample import SampleConfig


def test_build_nested_config_from_mapping() -> None:
    config = build(SampleConfig, {"model": "m", "sampling": {"n": 8, "temperature": 1}, "backend": {"vllm": {"tensor_parallel_size": 8}}})
    assert config.sampling.n == 8
    assert config.sampling.temperature == 1.0 and isinstance(config.sampling.temperature, float)
    assert config.sampling.top_p == 0.95  # R1 default kept
    assert config.backend.vllm.tensor_parallel_size == 8


def test_unknown_key_names_its_path() -> None:
    with pytest.raises(DatakitError, match="sampling.temprature"):
        build(SampleConfig, {"sampling": {"temprature": 0.7}})


def test_wrong_type_names_its_path() -> None:
    with pytest.raises(DatakitError, match="sampling.n.*int"):
        build(SampleConfig, {"sampling": {"n": "four"}})
    with pytest.raises(DatakitError, match="prefill_think.*bool"):
        build(SampleConfig, {"prefill_think": 1})


def test_overrides_parse_yaml_scalars() -> None:
    data = apply_overrides({"sampling": {"n": 2}}, ["sampling.n=16", "ingest.system_prompt=Be brief.", "ingest.limit=null"])
    assert data == {"sampling": {"n": 16}, "ingest": {"system_prompt": "Be brief.", "limit": None}}
    with pytest.raises(DatakitError, match="KEY=VALUE"):
        apply_overrides({}, ["sampling.n"])


def test_hash_ignores_settings_that_do_not_change_output() -> None:
    @dataclass
    class Demo:
        seed: int = 0
        workers: int = field(default=1, metadata=NOT_HASHED)

    assert fingerprint(hashed_view(Demo(workers=1))) == fingerprint(hashed_view(Demo(workers=8)))
    assert fingerprint(hashed_view(Demo(seed=1))) != fingerprint(hashed_view(Demo(seed=2)))
