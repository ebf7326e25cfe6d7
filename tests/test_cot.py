"""The non-reasoning branch as R1 built it: prompted chains of thought, simple queries with an empty think
block, decided per prompt before sampling and carried through sample -> filter (format) -> mix."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import write_jsonl

from datakit.backends import Backend, BackendConfig, Generation, HFOptions, PromptResult, SamplingParams
from datakit.chain import Chain, load_chain
from datakit.cot import TEMPLATES, CotConfig, is_simple_query, resolve_template, think_mode
from datakit.dataset import read_table, write_json_atomic, write_shard
from datakit.errors import DatakitError
from datakit.filter import apply_chain
from datakit.filters.text import Format
from datakit.mix import DecontaminationConfig, MixConfig, MixSource, run_mix
from datakit.reasoning import split_prompted
from datakit.sample import SampleConfig, run_sample
from datakit.schema import SAMPLE_SCHEMA

REPO = Path(__file__).resolve().parent.parent

SIMPLE = [
    "hello", "Hi there!", "thanks", "Thank you so much!!", "how are you?", "Hi! How are you doing today?", "hey :)",
    "Good morning 👋", "What’s up?", "Thanks again, bye!", "你好", "谢谢！", "你好，最近怎么样？", "こんにちは", "안녕하세요",
    "Bonjour !", "Merci beaucoup", "¡Hola!", "Danke schön", "Привет", "Ciao", "Olá, tudo bem?",
]
NOT_SIMPLE = [
    "hi, what is 2+2?", "Hello world in Rust?", "thanks to whom did Rome fall?", "Why is the sky blue?", "Hello, who are you?",
    "Thanks for the help, can you also fix the bug?", "How are you implemented?", "hello?? write a poem", "history",
    "你好，请问法国的首都是哪里？", "Bonjour, traduis ceci en anglais", "Hola, ¿qué hora es en Tokio?", "ok google",
]


@pytest.mark.parametrize("text", SIMPLE)
def test_greetings_thanks_and_small_talk_are_simple(text: str) -> None:
    assert is_simple_query(text)


@pytest.mark.parametrize("text", NOT_SIMPLE)
def test_real_requests_that_look_short_are_not_simple(text: str) -> None:
    assert not is_simple_query(text)


def test_the_think_mode_of_a_prompt() -> None:
    on = CotConfig(mode="prompted")

    def user(text: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": "Be kind."}, {"role": "user", "content": text}]

    assert think_mode(user("Write a haiku about rain."), "non_reasoning", on) == "prompted"
    assert think_mode(user("hello!"), "non_reasoning", on) == "empty"
    assert think_mode(user("hello!"), "reasoning", on) == "native"  # reasoning prompts are untouched
    assert think_mode(user("Write a haiku."), "non_reasoning", CotConfig()) == "native"  # mode off
    assert think_mode(user("hello!"), "non_reasoning", CotConfig(mode="prompted", empty_think_for_simple=False)) == "prompted"


# What chat models write when asked to think in <think> tags before answering: (output, reasoning, answer).
NORMALISED = [
    # as asked
    ("<think>\nThe user wants a synonym for happy. Joyful fits.\n</think>\n\nA synonym for happy is joyful.",
     "The user wants a synonym for happy. Joyful fits.", "A synonym for happy is joyful."),
    # a preamble before the block, a labelled answer after it
    ("Sure! <think>They ask for France's capital: Paris.</think>\n**Answer:** The capital of France is Paris.",
     "They ask for France's capital: Paris.", "The capital of France is Paris."),
    # other tag names, spaced or backslashed closing tags, any case
    ("<thinking>Translate word by word, then fix the order.</thinking>\nLe chat est noir.",
     "Translate word by word, then fix the order.", "Le chat est noir."),
    ("<Think>Short poem, four lines.</ think>\nRain on the roof,\nsoft as a sigh.", "Short poem, four lines.", "Rain on the roof,\nsoft as a sigh."),
    ("<think>Need a formal tone.<\\think>\nDear Sir or Madam,", "Need a formal tone.", "Dear Sir or Madam,"),
    # the block closed with a second opening tag
    ("<think>\nThe user greets me in German.\n<think>\nHallo! Wie kann ich helfen?", "The user greets me in German.", "Hallo! Wie kann ich helfen?"),
    # an unclosed block that an answer heading ends
    ("<think>\nWater boils at 100 °C at sea level.\n\nFinal answer: 100 °C at sea level.", "Water boils at 100 °C at sea level.", "100 °C at sea level."),
    # an unclosed block with no answer: all reasoning (the format filter rejects the empty answer)
    ("<think>\nLet me outline the essay: intro, three points, conclusion. First point", "Let me outline the essay: intro, three points, conclusion. First point", ""),
    # headings instead of tags: plain, bold, markdown, Chinese
    ("Thought: The user wants a one-line summary.\nAnswer: Photosynthesis turns light into chemical energy.",
     "The user wants a one-line summary.", "Photosynthesis turns light into chemical energy."),
    ("**Reasoning:**\nA limerick has five lines, AABBA.\n\n**Final Answer:**\nThere once was a cat from Peru…",
     "A limerick has five lines, AABBA.", "There once was a cat from Peru…"),
    ("### Reasoning\nKeep it under 50 words.\n\n### Response\nThanks for your order!", "Keep it under 50 words.", "Thanks for your order!"),
    ("思考：用户想知道长城的长度。\n答案：长城全长约21196公里。", "用户想知道长城的长度。", "长城全长约21196公里。"),
    # R1-Zero-style answer tags around the answer
    ("<think>Simple fact.</think>\n<answer>Tokyo is the capital of Japan.</answer>", "Simple fact.", "Tokyo is the capital of Japan."),
    # no chain of thought at all, or an empty block: reasoning "" (rejected when one was asked for)
    ("The capital of Italy is Rome.", "", "The capital of Italy is Rome."),
    ("<think>\n\n</think>\n\nThe capital of Italy is Rome.", "", "The capital of Italy is Rome."),
    # an answer that merely mentions answers keeps its text
    ("<think>List two tips.</think>\nAnswer questions honestly, and\nAnswer emails promptly.", "List two tips.", "Answer questions honestly, and\nAnswer emails promptly."),
]


@pytest.mark.parametrize(("output", "reasoning", "answer"), NORMALISED)
def test_prompted_outputs_are_normalised(output: str, reasoning: str, answer: str) -> None:
    assert split_prompted(output) == (reasoning, answer)


def test_templates_are_versioned_and_a_recipe_text_gets_a_hash_version() -> None:
    builtin = resolve_template(CotConfig(mode="prompted"))
    assert (builtin.name, builtin.version) == ("think-tags", "v1") and builtin.text == TEMPLATES["think-tags", "v1"]
    own = resolve_template(CotConfig(mode="prompted", text="Think in <think></think> first.\n\n{prompt}"))
    assert own.name == "recipe" and own.version.startswith("sha256-") and len(own.version) == 7 + 12
    assert resolve_template(CotConfig(mode="prompted", text="Other words: {prompt}")).version != own.version
    with pytest.raises(DatakitError, match=r"cot.text: must hold \{prompt\} exactly once"):
        resolve_template(CotConfig(mode="prompted", text="no placeholder"))
    with pytest.raises(DatakitError, match="unknown template 'think-tags' version 'v9'"):
        resolve_template(CotConfig(mode="prompted", version="v9"))


class Teacher(Backend):
    """A chat teacher that answers by rule and records what it was sent (the real engine: the slow test)."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, str]]] = []

    def generate(self, prompts, params, seeds, on_progress=None):  # type: ignore[no-untyped-def]
        results = []
        for i, chat in enumerate(prompts):
            self.sent.append(chat)
            text = chat[-1]["content"]
            if "<think>" in text and "haiku" in text:
                out = "<think>\nFive, seven, five syllables about rain.\n</think>\n\nSoft rain on the roof"
            elif "<think>" in text:
                out = "Paris is the capital of France."  # ignored the instruction: no chain of thought
            elif "2 + 2" in text:
                out = "<think>\n2 + 2 = 4\n</think>\n\n\\boxed{4}"
            else:
                out = "Hello! How can I help you today?" if "hello" in text.lower() else "Soft rain on the roof."
            results.append(PromptResult(len(text.split()), [Generation(out, "stop", len(out.split())) for _ in range(params.n)]))
            if on_progress:
                on_progress(1, results[-1].completion_tokens)
        return results


