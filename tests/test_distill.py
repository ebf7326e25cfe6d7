"""distill: which tokens carry loss under each chat template, training on the tiny model, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from datakit.dataset import write_json_atomic, write_shard
from datakit.distill import IGNORE, DistillConfig, LoraConfig, run_distill, tokenize_conversation
from datakit.errors import DatakitError
from datakit.mix import MIX_SCHEMA

TEMPLATES = Path(__file__).parent / "templates"
ANSWER = "<think>\nSeven twos are fourteen.\n</think>\n\nThe answer is \\boxed{14}."
CONVERSATION = [{"role": "user", "content": "What is 7 times 2?"}, {"role": "assistant", "content": ANSWER}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def loss_text(tokenizer, encoded: dict) -> tuple[str, str]:
    """(the text of the tokens that carry loss, the text of those that do not)."""
    ids, labels = encoded["input_ids"], encoded["labels"]
    trained = tokenizer.decode([t for t, lab in zip(ids, labels) if lab != IGNORE])
    ignored = tokenizer.decode([t for t, lab in zip(ids, labels) if lab == IGNORE])
    return trained, ignored


@pytest.mark.parametrize(
    ("template", "end_of_turn", "prompt_part"),
    [
        ("smollm2", "<|im_end|>", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 7 times 2?<|im_end|>\n<|im_start|>assistant\n"),
        ("qwen2.5", "<|im_end|>", "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 7 times 2?<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3.1", "<|eot_id|>", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 7 times 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    ],
)
def test_exactly_the_assistant_turn_and_its_end_of_turn_token_carry_loss(tokenizer, template: str, end_of_turn: str, prompt_part: str) -> None:
    if template != "smollm2":
        tokenizer = _with_template(tokenizer, template)
    trained, ignored = loss_text(tokenizer, tokenize_conversation(tokenizer, CONVERSATION))
    assert trained == ANSWER + end_of_turn  # the think block, the answer, and the token that ends the turn
    assert ignored.rstrip("\n") == prompt_part.rstrip("\n") or ignored == prompt_part + "\n"
    everything = tokenize_conversation(tokenizer, CONVERSATION, loss_on="all")
    assert everything["labels"] == everything["input_ids"]


def test_every_assistant_turn_of_a_multi_turn_conversation_carries_loss(tokenizer) -> None:
    turns = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "<think>\n\n</think>\n\nHello."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
    ]
    tokenizer = _with_template(tokenizer, "qwen2.5")
    trained, ignored = loss_text(tokenizer, tokenize_conversation(tokenizer, turns))
    assert trained == "<think>\n\n</think>\n\nHello.<|im_end|><think>\nTwo and two.\n</think>\n\n4<|im_end|>"
    assert "Answer briefly." in ignored and "2+2?" in ignored and "assistant" in ignored


def test_a_template_that_rewrites_history_is_refused(tokenizer) -> None:
    tokenizer = _with_template(tokenizer, "qwen2.5")
    # like templates that strip earlier chains of thought: the rendering of turn 1 changes once turn 2 exists
    tokenizer.chat_template = tokenizer.chat_template.replace("message['content']", "(message['content'] if loop.last else message['content'].split('</think>')[-1])")
    turns = CONVERSATION + [{"role": "user", "content": "And 7 times 3?"}, {"role": "assistant", "content": "21"}]
    with pytest.raises(DatakitError, match="not prefix-preserving"):
        tokenize_conversation(tokenizer, turns)


def _with_template(tokenizer, name: str):
    copy = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    copy.chat_template = (TEMPLATES / f"{name}.jinja").read_text()
    return copy


def mix_folder(root: Path, rows: int = 16) -> Path:
    """A small mix folder: a handful of arithmetic conversations, repeated."""
    data = []
    for i in range(rows):
        a, b = i % 4 + 2, i % 3 + 5
        check = f" Check: {a * b} divided by {b} is {a}." * (4 if i % 4 == 3 else 0)  # a quarter of the rows are longer
        messages = [{"role": "user", "content": f"What is {a} times {b}?"}, {"role": "assistant", "content": f"<think>\n{a} times {b} is {a * b}.{check}\n</think>\n\n{a * b}"}]
        data.append({"messages": messages, "prompt_id": f"p{i}", "sample_index": 0, "domain": "math", "kind": "reasoning", "language": "en",
                     "source": "unit", "mix_source": "unit", "generator": "teacher", "verified_by": "none", "copy_index": 0})
    folder = root / "mix"
    write_shard(folder, 0, pa.Table.from_pylist(data, schema=MIX_SCHEMA))
    write_json_atomic(folder / "manifest.json", {"stage": "mix", "run_hash": "abc", "complete": True})
    return folder


def distill_config(tiny_model: str, dataset: Path, output: Path, **kw) -> DistillConfig:
    settings = dict(model=tiny_model, dataset=str(dataset), output=str(output), max_length=128, learning_rate=3e-3, warmup_ratio=0.0,
                    lr_scheduler_type="constant", per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=12,
                    bf16=False, gradient_checkpointing=False, logging_steps=1, save_steps=4, report_to=[], progress=False, seed=0)
    settings.update(kw)
    return DistillConfig(**settings)


def test_training_lowers_the_loss_and_the_student_loads_back_and_generates(tiny_model: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = mix_folder(tmp_path)
    summary = run_distill(distill_config(tiny_model, data, tmp_path / "student"))
    losses = [h["loss"] for h in summary.manifest["loss_history"]]
    assert len(losses) == 12 and losses[-1] < 0.7 * losses[0], losses
    assert summary.manifest["steps"] == 12 and summary.manifest["rows"] == 16 and summary.manifest["rows_too_long"] == 0
    assert 0 < summary.manifest["loss_tokens"] < summary.manifest["train_tokens"]
    assert (tmp_path / "student" / "loss.png").stat().st_size > 1000 and not (tmp_path / "student" / "checkpoints").exists()
    folder = tmp_path / "student" / "model"
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2 times 5?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    again = run_distill(distill_config(tiny_model, data, tmp_path / "student"))
    assert again.already_complete


def test_a_killed_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import SFTTrainer

    data = mix_folder(tmp_path)
    whole = run_distill(distill_config(tiny_model, data, tmp_path / "whole")).manifest

    original, calls = SFTTrainer.training_step, {"n": 0}

    def dies_at_step_7(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # a kill after checkpoint-4 was written
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "training_step", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        run_distill(distill_config(tiny_model, data, tmp_path / "killed"))
    monkeypatch.setattr(SFTTrainer, "training_step", original)
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = run_distill(distill_config(tiny_model, data, tmp_path / "killed")).manifest
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 12
    after = lambda m: [h["loss"] for h in m["loss_history"] if h["step"] > 4]  # noqa: E731
    assert after(resumed) == pytest.approx(after(whole), rel=1e-4)


def test_rows_longer_than_max_length_are_left_out_and_counted(tiny_model: str, tmp_path: Path) -> None:
    data = mix_folder(tmp_path)
    summary = run_distill(distill_config(tiny_model, data, tmp_path / "student", max_length=80, max_steps=2))
    assert summary.manifest["rows_too_long"] == 4 and summary.manifest["rows"] == 12
    with pytest.raises(DatakitError, match="every row is longer than max_length 20"):
        run_distill(distill_config(tiny_model, data, tmp_path / "too-short", max_length=20))
    manifest = json.loads((tmp_path / "student" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["max_length"] == 80


def test_lora_trains_adapters_and_saves_a_merged_student(tiny_model: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    summary = run_distill(distill_config(tiny_model, mix_folder(tmp_path), tmp_path / "student", lora=LoraConfig(enabled=True, r=4, alpha=8), max_steps=4))
    assert summary.manifest["steps"] == 4
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "student" / "model")
    assert not any("lora" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("batching", [{"padding_free": True}, {"packing": True}], ids=["padding_free", "packing"])
def test_padding_free_and_packed_batches_train(tiny_model: str, tmp_path: Path, batching: dict) -> None:
    summary = run_distill(distill_config(tiny_model, mix_folder(tmp_path), tmp_path / "student", max_steps=2, **batching))
    assert summary.manifest["steps"] == 2 and all(h["loss"] > 0 for h in summary.manifest["loss_history"])


def test_a_max_length_past_the_models_positions_is_refused(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match="exceeds .* max_position_embeddings 512"):
        run_distill(distill_config(tiny_model, mix_folder(tmp_path), tmp_path / "student", max_length=4096))


@pytest.mark.gpu
def test_bf16_packed_training_on_a_gpu(tiny_model: str, tmp_path: Path) -> None:
    summary = run_distill(distill_config(tiny_model, mix_folder(tmp_path), tmp_path / "student", bf16=True, packing=True, gradient_checkpointing=True, max_steps=4))
    assert summary.manifest["steps"] == 4 and summary.manifest["loss_history"][-1]["loss"] < summary.manifest["loss_history"][0]["loss"]
