"""Each tool-call parser's throughput (MB/s) on a corpus of generated model outputs in its own format, whole-text
parse and streaming (8-character deltas), side by side.

    python benchmarks/parsers.py [--outputs N]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from rich.console import Console
from rich.table import Table

from repogym.rl.parsers import NAMES, get_parser

DS = (
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁calls▁end｜>",
)


def render(fmt: str, calls: list[tuple[str, dict]]) -> str:
    """One model output with prose and calls, in the format's own syntax."""
    j = json.dumps
    if fmt in ("hermes", "qwen"):
        return "".join(f'<tool_call>\n{{"name": "{n}", "arguments": {j(a)}}}\n</tool_call>\n' for n, a in calls)
    if fmt == "longcat":
        return "".join(
            f'<longcat_tool_call>{{"name": "{n}", "arguments": {j(a)}}}</longcat_tool_call>' for n, a in calls
        )
    if fmt in ("qwen3_coder", "qwen3_xml"):
        return "".join(
            f"<tool_call>\n<function={n}>\n"
            + "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in a.items())
            + "</function>\n</tool_call>\n"
            for n, a in calls
        )
    if fmt in ("llama3_json", "llama4_json"):
        return "; ".join(f'{{"name": "{n}", "parameters": {j(a)}}}' for n, a in calls)
    if fmt == "mistral":
        return "[TOOL_CALLS] " + j([{"name": n, "arguments": a} for n, a in calls])
    if fmt == "deepseek_v3":
        body = "".join(f"{DS[1]}function{DS[2]}{n}\n```json\n{j(a, indent=1)}\n```{DS[3]}" for n, a in calls)
        return DS[0] + body + DS[4]
    if fmt == "deepseek_v31":
        return DS[0] + "".join(f"{DS[1]}{n}{DS[2]}{j(a)}{DS[3]}" for n, a in calls) + DS[4]
    if fmt == "kimi_k2":
        body = "".join(
            f"<|tool_call_begin|>functions.{n}:{i}<|tool_call_argument_begin|>{j(a)}<|tool_call_end|>"
            for i, (n, a) in enumerate(calls)
        )
        return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"
    if fmt in ("glm45", "glm47"):
        nl = "\n" if fmt == "glm45" else ""
        return "".join(
            f"<tool_call>{n}{nl}"
            + "".join(f"<arg_key>{k}</arg_key>{nl}<arg_value>{v}</arg_value>{nl}" for k, v in a.items())
            + "</tool_call>"
            for n, a in calls
        )
    raise ValueError(fmt)


def corpus(fmt: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        calls = [
            (
                rng.choice(["bash", "read_file", "write_file"]),
                {"command": f"cd /repo && pytest -q -k t{rng.randint(0, 999)}"},
            )
            for _ in range(rng.randint(1, 3))
        ]
        prose = "Let me look at the failing test first. " * rng.randint(1, 6)
        out.append(prose + render(fmt, calls))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=2000)
    args = parser.parse_args()
    table = Table("parser", "MB", "parse MB/s", "stream MB/s", "stream/parse", title="tool-call parser throughput")
    for fmt in NAMES:
        texts = corpus(fmt, args.outputs, random.Random(0))
        size = sum(len(t.encode()) for t in texts) / 1e6
        p = get_parser(fmt)
        start = time.perf_counter()
        calls = sum(len(p.parse(t)[1]) for t in texts)
        parse_s = time.perf_counter() - start
        assert calls >= args.outputs, f"{fmt}: the corpus must parse ({calls} calls)"
        start = time.perf_counter()
        for t in texts[: args.outputs // 10]:
            s = p.stream()
            for i in range(0, len(t), 8):
                s.feed(t[i : i + 8])
            s.finish()
        stream_s = (time.perf_counter() - start) * 10
        table.add_row(
            fmt, f"{size:.2f}", f"{size / parse_s:.1f}", f"{size / stream_s:.2f}", f"{parse_s / stream_s:.3f}x"
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