def _prompts(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": "haiku", "question": "Write a haiku about rain.", "domain": "writing", "answer": "a haiku"},
        {"id": "capital", "question": "What is the capital of France?", "domain": "qa", "answer": "Paris"},
        {"id": "hello", "question": "Hello!", "domain": "general"},
        {"id": "math", "question": "What is 2 + 2?", "domain": "math", "answer": "4"},
    ])


def _config(tmp_path: Path, **cot: object) -> SampleConfig:
    return SampleConfig(input=str(_prompts(tmp_path)), output=str(tmp_path / "samples"), sampling=SamplingParams(n=2, max_tokens=32),
                        backend=BackendConfig(name="hf"), cot=CotConfig(**cot), progress=False)  # type: ignore[arg-type]


def test_a_prompted_run_templates_only_non_reasoning_non_simple_prompts(tmp_path: Path) -> None:
    teacher = Teacher()
    run_sample(_config(tmp_path, mode="prompted"), backend=teacher)
    sent = {chat[-1]["content"].split("\n")[0]: chat[-1]["content"] for chat in teacher.sent}
    template = TEMPLATES["think-tags", "v1"]
    assert sent["Write a haiku about rain."] == template.replace("{prompt}", "Write a haiku about rain.")
    assert sent["What is the capital of France?"] == template.replace("{prompt}", "What is the capital of France?")
    assert sent["Hello!"] == "Hello!"  # a simple query goes without the template
    assert sent["What is 2 + 2?"].startswith("What is 2 + 2?\nPlease reason step by step") and "<think>" not in sent["What is 2 + 2?"]

    rows = {r["prompt_id"]: r for r in pl.read_parquet(tmp_path / "samples" / "shards" / "*.parquet").filter(pl.col("sample_index") == 0).to_dicts()}
    assert {k: r["think_mode"] for k, r in rows.items()} == {"haiku": "prompted", "capital": "prompted", "hello": "empty", "math": "native"}
    assert rows["haiku"]["messages"] == [{"role": "user", "content": "Write a haiku about rain."}]  # the stored prompt is the user's own
    assert (rows["haiku"]["reasoning"], rows["haiku"]["answer"]) == ("Five, seven, five syllables about rain.", "Soft rain on the roof")
    assert rows["haiku"]["completion"].startswith("<think>\nFive, seven")  # the raw text is kept
    assert (rows["capital"]["reasoning"], rows["capital"]["answer"]) == ("", "Paris is the capital of France.")
    assert (rows["math"]["reasoning"], rows["math"]["answer"]) == ("2 + 2 = 4", "\\boxed{4}")

    manifest = json.loads((tmp_path / "samples" / "manifest.json").read_text())
    assert manifest["cot"]["mode"] == "prompted" and (manifest["cot"]["template"], manifest["cot"]["version"]) == ("think-tags", "v1")
    assert manifest["cot"]["text"] == template and manifest["cot"]["simple_query_rules"] == "v1"
    assert manifest["counts"]["think_modes"] == {"empty": 1, "native": 1, "prompted": 2}


