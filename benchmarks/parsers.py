"""Each tool-call parser on one long model output (128 KB of prose and calls in its own format): one whole-text
parse against streaming the same text in 8-character deltas (fastest of --runs, the two interleaved). Streaming
keeps its position, so its total cost is linear in the output; the target is streaming <= 5x one whole parse.
Exits 1 when a parser misses it or when streaming disagrees with the whole parse.

    python benchmarks/parsers.py [--kb 128] [--delta 8] [--max-ratio 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import print_ratios
from rich.console import Console
from rich.table import Table

from repogym.rl.parsers import NAMES, Parser, get_parser

DS = (
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁calls▁end｜>",
)


def _xml(calls: list[tuple[str, dict]]) -> str:
    return "".join(
        f"<tool_call>\n<function={n}>\n"
        + "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in a.items())
        + "</function>\n</tool_call>\n"
        for n, a in calls
    )


def _glm(calls: list[tuple[str, dict]], nl: str) -> str:
    return "".join(
        f"<tool_call>{n}{nl}"
        + "".join(f"<arg_key>{k}</arg_key>{nl}<arg_value>{v}</arg_value>{nl}" for k, v in a.items())
        + "</tool_call>"
        for n, a in calls
    )


def _kimi(calls: list[tuple[str, dict]]) -> str:
    body = "".join(
        f"<|tool_call_begin|>functions.{n}:{i}<|tool_call_argument_begin|>{json.dumps(a)}<|tool_call_end|>"
        for i, (n, a) in enumerate(calls)
    )
    return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"


def render(fmt: str, calls: list[tuple[str, dict]]) -> str:
    """Calls in the format's own syntax, as its chat template makes the model write them."""
    j = json.dumps
    if fmt in ("hermes", "qwen"):
        return "".join(f'<tool_call>\n{{"name": "{n}", "arguments": {j(a)}}}\n</tool_call>\n' for n, a in calls)
    if fmt == "longcat":
        tag = "longcat_tool_call"
        return "".join(f'<{tag}>{{"name": "{n}", "arguments": {j(a)}}}</{tag}>' for n, a in calls)
    if fmt in ("qwen3_coder", "qwen3_xml"):
        return _xml(calls)
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
        return _kimi(calls)
    if fmt in ("glm45", "glm47"):
        return _glm(calls, "\n" if fmt == "glm45" else "")
    raise ValueError(fmt)


def long_output(fmt: str, kb: int, rng: random.Random) -> str:
    """Prose and one to three calls, repeated until the text holds ``kb`` KB: a long reasoning-model turn."""
    parts: list[str] = []
    size = 0
    while size < kb * 1024:
        calls = [
            (rng.choice(["bash", "read_file"]), {"command": f"cd /repo && pytest -q -k t{rng.randint(0, 999)}"})
            for _ in range(rng.randint(1, 3))
        ]
        part = "Let me look at the failing test first. " * rng.randint(1, 6) + render(fmt, calls)
        parts.append(part)
        size += len(part.encode())
    return "".join(parts)


def streamed(parser: Parser, deltas: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The stream's content and calls, fed the deltas one by one (as a server sends them)."""
    stream = parser.stream()
    events = []
    for delta in deltas:
        events += stream.feed(delta)
    events += stream.finish()
    return "".join(e[1] for e in events if e[0] == "content"), [e[1] for e in events if e[0] == "tool_call"]


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fmt: str, args: argparse.Namespace) -> tuple[str, dict[str, float], list[str]]:
    """(row name, seconds of a whole parse and of the stream, what missed the target)."""
    parser, text = get_parser(fmt), long_output(fmt, args.kb, random.Random(0))
    deltas = [text[i : i + args.delta] for i in range(0, len(text), args.delta)]
    problems = []
    if streamed(parser, deltas) != parser.parse(text):
        problems.append(f"{fmt}: streaming disagrees with the whole parse")
    # Interleaved, fastest of each: on a shared machine both see the same load, and the ratio is the parsers'.
    parse_s, stream_s = float("inf"), float("inf")
    for _ in range(args.runs):
        parse_s = min(parse_s, seconds(lambda: parser.parse(text)))
        stream_s = min(stream_s, seconds(lambda: streamed(parser, deltas)))
    if stream_s > args.max_ratio * parse_s:
        problems.append(f"{fmt}: streaming costs {stream_s / parse_s:.1f}x a whole parse (target {args.max_ratio}x)")
    return f"{fmt} ({len(parser.parse(text)[1])} calls)", {"parse": parse_s, "stream": stream_s}, problems


# Outputs with no call to speak of, where one whole parse is a single search and the ratio says nothing: what a
# stream costs per delta is the number to watch (linear when it stays flat as the text grows).
PROSE = {
    "hermes, prose only": ("hermes", "Let me look at why the test fails, and whether x < y holds there. "),
    "llama3_json, code-like prose": ("llama3_json", "Here is the fix: def f(x) { return {a: x}; } and g() { h(); }. "),
}


def per_delta_us(fmt: str, sentence: str, kb: int, args: argparse.Namespace) -> float:
    """Microseconds per delta, fastest of ``args.runs`` streams over ``kb`` KB of ``sentence`` repeated."""
    text = (sentence * (kb * 1024 // len(sentence) + 1))[: kb * 1024]
    deltas = [text[i : i + args.delta] for i in range(0, len(text), args.delta)]
    parser = get_parser(fmt)
    best = min(seconds(lambda: streamed(parser, deltas)) for _ in range(args.runs))
    return best / len(deltas) * 1e6


def prose_rows(args: argparse.Namespace) -> None:
    """Microseconds per delta of a stream over ``args.kb`` KB of prose, and at a quarter of that size."""
    table = Table("case", f"{args.kb // 4} KB (us/delta)", f"{args.kb} KB (us/delta)", title="streams of prose")
    for case, (fmt, sentence) in PROSE.items():
        cells = [f"{per_delta_us(fmt, sentence, kb, args):.2f}" for kb in (args.kb // 4, args.kb)]
        table.add_row(case, *cells)
    Console(width=120).print(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=int, default=128)
    ap.add_argument("--delta", type=int, default=8)
    ap.add_argument("--max-ratio", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rows: dict[str, dict[str, float]] = {}
    failed = []
    for fmt in NAMES:
        name, row, problems = measure(fmt, args)
        rows[name] = row
        failed += problems
    print_ratios(f"{args.kb} KB output: whole parse vs streaming in {args.delta}-character deltas", rows, "parse")
    prose_rows(args)
    for line in failed:
        print(line, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
