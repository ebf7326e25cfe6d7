"""The `datakit` command: a thin layer that turns flags and recipes into configs and calls the library.

Settings resolve as defaults < recipe YAML (`--recipe`) < `--set a.b=c` < named flags.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from datakit.config import apply_overrides, build, load_recipe_section
from datakit.errors import EXIT_BACKEND, EXIT_INTERRUPTED, DatakitError, describe_os_error, exit_code
from datakit.logs import VERBOSE_ENV, console, err_console, log_tail, stage_log

app = typer.Typer(
    help="Build rejection-sampled SFT corpora from a teacher model (the DeepSeek-R1 recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

MAX_REJECTS_SHOWN = 10
DEBUG_ENV = "DATAKIT_DEBUG"


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Print the full traceback of a failure above its one-line error (or set DATAKIT_DEBUG=1).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the engines' own output (vLLM, transformers, torch warnings, loading bars) on the terminal too, instead of only in OUTPUT/logs/STAGE.log (or set DATAKIT_VERBOSE=1).")] = False,
) -> None:
    """Build rejection-sampled SFT corpora from a teacher model (the DeepSeek-R1 recipe).

    The terminal shows datakit's own lines, progress and tables; what the engines print goes to
    OUTPUT/logs/STAGE.log (--verbose: to the terminal too). Away from a terminal (SLURM, CI, nohup)
    progress is a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).

    A failure prints one line and exits with 2 (bad input or settings), 3 (disk full, no permission,
    unreadable file), 4 (a server or engine that kept failing) or 130 (Ctrl-C); re-run the same
    command to resume.
    """
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by main(), and by the worker processes a stage starts
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


def _settings(recipe: Path | None, section: str, overrides: list[str], flags: dict[str, Any]) -> dict[str, Any]:
    """Merge recipe, --set overrides and the named flags the user actually gave (not None)."""
    data = load_recipe_section(recipe, section) if recipe else {}
    apply_overrides(data, overrides)
    for dotted, value in flags.items():
        if value is None or value == []:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def _column_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        field, eq, column = item.partition("=")
        if not eq or not field or not column:
            raise DatakitError(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map question=problem")
        mapping[field] = column
    return mapping


RecipeOpt = Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `sample:` section sets defaults.", rich_help_panel="Config")]
SetOpt = Annotated[list[str], typer.Option("--set", help="Override any setting: --set sampling.top_p=0.9 (repeatable).", rich_help_panel="Config")]


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit identity out/identity.jsonl --name Aster --creator 'Example Labs' --count 2500\n\n"
        "  datakit identity --recipe recipes/r1-800k-distill.yaml   (its identity: section)\n\n"
        "  datakit sample out/identity.jsonl out/identity-samples --n 4   (then filter with filters/r1-non-reasoning.yaml)"
    )
)
def identity(
    output: Annotated[Optional[Path], typer.Argument(help="The prompts file to write (.jsonl), or `output:` in the recipe.", show_default=False)] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `identity:` section sets defaults.", rich_help_panel="Config")] = None,
    set_: SetOpt = [],
    name: Annotated[Optional[str], typer.Option(help="The model's name, e.g. DeepSeek-R1.")] = None,
    creator: Annotated[Optional[str], typer.Option(help="Who made it, e.g. DeepSeek.")] = None,
    knowledge_cutoff: Annotated[Optional[str], typer.Option(help="Its knowledge cutoff, e.g. 'July 2024' (default: no questions about it).")] = None,
    can_browse: Annotated[Optional[bool], typer.Option("--can-browse/--cannot-browse", help="Whether it can reach the internet (default: no questions about it).")] = None,
    language: Annotated[list[str], typer.Option("--language", help="A language of the prompts: en, zh, fr, es, de (repeatable; default en and zh).")] = [],
    count: Annotated[Optional[int], typer.Option(help="Prompts to write (default 10000); more than the templates make writes them all and says so.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the draw (default 0).")] = None,
    system_prompt: Annotated[Optional[bool], typer.Option("--system-prompt/--no-system-prompt", help="Start each prompt with a system message stating the identity, so the teacher answers in character (default on).")] = None,
) -> None:
    """Write self-cognition prompts ("who are you?", "who made you?") with reference answers, for a sample run.

    Questions on each topic are paraphrased and asked with varied openings, contexts and closings in each language, filled with the name, creator and facts given; rows are domain self_cognition, kind non_reasoning, verifier judge. The same settings write the same file.
    """
    from datakit.identity import IdentityConfig

    flags = {
        "output": str(output) if output else None,
        "name": name,
        "creator": creator,
        "knowledge_cutoff": knowledge_cutoff,
        "can_browse": can_browse,
        "languages": language,
        "count": count,
        "seed": seed,
        "system_prompt": system_prompt,
    }
    identity_and_report(build(IdentityConfig, _settings(recipe, "identity", set_, flags)))


def identity_and_report(config: Any) -> None:
    from datakit.identity import run_identity

    summary = run_identity(config)
    if summary.written < summary.requested:
        err_console.print(
            f"[yellow]asked for {summary.requested:,} prompts; the templates make {summary.distinct:,} distinct ones for these settings[/]: "
            "wrote them all. Sample each several times (sampling.n) or add languages or facts for more.",
            highlight=False,
        )
    languages = ", ".join(f"{k} {v:,}" for k, v in summary.by_language.items())
    topics = ", ".join(f"{k} {v:,}" for k, v in summary.by_topic.items())
    console.print(f"wrote {summary.written:,} self-cognition prompts to {summary.output} (languages: {languages}; topics: {topics})")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit sample data/demo/math.jsonl out/samples --model smollm2-135m-instruct --n 4\n\n"
        "  datakit sample --recipe recipes/demo.yaml --set sampling.n=8\n\n"
        "  datakit sample prompts.parquet out/s --backend vllm --model deepseek-ai/DeepSeek-R1 --tensor-parallel-size 8\n\n"
        "  datakit sample prompts.jsonl out/s --backend openai --base-url http://host:8000/v1 --model deepseek-reasoner\n\n"
        "  datakit sample chat.jsonl out/s --backend openai --model deepseek-chat --cot prompted   (R1's non-reasoning data)\n\n"
        "  datakit sample openai/gsm8k out/s --split test --map reference=answer --domain math"
    )
)
def sample(
    input: Annotated[Optional[str], typer.Argument(help="Prompts: a .jsonl or .parquet file, a Parquet folder, a saved `datasets` folder, or a Hub dataset id (or `input:` in the recipe, where a list reads several).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Argument(help="Output folder: Parquet shards + manifest.json (or `output:` in the recipe). Re-run the same command to resume.", show_default=False)] = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = [],
    model: Annotated[Optional[str], typer.Option(help="Model: the embedded alias smollm2-135m-instruct (default), a local folder or a Hub id.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto (vllm if installed, else hf) | vllm | hf | openai.")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="Completions per prompt (default 4).", rich_help_panel="Sampling")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (R1: 0.6).", rich_help_panel="Sampling")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling (R1: 0.95).", rich_help_panel="Sampling")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Top-k sampling; 0 = off (default).", rich_help_panel="Sampling")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens per completion (R1: 32768; clipped to the model's context).", rich_help_panel="Sampling")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Run seed; each prompt's seed derives from it and its prompt_id (default 0).", rich_help_panel="Sampling")] = None,
    cot: Annotated[Optional[str], typer.Option("--cot", help="off (default) | prompted: ask a chat teacher for a chain of thought before the answer on non-reasoning prompts (greetings and small talk excepted: think_mode empty); template: --set cot.version=v1 or cot.text=...", rich_help_panel="Sampling")] = None,
    prefill_think: Annotated[Optional[bool], typer.Option("--prefill-think/--no-prefill-think", help="Open the <think> block in the prompt, as R1's template does (default off).", rich_help_panel="Sampling")] = None,
    shard_size: Annotated[Optional[int], typer.Option(help="Prompts per output shard, the unit of resume (default 256).", rich_help_panel="Output")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show progress (default on): a bar on a terminal, else a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).", rich_help_panel="Output")] = None,
    num_workers: Annotated[Optional[int], typer.Option("--num-workers", "--num-shards", help="Jobs sharing this output folder (e.g. a SLURM array: --num-shards $SLURM_ARRAY_TASK_COUNT); job i takes shards i, i+K, ...", rich_help_panel="Output")] = None,
    worker_index: Annotated[Optional[int], typer.Option("--worker-index", "--shard-index", help="This job's index in [0, num-workers) (--shard-index $SLURM_ARRAY_TASK_ID).", rich_help_panel="Output")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Run the --data-parallel-size replicas as actors on this Ray cluster: auto, HOST:PORT or local.", rich_help_panel="Output")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="Input column for a prompt field: FIELD=COLUMN, FIELD one of id, question, messages, reference, tests, domain, language, kind, verifier (repeatable); tests=A,B joins the cases of several columns.", rich_help_panel="Prompts")] = [],
    system_prompt: Annotated[Optional[str], typer.Option(help="System message prepended to every prompt that has none.", rich_help_panel="Prompts")] = None,
    math_instruction: Annotated[Optional[bool], typer.Option("--math-instruction/--no-math-instruction", help="Append R1's 'Please reason step by step, and put your final answer within \\boxed{}.' to math prompts (default on).", rich_help_panel="Prompts")] = None,
    domain: Annotated[Optional[str], typer.Option(help="Domain of rows without a domain column (default general).", rich_help_panel="Prompts")] = None,
    language: Annotated[Optional[str], typer.Option(help="Expected answer language of rows without one (default en).", rich_help_panel="Prompts")] = None,
    source: Annotated[Optional[str], typer.Option(help="Provenance tag for the `source` column (default: the input's name).", rich_help_panel="Prompts")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split of a dataset folder or Hub dataset (default train).", rich_help_panel="Prompts")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N valid prompts.", rich_help_panel="Prompts")] = None,
    tensor_parallel_size: Annotated[Optional[int], typer.Option(help="GPUs per model replica (tensor parallel).", rich_help_panel="vLLM")] = None,
    pipeline_parallel_size: Annotated[Optional[int], typer.Option(help="Pipeline stages per replica (multi-node with Ray).", rich_help_panel="vLLM")] = None,
    data_parallel_size: Annotated[Optional[int], typer.Option(help="Engine replicas on this machine, one process each with its own GPUs (also for hf).", rich_help_panel="vLLM")] = None,
    max_model_len: Annotated[Optional[int], typer.Option(help="Context length the engine reserves (default: the model's).", rich_help_panel="vLLM")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="Weights dtype for vllm (default auto) and hf (default bfloat16).", rich_help_panel="vLLM")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="Share of GPU memory vLLM may take (default 0.9).", rich_help_panel="vLLM")] = None,
    enforce_eager: Annotated[Optional[bool], typer.Option("--enforce-eager/--no-enforce-eager", help="Skip CUDA graphs / torch.compile: faster start, slower run.", rich_help_panel="vLLM")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint (default http://localhost:8000/v1).", rich_help_panel="OpenAI-compatible server")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the API key (default OPENAI_API_KEY).", rich_help_panel="OpenAI-compatible server")] = None,
    max_concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight at once (default 64).", rich_help_panel="OpenAI-compatible server")] = None,
    max_retries: Annotated[Optional[int], typer.Option(help="Retries on 429/5xx/timeouts, with exponential backoff (default 8).", rich_help_panel="OpenAI-compatible server")] = None,
    request_timeout: Annotated[Optional[float], typer.Option(help="Seconds per request (default 600).", rich_help_panel="OpenAI-compatible server")] = None,
    batch_prompts: Annotated[Optional[int], typer.Option(help="Prompts per transformers generate call (default 8).", rich_help_panel="transformers (hf)")] = None,
) -> None:
    """Sample N completions per prompt from a teacher model, into resumable Parquet shards."""
    from datakit.sample import SampleConfig

    flags = {
        "input": input,
        "output": str(output) if output else None,
        "model": model,
        "backend.name": backend,
        "sampling.n": n,
        "sampling.temperature": temperature,
        "sampling.top_p": top_p,
        "sampling.top_k": top_k,
        "sampling.max_tokens": max_tokens,
        "sampling.seed": seed,
        "prefill_think": prefill_think,
        "cot.mode": cot,
        "shard_size": shard_size,
        "progress": progress,
        "num_workers": num_workers,
        "worker_index": worker_index,
        "ray_address": ray_address,
        "data_parallel_size": data_parallel_size,
        "ingest.system_prompt": system_prompt,
        "ingest.math_instruction": math_instruction,
        "ingest.domain": domain,
        "ingest.language": language,
        "ingest.source": source,
        "ingest.split": split,
        "ingest.limit": limit,
        "backend.vllm.tensor_parallel_size": tensor_parallel_size,
        "backend.vllm.pipeline_parallel_size": pipeline_parallel_size,
        "backend.vllm.max_model_len": max_model_len,
        "backend.vllm.dtype": dtype,
        "backend.hf.dtype": dtype if dtype and dtype != "auto" else None,
        "backend.vllm.gpu_memory_utilization": gpu_memory_utilization,
        "backend.vllm.enforce_eager": enforce_eager,
        "backend.openai.base_url": base_url,
        "backend.openai.api_key_env": api_key_env,
        "backend.openai.max_concurrency": max_concurrency,
        "backend.openai.max_retries": max_retries,
        "backend.openai.timeout_s": request_timeout,
        "backend.hf.batch_prompts": batch_prompts,
    }
    flags.update({f"ingest.mapping.{k}": v for k, v in _column_map(map_).items()})
    sample_and_report(build(SampleConfig, _settings(recipe, "sample", set_, flags)))


def sample_and_report(config: Any) -> None:
    from datakit.sample import run_sample

    with stage_log("sample" if config.num_workers == 1 else f"sample-worker-{config.worker_index}", config.output):
        summary = run_sample(config)
    if not summary.complete:
        console.print(
            f"worker {config.worker_index} of {config.num_workers} finished its shards "
            f"({summary.shards_written} written, {summary.shards_skipped} already done); "
            f"{summary.output} is complete once every worker has finished."
        )
        return
    _print_rejects(summary.output / "rejects.jsonl")
    _print_sample_summary(summary)
    _print_example(summary.output)


@app.command(
    "filter",
    epilog=(
        "Examples:\n\n"
        "  datakit filter out/samples out/filtered --chain filters/r1-reasoning.yaml\n\n"
        "  datakit filter traces.jsonl out/filtered --chain my-chain.yaml --map completion=response --map reference=gold\n\n"
        "  datakit filter out/samples out/filtered --chain filters/r1-non-reasoning.yaml --judge-model deepseek-ai/DeepSeek-V3 --judge-backend openai --set filters.judge.backend.openai.base_url=http://judge:8000/v1"
    ),
)
def filter_(
    input: Annotated[Optional[str], typer.Argument(help="Samples: a `datakit sample` folder, or a .jsonl/.parquet file or Hub dataset using the schema's column names; rows that do not fit the schema (or repeat a prompt_id/sample_index) go to OUTPUT/rejects.jsonl, the rest are filtered.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Argument(help="Output folder: accepted/, rejected/, report.json, funnel.png, lengths.png. Re-run to resume.", show_default=False)] = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = [],
    chain: Annotated[Optional[Path], typer.Option(help="Filter chain YAML (default filters/r1-reasoning.yaml).")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="Schema column from an input column: COLUMN=INPUT_COLUMN (repeatable); an INPUT_COLUMN the input lacks is refused.")] = [],
    workers: Annotated[Optional[int], typer.Option(help="Processes filtering shards in parallel (default: one per core).")] = None,
    rows_per_shard: Annotated[Optional[int], typer.Option(help="Rows per work unit for file inputs (default 4096).")] = None,
    plots: Annotated[Optional[bool], typer.Option("--plots/--no-plots", help="Write funnel.png and lengths.png (default on).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Filter the shards with Ray Data on this cluster: auto, HOST:PORT or local.")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show progress (default on): a bar on a terminal, else a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).")] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="Model of the chain's LLM judge (filters.judge.model), e.g. deepseek-ai/DeepSeek-V3; any filter parameter: --set filters.NAME.PARAM=VALUE.", rich_help_panel="Judge")] = None,
    judge_backend: Annotated[Optional[str], typer.Option(help="Engine of the judge: vllm, openai, hf or auto (filters.judge.backend.name); --set filters.judge.backend.openai.base_url=... for a server.", rich_help_panel="Judge")] = None,
) -> None:
    """Keep only correct, clean samples: run a filter chain, write accepted/ and rejected/ with reasons.

    Math answers are graded on the final answer section only: the last \\boxed{} or answer phrase ("the answer is", "Answer:"), else the last math span or number of the final paragraph, numbers read in the row's language; correct_extracted_from says which, and correctness: require_boxed: true keeps only boxed ones (re-decided from stored scores).

    Code answers (Python, C++) run in a fresh sandbox per sample against the problem's function tests or stdin/stdout cases: network/PID/mount namespaces (unshare), read-only nosuid /, no_new_privs, an unprivileged uid, and one cgroup bounding the memory of all its processes (without cgroups: per-process rlimits, memfd_create/shmget denied); the tests run in a separate judge process. Limits count CPU seconds (correctness: code_case_cpu_s, code_cpu_s), so verdicts do not depend on machine load. report.json's code_sandbox records the isolation used.
    """
    from datakit.filter import FilterConfig

    flags = {
        "input": input,
        "output": str(output) if output else None,
        "chain": str(chain) if chain else None,
        "workers": workers,
        "rows_per_shard": rows_per_shard,
        "plots": plots,
        "ray_address": ray_address,
        "progress": progress,
        "filters.judge.model": judge_model,
        "filters.judge.backend.name": judge_backend,
    }
    flags.update({f"mapping.{k}": v for k, v in _column_map(map_).items()})
    filter_and_report(build(FilterConfig, _settings(recipe, "filter", set_, flags)))


def filter_and_report(config: Any) -> None:
    from datakit.filter import run_filter

    with stage_log("filter", config.output):
        summary = run_filter(config)
    if summary.shards_written == 0:
        console.print(f"[green]{summary.output} is already complete[/]: nothing to do.")
    print_funnel(summary.report)
    if summary.report.get("rows_rejected"):
        err_console.print(
            f"[yellow]{summary.report['rows_rejected']:,} input rows set aside[/] ({summary.report['duplicate_keys']:,} repeating an earlier "
            f"(prompt_id, sample_index)), each with its file, line or row, field and reason in {summary.output / 'rejects.jsonl'}", highlight=False)
    for plot in summary.plots:
        console.print(f"plot: {plot}")
    console.print(f"report: {summary.output / 'report.json'}; accepted: {summary.output / 'accepted'}; rejected: {summary.output / 'rejected'}")


def print_funnel(report: dict[str, Any]) -> None:
    table = Table(title=f"filter funnel ({report['chain']})")
    for column in ("filter", "in", "dropped", "out", "top reasons"):
        table.add_column(column, justify="left" if column in ("filter", "top reasons") else "right")
    for step in report["funnel"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in list(step["reasons"].items())[:3])
        table.add_row(step["filter"], f"{step['rows_in']:,}", f"{step['dropped']:,}", f"{step['rows_out']:,}", reasons)
    console.print(table)
    prompts = report["prompts"]
    console.print(
        f"kept {report['rows_out']:,} of {report['rows_in']:,} samples; "
        f"{prompts['zero_accepted']:,} of {prompts['in']:,} prompts have no accepted sample"
    )
    for domain, d in report["by_domain"].items():
        console.print(f"  {domain}: {d['out']:,}/{d['in']:,} kept ({d['pass_rate']:.0%})")
    for used in report.get("judges", []):
        how = ", ".join(f"{k} {v}" for k, v in used.items() if k not in ("filter", "model"))
        console.print(f"{used['filter']}: {used['model']} ({how})")


def _print_rejects(path: Path) -> None:
    """The first rejected rows with where and why, so a user sees the reasons without opening the file."""
    import json

    if not path.exists():
        return
    lines = path.read_text().splitlines()
    if lines:
        err_console.print(f"[yellow]{len(lines):,} input row(s) rejected[/], all listed with their reasons in {path}:", highlight=False)
    for line in lines[:MAX_REJECTS_SHOWN]:
        r = json.loads(line)
        where = f"{r['file']}:{r['line']}" if r["line"] is not None else f"{r['file']} (prompt {json.loads(r['raw']).get('prompt_id')!r})"
        field = f" field {r['field']!r}:" if r["field"] else ""
        err_console.print(f"  [yellow]rejected[/] {where}:{field} {r['reason'][:300]}", highlight=False)
    if len(lines) > MAX_REJECTS_SHOWN:
        err_console.print(f"  [yellow]... and {len(lines) - MAX_REJECTS_SHOWN:,} more[/] in {path}", highlight=False)


def _print_sample_summary(summary: Any) -> None:
    if summary.already_complete:
        console.print(f"[green]{summary.output} is already complete[/]: nothing to do.")
    table = Table(title=f"datakit sample -> {summary.output}", show_header=False)
    table.add_row("prompts", f"{summary.prompts:,}" + (f" ({summary.too_long:,} longer than the model's context: not sampled, in rejects.jsonl)" if summary.too_long else ""))
    table.add_row("rejected input rows", f"{summary.rejected_prompts:,}" + (f" (see {summary.output / 'rejects.jsonl'})" if summary.rejected_prompts else ""))
    table.add_row("samples written", f"{summary.rows:,}")
    table.add_row("completion tokens", f"{summary.completion_tokens:,}")
    table.add_row("finish reasons", ", ".join(f"{k}: {v:,}" for k, v in summary.finish_reasons.items()))
    if not summary.already_complete:
        table.add_row("shards", f"{summary.shards_written} written, {summary.shards_skipped} already done")
        table.add_row("time", f"{summary.seconds:.1f} s ({summary.tokens_per_second:,.0f} generated tok/s)")
    console.print(table)


def _print_example(folder: Path) -> None:
    """One sample, so a user sees what the teacher wrote before opening the Parquet."""
    from datakit.dataset import iter_batches

    rows = [row for batch in iter_batches(folder, columns=["prompt_id", "messages", "reasoning", "answer", "reference"]) for row in batch.to_pylist()[:1]]
    if not rows:  # every prompt was refused (too long): nothing to show
        return
    row = rows[0]
    clip = lambda text, size=400: text if len(text) <= size else text[:size] + " …"  # noqa: E731
    console.print(f"\n[bold]example[/] {row['prompt_id']} (reference: {row['reference']})")
    console.print(f"[cyan]prompt:[/] {clip(row['messages'][-1]['content'])}", highlight=False)
    if row["reasoning"]:
        console.print(f"[magenta]reasoning:[/] {clip(row['reasoning'])}", highlight=False)
    console.print(f"[green]answer:[/] {clip(row['answer'])}", highlight=False)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit mix --recipe recipes/r1-800k.yaml out/mix\n\n"
        "  datakit mix out/mix --source out/filtered --source out/chat-filtered --set quotas.reasoning.math=5000\n\n"
        "  datakit mix --recipe recipes/demo.yaml --seed 1 --replacement"
    )
)
def mix(
    output: Annotated[Optional[Path], typer.Argument(help="Output folder (or `output:` in the recipe's `mix:` section). Re-run the same command to resume.", show_default=False)] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `mix:` section sets sources, quotas, dedup and decontamination.", rich_help_panel="Config")] = None,
    set_: SetOpt = [],
    source: Annotated[list[str], typer.Option("--source", help="A filter folder (its accepted/), stage folder, .parquet/.jsonl of samples or Hub dataset id; replaces the recipe's sources (repeatable).")] = [],
    seed: Annotated[Optional[int], typer.Option(help="Seed of the quota draws and the shuffle (default 0).")] = None,
    replacement: Annotated[Optional[bool], typer.Option("--replacement/--no-replacement", help="Fill a short quota by drawing its rows again (default off: report the shortfall).")] = None,
    max_per_prompt: Annotated[Optional[int], typer.Option(help="Most samples of one prompt (default 0 = no cap).")] = None,
    ngram: Annotated[Optional[int], typer.Option(help="Word n-gram size of the benchmark decontamination (default 8).")] = None,
    rows_per_shard: Annotated[Optional[int], typer.Option(help="Rows per output Parquet shard (default 20000).")] = None,
    prompt_completion: Annotated[Optional[bool], typer.Option("--prompt-completion/--no-prompt-completion", help="Also write TRL's prompt/completion split (OUT/prompt_completion/, config `prompt_completion`): loss on the final answer only, with any chat template (default off).")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show progress (default on): a bar on a terminal, else a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).")] = None,
) -> None:
    """Assemble the SFT mix: dedup, decontaminate, fill per-domain quotas, write TRL conversations."""
    from datakit.mix import MixConfig

    flags = {
        "output": str(output) if output else None,
        "sources": [{"path": s} for s in source] or None,
        "seed": seed,
        "replacement": replacement,
        "max_per_prompt": max_per_prompt,
        "decontamination.n": ngram,
        "rows_per_shard": rows_per_shard,
        "prompt_completion": prompt_completion,
        "progress": progress,
    }
    mix_and_report(build(MixConfig, _settings(recipe, "mix", set_, flags)))


def mix_and_report(config: Any) -> None:
    from datakit.mix import run_mix

    with stage_log("mix", config.output):
        summary = run_mix(config)
    if summary.already_complete:
        console.print(f"[green]{summary.output} is already complete[/]: nothing to do.")
    print_mix_report(summary.report)
    console.print(f"report: {summary.output / 'report.json'}; plot: {summary.output / 'mix.png'}; removed rows: {summary.output / 'removed'}")
    if config.prompt_completion:
        console.print(f"prompt/completion split (config prompt_completion): {summary.output / 'prompt_completion'}")


def print_mix_report(report: dict[str, Any]) -> None:
    from datakit.decontam import unchecked

    table = Table(title=f"mix: {report['rows_out']:,} rows from {report['rows_in']:,}")
    for column in ("kind", "domain", "quota", "available", "taken", "short by"):
        table.add_column(column, justify="left" if column in ("kind", "domain") else "right")
    for q in report["quotas"]:
        short = f"[red]{q['short_by']:,}[/]" if q["short_by"] > 0 else "0"
        taken = f"{q['taken']:,}" + (f" ({q['upsampled']:,} drawn again)" if q["upsampled"] else "")
        table.add_row(q["kind"], q["domain"], f"{q['quota']:,}", f"{q['available']:,}", taken, short)
    console.print(table)
    removed = report["removed"]
    console.print(
        f"removed before sampling: {removed['exact_duplicate']:,} exact duplicates, {removed['near_duplicate']:,} near duplicates "
        f"(MinHash, Jaccard ~{report['dedup']['jaccard_threshold']}), {removed['contaminated']:,} contaminated; "
        f"{report['rows_rejected']:,} malformed rows rejected ({report.get('duplicate_keys', 0):,} repeating an earlier (prompt_id, sample_index)), listed in rejects.jsonl"
    )
    benchmarks = report["decontamination"]["benchmarks"]
    for error, names in unchecked(benchmarks).items():
        err_console.print(f"[yellow]not decontaminated against {', '.join(names)}[/]: {error}", highlight=False)
    for name, status in benchmarks.items():
        if "error" not in status:
            console.print(f"  {name}: {status['items']:,} items, {status['removed']:,} rows removed ({report['decontamination']['n']}-gram overlap)")
    for row in report["unused"]:
        console.print(f"  [yellow]no quota[/] for {row['kind']}/{row['domain']}: {row['rows']:,} rows left out")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit push out/mix my-org/r1-distill-mix --dry-run   (stage to out/mix-hub and write the card; upload nothing)\n\n"
        "  datakit push out/mix my-org/r1-distill-mix --private --license apache-2.0\n\n"
        "  datakit push out/filtered my-org/math-filtered   (configs accepted, the default, and rejected)\n\n"
        "  datakit push --recipe recipe.yaml --set license=mit   (folder and repo_id from its push: section)\n\n"
        "Log in first with `hf auth login` or set HF_TOKEN. Re-run to resume a killed upload; an unchanged folder commits nothing."
    )
)
def push(
    folder: Annotated[Optional[Path], typer.Argument(help="A finished sample, filter or mix folder (or `folder:` in the recipe's `push:` section).", show_default=False)] = None,
    repo_id: Annotated[Optional[str], typer.Argument(help="Dataset repo on the Hub, ORG/NAME; created if missing (or `repo_id:` in the recipe).", show_default=False)] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `push:` section sets folder, repo_id, license, pretty_name, ...", rich_help_panel="Config")] = None,
    set_: SetOpt = [],
    private: Annotated[Optional[bool], typer.Option("--private", help="Create the repo private (an existing repo keeps its visibility).")] = None,
    dry_run: Annotated[Optional[bool], typer.Option("--dry-run", help="Stage the folder and write the card; upload nothing.")] = None,
    staging: Annotated[Optional[Path], typer.Option(help="Where to build the upload (default: FOLDER-hub beside FOLDER). Never inside FOLDER.")] = None,
    license_: Annotated[Optional[str], typer.Option("--license", help="Hub license id, e.g. apache-2.0, mit, cc-by-4.0 (default other: the card says the teacher's and prompts' terms apply).")] = None,
) -> None:
    """Upload a stage folder to the Hugging Face Hub as a dataset, with a generated dataset card."""
    from datakit.push import PushConfig, run_push

    flags = {
        "folder": str(folder) if folder else None,
        "repo_id": repo_id,
        "private": private,
        "dry_run": dry_run,
        "staging": str(staging) if staging else None,
        "license": license_,
    }
    summary = run_push(build(PushConfig, _settings(recipe, "push", set_, flags)))
    configs = ", ".join(f"{p.name} ({p.rows:,} rows)" for p in summary.parts)
    console.print(f"staged {len(summary.files)} files at {summary.staging}: configs {configs}; card: {summary.staging / 'README.md'}")
    if summary.dry_run:
        console.print(f"dry run: nothing uploaded; `datakit push` without --dry-run uploads this folder to {summary.url}")
    elif summary.committed:
        console.print(f"[green]pushed[/] to {summary.url}")
    else:
        console.print(f"[green]{summary.url} is already up to date[/]: nothing to commit.")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit distill --recipe recipes/demo.yaml   (the embedded SmolLM2-135M on the demo mix, a few minutes on 2 CPU cores)\n\n"
        "  datakit distill --recipe recipes/distill/qwen2.5-math-7b.yaml --dataset out/mix --output out/student\n\n"
        "  accelerate launch --config_file recipes/accelerate/zero3.yaml -m datakit.cli distill --recipe recipes/distill/qwen2.5-32b.yaml\n\n"
        "Kill it at any time and re-run the same command: training resumes from the last checkpoint."
    )
)
def distill(
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `distill:` section sets the student and every training setting.", rich_help_panel="Config")] = None,
    set_: SetOpt = [],
    dataset: Annotated[Optional[str], typer.Option(help="A `datakit mix` folder, its prompt_completion/ folder (loss on the completion only), or a Parquet folder / Hub dataset with `messages` or `prompt`/`completion`.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Output folder: model/ (the student), checkpoints while training, manifest.json, loss.png.")] = None,
    model: Annotated[Optional[str], typer.Option(help="The student: an alias, folder or Hub id (default smollm2-135m-instruct).")] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--no-lora", help="Train LoRA adapters (merged into the saved student) instead of all weights.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimiser steps (default: num_train_epochs).")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show progress (default on): a bar on a terminal, else a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).")] = None,
) -> None:
    """SFT a student on a mix with TRL (R1's distillation): loss on assistant tokens only, resumable."""
    from datakit.distill import DistillConfig

    flags = {"dataset": dataset, "output": str(output) if output else None, "model": model, "lora.enabled": lora, "max_steps": max_steps, "progress": progress}
    distill_and_report(build(DistillConfig, _settings(recipe, "distill", set_, flags)))


def distill_and_report(config: Any) -> None:
    from datakit.distill import loss_trend, run_distill
    from datakit.launch import rank_and_world

    rank, world = rank_and_world()
    with stage_log("distill" if world == 1 else f"distill-rank{rank}", config.output):
        summary = run_distill(config)
    m = summary.manifest
    if summary.already_complete:
        console.print(f"[green]{summary.output} is already complete[/]: nothing to do.")
    first, last = loss_trend(m["loss_history"]) if m.get("loss_history") else (float("nan"), float("nan"))
    console.print(
        f"distilled {m['student']} on {m['rows']:,} rows ({m['rows_too_long']:,} longer than max_length left out), "
        f"{m['steps']:,} steps; mean loss {first:.3f} in the first half of the steps, {last:.3f} in the second; "
        f"{m['loss_tokens']:,} of {m['train_tokens']:,} tokens carried loss"
        + (f"; resumed from {m['resumed_from']}" if m.get("resumed_from") else "")
    )
    console.print(f"student: {summary.output / 'model'}; plot: {summary.output / 'loss.png'}")


@app.command(
    "eval",
    epilog=(
        "Examples:\n\n"
        "  datakit eval --model smollm2-135m-instruct --model out/demo/student   (the demo's held-back problems: before and after)\n\n"
        "  datakit eval --model out/student --benchmark r1   (R1's table: aime24, math500, gpqa_diamond, livecodebench from the Hub)\n\n"
        "  datakit eval --model out/student --benchmark gpqa_diamond=tests/data/benchmarks/gpqa_diamond.jsonl   (a preset on a local copy in the published schema)\n\n"
        "  datakit eval --model out/student --benchmark olymp=problems.jsonl --domain math --k 16 --map question=problem\n\n"
        "  datakit eval --model out/student --benchmark humaneval=data/demo/humaneval.jsonl --domain code --k 16   (pass@1; cons@k does not apply to code)\n\n"
        "  datakit eval --recipe recipes/r1-800k-distill.yaml"
    ),
)
def eval_(
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="Recipe YAML; its `eval:` section sets models, benchmarks, sampling and backend.", rich_help_panel="Config")] = None,
    set_: SetOpt = [],
    model: Annotated[list[str], typer.Option("--model", help="A model to score: alias, folder (a distill output too) or Hub id (repeatable: one table).")] = [],
    benchmark: Annotated[list[str], typer.Option("--benchmark", help="r1 (R1's four), a preset (aime24, math500, gpqa_diamond, livecodebench: Hub copy, columns, domain, k), PRESET=PATH (the preset on a local copy in the published schema) or NAME=PATH of other problems (.jsonl/.parquet/folder/Hub id); repeatable. Default: the demo's held-back problems.")] = [],
    k: Annotated[Optional[int], typer.Option(help="Answers per problem for the --benchmark ones (default: the preset's, else 4).")] = None,
    domain: Annotated[Optional[str], typer.Option(help="Domain of the --benchmark ones' rows without a domain column: math (boxed answers), science (rows with options: a letter), code (tests run in the sandbox; pass@1 only). Default: the preset's, else each row's `domain` column.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="Schema column from a benchmark column: question=problem, tests=public_test_cases (repeatable).")] = [],
    output: Annotated[Optional[Path], typer.Option(help="Results folder: one sample folder per model and benchmark, scores.json, eval.png (default out/eval).")] = None,
    backend: Annotated[Optional[str], typer.Option(help="vllm, hf, openai or auto (default).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Generation budget per answer (default 32768, R1's).")] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Show progress (default on): a bar on a terminal, else a line every DATAKIT_PROGRESS_INTERVAL seconds (default 30).")] = None,
) -> None:
    """Score models by pass@1 and cons@k (majority vote; not for code) with R1's sampling; exactly k answers a problem.

    `--benchmark r1` is R1's table (AIME 2024 k=64, MATH-500 k=4, GPQA Diamond k=8 with options in a seeded order, LiveCodeBench v4_v5 k=8, pass@1 only). Votes group answers by value (math-verify: x=2, 2 and \\frac{4}{2} are one answer). Every score has a 95% interval, a bootstrap over problems (42.5 [35.0, 50.6]); with several --model each is compared with the first, with a paired interval: a difference whose interval holds 0 is noise.
    """
    from datakit.benchmarks import benchmark_settings
    from datakit.eval import EvalConfig

    benches = [bench for item in benchmark for bench in benchmark_settings(item, k, domain, _column_map(map_))]
    flags = {
        "models": model or None,
        "benchmarks": benches or None,
        "output": str(output) if output else None,
        "backend.name": backend,
        "sampling.max_tokens": max_tokens,
        "progress": progress,
    }
    eval_and_report(build(EvalConfig, _settings(recipe, "eval", set_, flags)))


def _interval(score: float | None, ci: list[float] | None, signed: bool = False) -> str:
    """A score (or a difference, `signed`) in % with its 95% interval, "42.5 [39.4, 45.6]"; "—" where none applies (cons@k of code)."""
    if score is None:
        return "—"
    form = "{:+.1f}" if signed else "{:.1f}"
    shown = form.format(score * 100)
    return shown if ci is None else f"{shown} [{form.format(ci[0] * 100)}, {form.format(ci[1] * 100)}]"


def _difference(comparison: dict[str, Any], metric: str) -> str:
    """A model's difference from the baseline, its interval, and whether the interval excludes 0."""
    if comparison[f"{metric}_diff"] is None:
        return "—"
    verdict = "beyond noise" if comparison[f"{metric}_beyond_noise"] else "noise"
    return f"{_interval(comparison[f'{metric}_diff'], comparison[f'{metric}_diff_ci'], signed=True)} {verdict}"


def eval_and_report(config: Any) -> None:
    from datakit.eval import UNGRADABLE, run_eval

    with stage_log("eval", config.output):
        scores = run_eval(config)
    table = Table(title="eval: pass@1 / cons@k (%), [95% interval over problems]")
    for name in ("benchmark", "k", "model", "pass@1", "cons@k"):
        table.add_column(name, justify="left" if name in ("benchmark", "model") else "right")
    benches = list(dict.fromkeys(r["benchmark"] for r in scores["results"]))
    for r in sorted(scores["results"], key=lambda r: benches.index(r["benchmark"])):  # stable: models in their order
        table.add_row(r["benchmark"], str(r["k"]), r["label"], _interval(r["pass@1"], r.get("pass@1_ci")), _interval(r["cons@k"], r.get("cons@k_ci")))
    console.print(table)
    if scores.get("comparisons"):
        diffs = Table(title="model - baseline, paired over the same problems (points, [95% interval]; noise: it holds 0)")
        for name in ("benchmark", "model", "baseline", "problems", "pass@1", "cons@k"):
            diffs.add_column(name, justify="right" if name == "problems" else "left")
        for c in scores["comparisons"]:
            diffs.add_row(c["benchmark"], c["model"], c["baseline"], str(c["problems"]), _difference(c, "pass@1"), _difference(c, "cons@k"))
        console.print(diffs)
    for r in scores["results"]:
        if r["ungradable_samples"]:
            why = ", ".join(f"{v} {n:,}" for v, n in r["verdicts"].items() if v in UNGRADABLE)
            err_console.print(f"[yellow]{r['label']} on {r['benchmark']}[/]: {r['ungradable_samples']:,} samples could not be graded ({why})")
        if r.get("problems_too_long"):
            err_console.print(f"[yellow]{r['label']} on {r['benchmark']}[/]: {r['problems_too_long']:,} problem(s) longer than the model's context count as failed (see {r['samples']}/rejects.jsonl)")
        if r.get("vote_fallbacks"):
            err_console.print(f"[yellow]{r['label']} on {r['benchmark']}[/]: {r['vote_fallbacks']:,} problem(s) voted by text, not math equivalence (grouping timed out or failed)")
    console.print(f"scores: {Path(config.output) / 'scores.json'}; plot: {Path(config.output) / 'eval.png'}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  datakit run recipes/demo.yaml              (the whole demo on 2 CPU cores, ~13 minutes)\n\n"
        "  datakit run recipes/r1-800k-distill.yaml --dry-run   (check the full-scale recipe without running it)\n\n"
        "Re-run after a kill: finished stages are skipped and the unfinished one resumes."
    )
)
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML with sample, filter, mix, distill and eval sections (any subset; a list runs a stage several times).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build every stage's config and check every file it names; run nothing.")] = False,
) -> None:
    """Run the whole pipeline from one recipe: sample -> filter -> mix -> distill -> eval.

    Under `accelerate launch` or `torchrun` only distillation runs on every rank: rank 0 samples, filters and
    mixes while the others wait, and rank 0 evaluates the student.

    At the end it prints each stage run's wall time, also kept in run-RECIPE.json beside the stage folders
    (rewritten after every stage, so a killed run keeps the times of those that finished).
    """
    from datakit.launch import on_rank_zero, rank_and_world
    from datakit.pipeline import StageTime, check_pipeline, domain_plan, load_pipeline, run_summary_path, step_inputs, write_run_summary

    steps = load_pipeline(recipe)
    problems = check_pipeline(steps)
    table = Table(title=f"{recipe}: {len(steps)} stage runs")
    for column in ("stage", "reads", "writes"):
        table.add_column(column)
    for step in steps:
        reads = ", ".join(i.path for i in step_inputs(step))
        table.add_row(step.where.split(": ", 1)[-1], reads, str(getattr(step.config, "output", "")))
    console.print(table)
    _print_domain_plan(steps, domain_plan(steps))
    if problems:
        raise DatakitError(f"{recipe}: " + "; ".join(problems))
    if dry_run:
        console.print(f"[green]{recipe} is valid[/]: every section builds and every input exists or is made by an earlier stage.")
        return
    report = {"identity": identity_and_report, "sample": sample_and_report, "filter": filter_and_report, "mix": mix_and_report, "distill": distill_and_report, "eval": eval_and_report}
    rank_zero = rank_and_world()[0] == 0
    summary = run_summary_path(recipe, steps)
    times: list[StageTime] = []

    def run_steps(stages: tuple[str, ...]) -> None:
        for step in steps:
            if step.stage in stages:
                console.rule(f"[bold]{step.where}")
                started = time.monotonic()
                report[step.stage](step.config)
                times.append(StageTime(step.stage, step.where, str(getattr(step.config, "output", "")), round(time.monotonic() - started, 1)))
                if rank_zero:
                    write_run_summary(summary, recipe, times, complete=False)

    data_stages = tuple(stage for stage in report if stage not in ("distill", "eval"))
    on_rank_zero(lambda: run_steps(data_stages), "the data stages (" + ", ".join(data_stages) + ")")
    run_steps(("distill",))
    if rank_zero:
        run_steps(("eval",))
        write_run_summary(summary, recipe, times, complete=True)
        _print_stage_times(times, summary)