def test_a_recipe_template_is_recorded_and_changing_it_is_a_different_run(tmp_path: Path) -> None:
    text = "Answer after thinking inside <think></think>.\n\n{prompt}"
    run_sample(_config(tmp_path, mode="prompted", text=text), backend=Teacher())
    cot = json.loads((tmp_path / "samples" / "manifest.json").read_text())["cot"]
    assert cot["template"] == "recipe" and cot["version"] == resolve_template(CotConfig(text=text)).version and cot["text"] == text
    with pytest.raises(DatakitError, match="different settings"):
        run_sample(_config(tmp_path, mode="prompted", text=text.replace("Answer", "Reply")), backend=Teacher())


def test_cot_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, mode="prompted")
    config.prefill_think = True
    with pytest.raises(DatakitError, match="a reasoning teacher needs cot.mode off"):
        run_sample(config, backend=Teacher())
    with pytest.raises(DatakitError, match="cot.mode: must be one of off, prompted"):
        run_sample(_config(tmp_path, mode="always"), backend=Teacher())


def test_mode_off_keeps_the_run_hash_of_folders_made_before_cot_existed(tmp_path: Path) -> None:
    run_sample(_config(tmp_path), backend=Teacher())
    manifest = json.loads((tmp_path / "samples" / "manifest.json").read_text())
    assert manifest["cot"] == {"mode": "off"}
    del manifest["config"]["cot"]  # as an older datakit wrote it
    manifest["complete"] = False
    write_json_atomic(tmp_path / "samples" / "manifest.json", manifest)
    summary = run_sample(_config(tmp_path), backend=Teacher())  # resumes: same hash without the new section
    assert summary.rows == 8
    rows = pl.read_parquet(tmp_path / "samples" / "shards" / "*.parquet")
    assert set(rows["think_mode"]) == {"native"} and rows.filter(pl.col("prompt_id") == "haiku")["reasoning"].to_list() == ["", ""]


