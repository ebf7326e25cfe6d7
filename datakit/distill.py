"""`datakit distill`: SFT a student on a mix with TRL's SFTTrainer (R1 §2.4: plain SFT, no RL).

The loss is on assistant tokens only, whatever the chat template. TRL's `assistant_only_loss` needs
`{% generation %}` markers that the Qwen2.5 and Llama 3 templates lack, so datakit finds the assistant
spans itself: it renders the conversation up to each assistant turn (with the generation prompt) and
up to the end of that turn, and every token whose characters fall between the two carries loss —
the turn's content and its end-of-turn marker (so the student learns to stop), nothing of the
prompt, the system text or the role headers. The rows reach SFTTrainer tokenised, with `labels`.
A dataset in TRL's prompt/completion form (`datakit mix` with `prompt_completion: true`) is read as the
conversation prompt + completion, with loss on the completion's turn only, as TRL itself would put it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from datakit import __version__
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.dataset import MANIFEST, claim_folder, read_manifest, write_json_atomic
from datakit.errors import DatakitError
from datakit.models import DEFAULT_MODEL, generator_id, resolve_model
from datakit.progress import training_progress

IGNORE = -100  # the label of a token that carries no loss
CHECKPOINTS = "checkpoints"


@dataclass
class LoraConfig:
    """LoRA adapters (PEFT) instead of full fine-tuning; merged into the saved student."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class DistillConfig:
    """Everything `datakit distill` needs; a recipe's `distill:` section maps onto it one-to-one.
    Training settings keep the names of transformers' TrainingArguments / TRL's SFTConfig."""

    model: str = DEFAULT_MODEL  # the student: an alias, a local folder or a Hub id
    dataset: str = ""  # a mix folder, its prompt_completion/ folder, or any Parquet folder / Hub dataset with `messages` or `prompt`/`completion`
    output: str = field(default="", metadata=NOT_HASHED)
    source: str = field(default="", metadata=NOT_HASHED)  # where the hyperparameters come from (cited in the manifest)
    chat_template: str | None = None  # a .jinja file replacing the student's template
    loss_on: str = "assistant"  # assistant | all
    max_length: int = 32768  # rows longer than this are left out (counted), never cut mid-answer
    packing: bool = False  # best-fit packing of rows into max_length sequences (padding-free)
    padding_free: bool = False  # no padding tokens: a batch is one flat sequence (needs flash attention on GPU)
    num_train_epochs: float = 2.0  # R1 §2.3.3: two epochs over the ~800K samples
    max_steps: int = -1  # > 0 overrides num_train_epochs
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    min_lr_rate: float = 0.0  # with lr_scheduler_type cosine_with_min_lr
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    bf16: bool = True  # bf16 mixed precision on GPUs; CPUs train in fp32
    gradient_checkpointing: bool = True
    seed: int = 42
    lora: LoraConfig = field(default_factory=LoraConfig)
    logging_steps: int = field(default=10, metadata=NOT_HASHED)
    save_steps: int = field(default=500, metadata=NOT_HASHED)
    save_total_limit: int = field(default=2, metadata=NOT_HASHED)
    report_to: list[str] | None = field(default=None, metadata=NOT_HASHED)  # None: tensorboard and wandb where installed
    deepspeed: str | None = field(default=None, metadata=NOT_HASHED)  # a DeepSpeed JSON (accelerate configs are in recipes/accelerate/)
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class DistillSummary:
    output: Path
    manifest: dict[str, Any]
    seconds: float
    already_complete: bool = False


