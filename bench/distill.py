"""Training tokens/s of `datakit distill` against a plain TRL `SFTTrainer` script, same rows, same settings, one run.

    python bench/distill.py                    # 400 rows, 12 steps per side, padded and packed batches
    python bench/distill.py --rows 400 --steps 20 --batch 8 --max-length 512

The rows are short R1-style conversations (a math question; a think block of 10 to 120 words and a
boxed answer), so they differ in length the way real samples do. The baseline is what a user writes
without datakit: `load_dataset("parquet")` of the same rows, `SFTTrainer(model, SFTConfig(...))` with
the same hyperparameters (TRL tokenizes the conversations itself and puts the loss on every token;
datakit on the assistant turns only: the same compute). Both train the embedded SmolLM2-135M in fp32
from its folder, save the model at the end, and run in their own processes.

Two configurations, each side under both: `padded` (rows padded to the longest in their batch) and
`packed` (TRL's best-fit packing into max_length sequences, padding-free). Per side:
- tokens/s: tokens trained on (padding not counted) over the training loop's time (`train_runtime`);
  `end-to-end`: over the whole run (load, tokenize, train, save);
- padding: the share of padding tokens in the batches the collator made (datakit.distill.BatchTokens
  wraps both sides' collators; datakit records the same in its manifest's padding_share).
Targets: datakit >= 0.95x the baseline's tokens/s; < 5% padding with packing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from harness import report_side, run_side

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATIONS = {"padded": {"packing": False}, "packed": {"packing": True}}
WORDS = ["so", "the", "total", "is", "then", "we", "add", "multiply", "each", "part", "carefully", "check", "again", "which", "gives", "us", "the", "answer"]


def make_data(folder: Path, rows: int) -> None:
    """`rows` conversations as a Parquet shard with a `messages` column, the shape a mix folder holds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    questions = [json.loads(line)["question"] for line in (ROOT / "data" / "demo" / "math.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    messages = []
    for i in range(rows):
        thinking = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 120)))
        answer = f"<think>\n{thinking}\n</think>\n\nThe answer is \\boxed{{{rng.randint(1, 999)}}}."
        messages.append([{"role": "user", "content": questions[i % len(questions)]}, {"role": "assistant", "content": answer}])
    (folder / "shards").mkdir(parents=True)
    pq.write_table(pa.table({"messages": messages}), folder / "shards" / "part-00000.parquet")


def settings(args: argparse.Namespace) -> dict:
    """What both sides train with: datakit's DistillConfig names, which are SFTConfig's."""
    return {
        "max_length": args.max_length, "packing": CONFIGURATIONS[args.configuration]["packing"], "max_steps": args.steps,
        "per_device_train_batch_size": args.batch, "gradient_accumulation_steps": 1, "learning_rate": 1e-5, "lr_scheduler_type": "cosine",
        "weight_decay": 0.0, "max_grad_norm": 1.0, "gradient_checkpointing": False, "seed": 42, "logging_steps": 1,
    }


def run_baseline(args: argparse.Namespace) -> dict:
    """The plain TRL script a user would write, timed from its imports to the saved model."""
    started = time.perf_counter()
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    from datakit.distill import BatchTokens
    from datakit.models import DEFAULT_MODEL, resolve_model

    train = datasets.load_dataset("parquet", data_files=str(Path(args.data) / "shards" / "*.parquet"), split="train")
    s = settings(args)
    config = SFTConfig(
        output_dir=str(Path(args.out) / "checkpoints"), **s, padding_free=s["packing"], warmup_steps=0.0, bf16=False,
        report_to="none", disable_tqdm=True, model_init_kwargs={"dtype": torch.float32},
        include_num_input_tokens_seen="all" if s["packing"] else "non_padding",  # as datakit counts: padding left out
    )
    trainer = SFTTrainer(model=resolve_model(DEFAULT_MODEL), args=config, train_dataset=train)
    trainer.data_collator = batches = BatchTokens(trainer.data_collator)  # measures padding only
    result = trainer.train()
    trainer.save_model(str(Path(args.out) / "model"))
    seconds = time.perf_counter() - started
    tokens = trainer.state.num_input_tokens_seen
    return {"side": "trl", "tokens": tokens, "tokens_per_second": tokens / result.metrics["train_runtime"],
            "end_to_end": tokens / seconds, "padding_share": batches.padding_share, "seconds": seconds, "steps": trainer.state.global_step}


def run_datakit(args: argparse.Namespace) -> dict:
    """`datakit distill` on the same rows, timed the same way; its manifest holds the measurements."""
    started = time.perf_counter()
    from datakit.distill import DistillConfig, run_distill

    config = DistillConfig(dataset=args.data, output=args.out, **settings(args), warmup_ratio=0.0, bf16=False, report_to=[], progress=False)
    manifest = run_distill(config).manifest
    seconds = time.perf_counter() - started
    tokens = manifest["tokens_seen"]
    return {"side": "datakit", "tokens": tokens, "tokens_per_second": manifest["tokens_per_second"],
            "end_to_end": tokens / seconds, "padding_share": manifest["padding_share"], "seconds": seconds, "steps": manifest["steps"]}


def compare(rows: int = 400, steps: int = 12, batch: int = 8, max_length: int = 512) -> list[dict]:
    """Both configurations, each with the baseline and datakit in their own processes on the same data."""
    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    common = ["--rows", str(rows), "--steps", str(steps), "--batch", str(batch), "--max-length", str(max_length), "--data", str(work / "data")]
    results = []
    try:
        run_side(__file__, "make", common)
        for name in CONFIGURATIONS:
            sides = {}
            for side in ("baseline", "datakit"):
                out = work / f"{name}-{side}"
                sides[side] = run_side(__file__, side, [*common, "--configuration", name, "--out", str(out)])
                shutil.rmtree(out, ignore_errors=True)
            base, ours = sides["baseline"], sides["datakit"]
            print(json.dumps({"configuration": name, "baseline": base, "datakit": ours}))
            results.append({
                "stage": f"distill ({name})", "rows": rows, "unit": "tok/s", "ratio": ours["tokens_per_second"] / base["tokens_per_second"],
                "baseline": {**base, "rate": base["tokens_per_second"]}, "datakit": {**ours, "rate": ours["tokens_per_second"]},
                "padding": (ours["padding_share"], base["padding_share"]),
            })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=["make", "baseline", "datakit"])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per side and configuration")
    parser.add_argument("--batch", type=int, default=8, help="per_device_train_batch_size")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--configuration", choices=list(CONFIGURATIONS), default="padded")
    parser.add_argument("--data", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.side == "make":
        make_data(Path(args.data), args.rows)
    elif args.side:
        report_side((run_baseline if args.side == "baseline" else run_datakit)(args))
    else:
        results = compare(args.rows, args.steps, args.batch, args.max_length)
        print(f"\n{'configuration':<14} {'trl tok/s':>10} {'datakit tok/s':>14} {'ratio':>7} {'end-to-end':>11} {'trl pad':>8} {'datakit pad':>12}")
        for r in results:
            base, ours = r["baseline"], r["datakit"]
            print(f"{r['stage']:<14} {base['rate']:>10.1f} {ours['rate']:>14.1f} {r['ratio']:>6.3f}x {ours['end_to_end'] / base['end_to_end']:>10.3f}x "
                  f"{base['padding_share']:>8.1%} {ours['padding_share']:>12.1%}")
        print("tok/s: tokens trained (no padding) per second of the training loop; end-to-end: over the whole run. Targets: >= 0.95x, < 5% padding packed.")


if __name__ == "__main__":
    main()