# --- filter: the format filter knows the think mode ----------------------------------------------


def _sample(prompt_id: str, completion: str, reasoning: str, answer: str, mode: str | None, domain: str = "writing", index: int = 0) -> dict:
    row = {
        "prompt_id": prompt_id, "messages": [{"role": "user", "content": f"prompt {prompt_id}"}], "domain": domain,
        "kind": "non_reasoning", "language": "en", "reference": None, "verifier": "none", "source": "unit", "metadata": "{}",
        "sample_index": index, "completion": completion, "reasoning": reasoning, "answer": answer, "finish_reason": "stop",
        "prompt_tokens": 5, "completion_tokens": 9, "generator": "teacher", "sampling": {"n": 1, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 64, "seed": 0},
    }
    return row if mode is None else {**row, "think_mode": mode}


SAMPLES = [
    _sample("prompted-ok", "Thought: plan it.\nAnswer: A poem.", "plan it.", "A poem.", "prompted"),  # headings: no </think> in the raw text
    _sample("prompted-none", "A poem.", "", "A poem.", "prompted"),
    _sample("simple", "Hello! How can I help?", "", "Hello! How can I help?", "empty", domain="general"),
    _sample("simple-reasoned", "<think>They greet me.</think>Hi!", "They greet me.", "Hi!", "empty", domain="general"),
    _sample("native-none", "A plain answer.", "", "A plain answer.", "native"),
]


def _verdicts(chain: Chain, rows: list[dict]) -> dict[str, str | None]:
    frame = pl.from_arrow(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA if "think_mode" in rows[0] else SAMPLE_SCHEMA.remove(SAMPLE_SCHEMA.get_field_index("think_mode"))))
    result = apply_chain(chain, frame)  # type: ignore[arg-type]
    return dict(zip(result["prompt_id"], result["reject_reason"], strict=True))


def test_the_non_reasoning_chains_format_filter_rejects_a_missing_prompted_chain_and_accepts_empty_ones() -> None:
    chain = load_chain(REPO / "filters" / "r1-non-reasoning.yaml")
    fmt = next(f for f in chain.filters if f.name == "format")
    verdicts = _verdicts(Chain(chain.name, [fmt], chain.text), SAMPLES)
    assert verdicts == {
        "prompted-ok": None,
        "prompted-none": "no_think_block: asked for a chain of thought (think_mode prompted), the teacher wrote none",
        "simple": None, "simple-reasoned": None, "native-none": None,
    }
    strict = _verdicts(Chain("strict", [Format(require_think=True)], ""), SAMPLES)
    assert strict["simple"] is None and strict["prompted-ok"] is None  # empty rows need no block, prompted ones the normalised one
    assert strict["native-none"] == "no_think_block: no closed <think>...</think> block"


def test_samples_made_before_think_mode_existed_filter_as_native() -> None:
    old = [{k: v for k, v in r.items() if k != "think_mode"} for r in SAMPLES]
    assert _verdicts(Chain("strict", [Format(require_think=True)], ""), old) == {
        "prompted-ok": "no_think_block: no closed <think>...</think> block", "prompted-none": "no_think_block: no closed <think>...</think> block",
        "simple": "no_think_block: no closed <think>...</think> block", "simple-reasoned": None,
        "native-none": "no_think_block: no closed <think>...</think> block",
    }
    assert set(_verdicts(Chain("lenient", [Format(require_think=False)], ""), old).values()) == {None}


# --- mix: an empty think block for simple queries, whatever the domain ---------------------------


def _folder(root: Path, name: str, rows: list[dict]) -> Path:
    schema = SAMPLE_SCHEMA if "think_mode" in rows[0] else SAMPLE_SCHEMA.remove(SAMPLE_SCHEMA.get_field_index("think_mode"))
    write_shard(root / name, 0, pa.Table.from_pylist(rows, schema=schema))
    write_json_atomic(root / name / "manifest.json", {"stage": "sample"})
    return root / name