def _print_stage_times(times: list[Any], summary: Path) -> None:
    """The wall time of each stage run, so a user sees where the run went."""
    table = Table(title="wall time per stage")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for t in times:
        table.add_row(t.where.split(": ", 1)[-1], f"{t.seconds:,.1f}")
    table.add_row("[bold]total[/]", f"[bold]{sum(t.seconds for t in times):,.1f}[/]")
    console.print(table)
    console.print(f"stage times: {summary}")


def _print_domain_plan(steps: list[Any], plan: list[Any]) -> None:
    """Per domain: its prompts, its verifier and the judge for what rules cannot decide; mix quotas with no source."""
    table = Table(title="domains: where the prompts come from and what decides a sample")
    for column in ("domain", "source", "verifier", "judge"):
        table.add_column(column)
    for p in plan:
        table.add_row(p.domain, p.source, p.verifier, p.judge or f"— (undecided rows {p.unjudged})")
    quotas = {d for step in steps if step.stage == "mix" for per_kind in step.config.quotas.values() for d in per_kind}
    for domain in sorted(quotas - {p.domain for p in plan}):
        table.add_row(domain, "[yellow]none: its mix quota will fall short[/]", "", "")
    if table.row_count:
        console.print(table)


def main() -> None:
    """Run the CLI; a user-level failure is one line on stderr and an exit code, never a traceback
    (unless --debug or DATAKIT_DEBUG=1). Finished work is on disk, so the line says to re-run."""
    try:
        app()
    except SystemExit as e:
        # Typer turns Ctrl-C into a silent exit 130; say what happened and what to do
        if e.code == EXIT_INTERRUPTED:
            interrupt = getattr(e.__context__, "__cause__", None)  # SystemExit <- typer's Exit(130) <- KeyboardInterrupt
            if _debugging() and isinstance(interrupt, KeyboardInterrupt):
                traceback.print_exception(interrupt)
            err_console.print("interrupted; re-run the same command to resume", highlight=False)
        raise
    except (DatakitError, OSError) as e:
        if _debugging():
            traceback.print_exc()
        message = str(e) if isinstance(e, DatakitError) else describe_os_error(e)
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        if exit_code(e) == EXIT_BACKEND:  # the engine's own account of it may be in the log
            _point_at_log(e)
        raise SystemExit(exit_code(e)) from None
    except Exception as e:  # a bug or an engine crash: the traceback, and what the engine logged before it
        traceback.print_exc()
        _point_at_log(e)
        raise SystemExit(1) from None


def _point_at_log(e: BaseException) -> None:
    """After an engine's failure or a crash: the log the engines wrote to while the stage ran, and its last
    lines, where the cause often is. (Input, disk and permission errors stay one line: it names the cause.)"""
    path = getattr(e, "log_file", None)
    if path is None:
        return
    err_console.print(f"the last lines the engines wrote to {path}:", highlight=False, soft_wrap=True)
    for line in log_tail(path, getattr(e, "log_start", 0)):
        err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


if __name__ == "__main__":
    main()
