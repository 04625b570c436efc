"""GSM8k as a tool-using environment: the model may compute with `python3 -c` through bash, and answers with
the last \\boxed{...} of its final message (any <think> block removed), judged by math-verify."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from repogym.agents.loop import Trajectory, final_text
from repogym.errors import RepogymError
from repogym.rl.envs.base import Environment
from repogym.sandbox import default_backend, open_sandbox
from repogym.sandbox.base import Sandbox

SYSTEM = (
    "Solve the math word problem. You may run Python with the bash tool, e.g. python3 -c 'print(6 * 7)'. "
    "When you are sure, answer in plain text and put the final number in \\boxed{}."
)


def bundled_data() -> Path:
    """100 problems of the GSM8K test split (MIT licence), shipped with repogym."""
    return Path(str(resources.files("repogym.rl.envs") / "data" / "gsm8k_test_100.jsonl"))


def extract_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (nested braces allowed), after dropping <think>...</think>."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    text = re.sub(r"<think>.*", "", text, flags=re.S)  # an unclosed think block hides everything after it
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def is_correct(answer: str, gold: str) -> bool:
    from math_verify import parse, verify

    # math-verify's own timeouts use SIGALRM, which works only in the main thread; rewards run in worker threads.
    gold_expr = parse(f"${gold}$", parsing_timeout=None)
    pred_expr = parse(f"$\\boxed{{{answer}}}$", parsing_timeout=None)
    return bool(verify(gold_expr, pred_expr, timeout_seconds=None))


class Gsm8kEnv(Environment):
    name = "gsm8k"
    tools = ("bash",)
    stop_on_text = True

    def __init__(self, data: Path | None = None, seed: int = 0, backend: str | None = None) -> None:
        super().__init__(seed)
        self.data = data or bundled_data()
        if not self.data.is_file():
            raise RepogymError(f"{self.data}: no such GSM8K JSONL file")
        self.backend = backend or default_backend()
        self._items = self._load()

    def _load(self) -> list[dict[str, Any]]:
        items = []
        for no, line in enumerate(self.data.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                gold = row["answer"].split("####")[-1].strip().replace(",", "")
            except (json.JSONDecodeError, KeyError, AttributeError) as e:
                raise RepogymError(f"{self.data}:{no}: not a GSM8K record with question and answer ({e})") from e
            items.append({"id": f"gsm8k/{no}", "question": row["question"], "gold": gold})
        return items

    def items(self, split: str) -> list[dict[str, Any]]:
        """Every fifth problem is held out for evaluation."""
        return [it for k, it in enumerate(self._items) if (k % 5 == 4) == (split == "eval")]

    def prompt(self, item: dict[str, Any]) -> tuple[str, str]:
        return SYSTEM, item["question"]

    def make_sandbox(self, repo_dir: Path) -> Sandbox:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_sandbox(self.backend, repo_dir)

    def reward(self, item: dict[str, Any], traj: Trajectory, sandbox: Sandbox) -> tuple[float, dict[str, Any]]:
        answer = extract_boxed(final_text(traj))
        ok = answer is not None and is_correct(answer, item["gold"])
        return (1.0 if ok else 0.0), {"answer": answer, "gold": item["gold"]}