def _assistant_turns(tmp_path: Path, sources: list[Path], empty_think_domains: list[str], out: str) -> dict[str, str]:
    config = MixConfig(
        sources=[MixSource(path=str(s)) for s in sources], output=str(tmp_path / out), quotas={"non_reasoning": {"writing": 10, "general": 10}},
        empty_think_domains=empty_think_domains, decontamination=DecontaminationConfig(benchmarks=[]), progress=False,
    )
    return {r["mix_source"] + ":" + r["prompt_id"]: r["messages"][-1]["content"] for r in read_table(run_mix(config).output).to_pylist()}


def test_the_mix_gives_empty_rows_an_empty_think_block_and_keeps_empty_think_domains(tmp_path: Path) -> None:
    rows = [
        _sample("w-prompted", "<think>Plan a poem about rain.</think>Rain falls.", "Plan a poem about rain.", "Rain falls.", "prompted"),
        _sample("g-simple", "<think>They greet me warmly.</think>Hi there!", "They greet me warmly.", "Hi there!", "empty", domain="general"),
        _sample("g-native", "<think>Consider what small talk needs.</think>Nice weather!", "Consider what small talk needs.", "Nice weather!", "native", domain="general"),
    ]
    old = [{k: v for k, v in _sample("w-old", "<think>Outline the story first.</think>Once upon a time.", "Outline the story first.", "Once upon a time.", None).items()}]
    new, before = _folder(tmp_path, "new", rows), _folder(tmp_path, "old", old)
    turns = _assistant_turns(tmp_path, [new, before], [], "mix")
    assert turns == {
        "new:w-prompted": "<think>\nPlan a poem about rain.\n</think>\n\nRain falls.",
        "new:g-simple": "<think>\n\n</think>\n\nHi there!",  # reasoned anyway: a simple query gets none
        "new:g-native": "<think>\nConsider what small talk needs.\n</think>\n\nNice weather!",
        "old:w-old": "<think>\nOutline the story first.\n</think>\n\nOnce upon a time.",  # no think_mode column: native
    }
    by_domain = _assistant_turns(tmp_path, [new, before], ["general"], "mix-by-domain")
    assert by_domain["new:g-native"] == "<think>\n\n</think>\n\nNice weather!" and by_domain["new:w-prompted"] == turns["new:w-prompted"]


@pytest.mark.slow
def test_a_prompted_run_with_the_embedded_model(tmp_path: Path) -> None:
    """SmolLM2-135M as a chat teacher asked for a chain of thought: the template reaches the engine (a longer
    prompt), the simple query goes bare, and whatever the model wrote is kept raw and split by split_prompted."""
    source = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "rain", "question": "Write a two-line poem about rain.", "domain": "writing"},
        {"id": "hi", "question": "Hi there!", "domain": "general"},
        {"id": "capital", "question": "What is the capital of France?", "domain": "qa", "answer": "Paris"},
    ])
    plain = tmp_path / "plain"
    common = {"input": str(source), "sampling": SamplingParams(n=1, max_tokens=48, temperature=0.0), "progress": False,
              "backend": BackendConfig(name="hf", hf=HFOptions(batch_prompts=3, dtype="float32"))}
    run_sample(SampleConfig(output=str(tmp_path / "prompted"), cot=CotConfig(mode="prompted"), **common))  # type: ignore[arg-type]
    run_sample(SampleConfig(output=str(plain), **common))  # type: ignore[arg-type]
    prompted = pl.read_parquet(tmp_path / "prompted" / "shards" / "*.parquet").sort("prompt_id")
    bare = pl.read_parquet(plain / "shards" / "*.parquet").sort("prompt_id")
    assert dict(zip(prompted["prompt_id"], prompted["think_mode"], strict=True)) == {"capital": "prompted", "hi": "empty", "rain": "prompted"}
    assert set(bare["think_mode"]) == {"native"}
    extra = dict(zip(prompted["prompt_id"], (prompted["prompt_tokens"] - bare["prompt_tokens"]).to_list(), strict=True))
    assert extra["hi"] == 0 and extra["rain"] > 20 and extra["capital"] > 20  # the template's tokens, and only where asked
    for row in prompted.filter(pl.col("think_mode") == "prompted").to_dicts():
        assert (row["reasoning"], row["answer"]) == split_prompted(row["completion"]) and row["completion"]
    manifest = json.loads((tmp_path / "prompted" / "manifest.json").read_text())
    assert (manifest["cot"]["template"], manifest["cot"]["version"]) == ("think-tags", "v1")