# --- loss masks -------------------------------------------------------------------------------------


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]], first: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn from turn `first` on:
    its content and the end-of-turn marker that closes it (trailing whitespace after the marker excluded)."""
    render = lambda turns, prompt: tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=prompt)  # noqa: E731
    text = render(messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i < first:
            continue
        before, through = render(messages[:i], True), render(messages[: i + 1], False).rstrip()
        if not (text.startswith(before) and text.startswith(through) and len(through) > len(before)):
            raise DatakitError(
                "the chat template renders earlier turns differently once later ones follow (it is not prefix-preserving), "
                "so the assistant tokens cannot be found; give distill a `chat_template:` file that is"
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]], loss_on: str = "assistant", prompt_turns: int = 0) -> dict[str, list[int]]:
    """input_ids, and labels that are IGNORE on every token outside an assistant span. The first
    `prompt_turns` turns (a prompt/completion row's prompt) carry no loss, assistant turns among them included."""
    text, spans = assistant_spans(tokenizer, messages, prompt_turns)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    if loss_on == "all":
        return {"input_ids": ids, "labels": list(ids)}
    labels = []
    for token, (start, end) in zip(ids, encoded["offset_mapping"]):
        inside = any(lo <= start and end <= hi for lo, hi in spans) and end > start
        labels.append(token if inside else IGNORE)
    return {"input_ids": ids, "labels": labels}


# --- the run ----------------------------------------------------------------------------------------


def run_distill(config: DistillConfig) -> DistillSummary:
    """Train `config.model` on `config.dataset` into `config.output`, resuming from its last checkpoint."""
    started = time.monotonic()
    _check_config(config)
    out = Path(config.output)
    dataset_manifest = read_manifest(Path(config.dataset))  # None for a Hub id or a folder without one
    run_hash = fingerprint({"config": hashed_view(config), "dataset": (dataset_manifest or {}).get("run_hash", config.dataset)})
    previous = claim_folder(out, "distill", run_hash, {"config": hashed_view(config)}, "the dataset changed")
    if previous and previous.get("complete"):
        return DistillSummary(out, previous, 0.0, already_complete=True)
    manifest = {
        "stage": "distill",
        "datakit_version": __version__,
        "command": sys.argv,
        "config": to_dict(config),
        "run_hash": run_hash,
        "student": generator_id(config.model),
        "dataset_manifest": dataset_manifest,
        "complete": False,
    }

    import torch
    from transformers import AutoConfig, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    folder = resolve_model(config.model)
    _check_context(config, AutoConfig.from_pretrained(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if config.chat_template:
        tokenizer.chat_template = Path(config.chat_template).read_text()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    bf16 = config.bf16 and torch.cuda.is_available()  # on CPU: fp32, the only precision its kernels train fast
    args = SFTConfig(
        output_dir=str(out / CHECKPOINTS),
        # rows are already cut to max_length; TRL's padding-free mode without packing refuses a max_length
        max_length=None if config.padding_free and not config.packing else config.max_length,
        packing=config.packing,
        padding_free=config.padding_free or config.packing,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_rate} if config.lr_scheduler_type == "cosine_with_min_lr" else None,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        bf16=bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=config.report_to if config.report_to is not None else installed_trackers(),
        deepspeed=config.deepspeed,
        disable_tqdm=True,  # datakit's own progress instead (training_progress): a bar or, away from a terminal, lines
        # tokens trained, padding not counted: padding-free batches hold none; padded ones carry an attention mask
        include_num_input_tokens_seen="all" if config.padding_free or config.packing else "non_padding",
        # TRL loads the model once these arguments exist, so ZeRO-3 and FSDP can shard it while loading
        model_init_kwargs={"dtype": torch.bfloat16 if bf16 else torch.float32},
    )
    with args.main_process_first(desc="tokenizing"):  # one process tokenizes, the others read its cache
        train, dropped = tokenized_dataset(config, tokenizer)
    write_json_atomic(out / MANIFEST, manifest)  # after the model, tokenizer and dataset load: a wrong one leaves nothing behind
    trainer = SFTTrainer(model=folder, args=args, train_dataset=train, processing_class=tokenizer, peft_config=_peft(config.lora),
                         callbacks=[training_progress(config.progress)])
    trainer.data_collator = batches = BatchTokens(trainer.data_collator)
    last = get_last_checkpoint(str(out / CHECKPOINTS)) if (out / CHECKPOINTS).is_dir() else None
    seen_before = json.loads((Path(last) / "trainer_state.json").read_text()).get("num_input_tokens_seen", 0) if last else 0
    result = trainer.train(resume_from_checkpoint=last)
    if config.lora.enabled:
        merged = trainer.model.merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(out / "model")
            tokenizer.save_pretrained(out / "model")
    else:
        trainer.save_model(str(out / "model"))  # every rank takes part: gathers ZeRO-3 / FSDP shards
    history = [h for h in trainer.state.log_history if "loss" in h]
    manifest.update(
        complete=True,
        resumed_from=last,
        rows=len(train),
        rows_too_long=dropped,
        train_tokens=int(sum(len(ids) for ids in train["input_ids"])),
        loss_tokens=int(sum(sum(1 for t in labels if t != IGNORE) for labels in train["labels"])),
        steps=trainer.state.global_step,
        train_loss=result.training_loss,
        loss_history=[{"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]} for h in history],
        **_throughput(trainer.state.num_input_tokens_seen, seen_before, result.metrics["train_runtime"], batches),
        seconds=round(time.monotonic() - started, 1),
    )
    if trainer.is_world_process_zero():
        write_loss_plot(out, manifest["loss_history"])
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        write_json_atomic(out / MANIFEST, manifest)
    return DistillSummary(out, manifest, time.monotonic() - started)


class BatchTokens:
    """The trainer's collator, counting the tokens of the batches it makes: real ones and all (padding
    included), for the manifest's padding_share. (The loader may collate a batch ahead of training.)"""

    def __init__(self, collate: Callable[[list[Any]], dict[str, Any]]) -> None:
        self.collate = collate
        self.real = self.total = 0

    def __call__(self, rows: list[Any]) -> dict[str, Any]:
        batch = self.collate(rows)
        self.total += batch["input_ids"].numel()
        self.real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        return batch

    @property
    def padding_share(self) -> float:
        return 1 - self.real / self.total if self.total else 0.0


def _throughput(tokens_seen: int, seen_before: int, train_seconds: float, batches: BatchTokens) -> dict[str, Any]:
    """Tokens trained on (padding not counted, through resumes), this run's training-loop tokens/s (those
    seen before the checkpoint it resumed from left out), and the share of padding in this run's batches:
    what packing or padding_free save."""
    return {
        "tokens_seen": int(tokens_seen),
        "train_seconds": round(train_seconds, 1),
        "tokens_per_second": round((tokens_seen - seen_before) / train_seconds, 1) if train_seconds else None,
        "padding_share": round(batches.padding_share, 4),
    }


def _check_context(config: DistillConfig, model_config: Any) -> None:
    """A max_length past the model's positions trains on positions it never saw, silently."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions and config.max_length > positions:
        raise DatakitError(
            f"max_length {config.max_length} exceeds {config.model}'s max_position_embeddings {positions}: extend its RoPE first "
            "(see recipes/distill/qwen2.5-math-7b.yaml) or lower max_length"
        )


def _check_config(config: DistillConfig) -> None:
    if not config.dataset or not config.output:
        raise DatakitError("distill needs a dataset (a mix folder) and an output folder")
    if config.loss_on not in ("assistant", "all"):
        raise DatakitError(f"loss_on: expected assistant or all, got {config.loss_on!r}")
    if config.chat_template and not Path(config.chat_template).is_file():
        raise DatakitError(f"chat_template: {config.chat_template} is not a file")
    if config.max_length < 16 or config.learning_rate <= 0:
        raise DatakitError("max_length must be >= 16 and learning_rate > 0")


def installed_trackers() -> list[str]:
    """Where training logs go: every tracker that is installed (none is an error-free `[]`)."""
    return [name for name, module in (("tensorboard", "tensorboard"), ("wandb", "wandb")) if importlib.util.find_spec(module)]


def _peft(lora: LoraConfig) -> Any:
    if not lora.enabled:
        return None
    from peft import LoraConfig as PeftLora

    return PeftLora(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules, task_type="CAUSAL_LM")


def tokenized_dataset(config: DistillConfig, tokenizer: Any) -> tuple[Any, int]:
    """The mix as input_ids + labels; rows longer than max_length are left out and counted."""
    import datasets

    source = Path(config.dataset)
    shards = source / "shards"
    if shards.is_dir():
        data = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in shards.glob("part-*.parquet")), split="train")
    elif source.exists():
        data = datasets.load_dataset("parquet", data_files=str(source if source.is_file() else source / "**" / "*.parquet"), split="train")
    else:
        try:
            data = datasets.load_dataset(config.dataset, split="train")
        except Exception as e:  # the hub client raises many types; all mean "could not get it"
            raise DatakitError(f"{config.dataset}: not a local folder or file, and loading it as a Hub dataset failed: {e}") from e
    if len(data) == 0:
        raise DatakitError(f"{config.dataset}: no rows to train on")
    encode = _conversation_encoder(config, tokenizer, data)
    tokens = data.map(encode, remove_columns=data.column_names, desc="tokenizing")
    kept = tokens.filter(lambda row: len(row["input_ids"]) <= config.max_length and any(t != IGNORE for t in row["labels"]))
    if len(kept) == 0 and not any(t != IGNORE for labels in tokens["labels"] for t in labels):
        raise DatakitError(
            f"{config.dataset}: no row has an assistant turn to learn from ({len(tokens)} rows); distill reads a `datakit mix` "
            "folder, whose `messages` end with the teacher's answer (a sample or filter folder's `messages` hold only the prompt)"
        )
    if len(kept) == 0:
        longest = max(len(ids) for ids in tokens["input_ids"])
        raise DatakitError(f"{config.dataset}: every row is longer than max_length {config.max_length} tokens (longest {longest}); raise max_length")
    return kept, len(tokens) - len(kept)


def _conversation_encoder(config: DistillConfig, tokenizer: Any, data: Any) -> Callable[[dict[str, Any]], dict[str, list[int]]]:
    """Tokenizes a row of either conversational form TRL reads: `messages`, or `prompt` + `completion`
    (lists of turns; the loss then falls on the completion alone)."""
    columns = data.column_names
    if "messages" in columns:
        return lambda row: tokenize_conversation(tokenizer, row["messages"], config.loss_on)
    if "prompt" in columns and "completion" in columns:
        if not isinstance(data[0]["prompt"], list) or not isinstance(data[0]["completion"], list):
            raise DatakitError(
                f"{config.dataset}: `prompt` and `completion` are text, not lists of {{role, content}} turns; distill reads "
                "TRL's conversational prompt/completion form (a `datakit mix` folder's prompt_completion/)"
            )
        return lambda row: tokenize_conversation(tokenizer, row["prompt"] + row["completion"], config.loss_on, len(row["prompt"]))
    raise DatakitError(
        f"{config.dataset}: no `messages` column and no `prompt`/`completion` columns; distill reads a `datakit mix` folder (see data/README.md)"
    )


def loss_trend(history: list[dict[str, float]]) -> tuple[float, float]:
    """Mean loss over the first and the second half of the logged steps (single batches are noisy)."""
    losses = [h["loss"] for h in history]
    half = max(len(losses) // 2, 1)
    first, second = losses[:half], losses[half:] or losses[:half]
    return sum(first) / len(first), sum(second) / len(second)


def write_loss_plot(out: Path, history: list[dict[str, float]]) -> Path | None:
    """loss.png, drawn by datakit.plots from the logged losses; none without any."""
    from datakit.plots import loss_figure, save

    return save(loss_figure(history), out / "loss.png") if history else None
