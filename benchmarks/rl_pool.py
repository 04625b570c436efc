"""How full `rl process` keeps its sandbox pool: groups one after another (the old runner) vs overlapping groups.

gsm8k, 8 slots, groups of 4, against a scripted model that takes ``--latency`` seconds per answer and makes the
agent run two shell commands before answering. The runner reports the slots busy on average; the ratio is
against one group in flight.

    python benchmarks/rl_pool.py [--items N] [--latency S]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from repogym.rl.run import RlConfig, _collect, make_env
from repogym.scripted_server import Hang, ScriptedServer, ToolCall


def agent(latency: float) -> Any:
    """Two shell commands, then a boxed answer; every reply after ``latency`` seconds."""

    def reply(req: dict) -> Hang:
        turn = sum(m["role"] == "assistant" for m in req["messages"])
        answer = ToolCall("bash", {"command": "python3 -c 'print(6*7)'"}) if turn < 2 else "\\boxed{42}"
        return Hang(latency, answer)

    return reply


def run(cfg: RlConfig) -> tuple[float, float]:
    """(slots busy on average, seconds) of one run of ``cfg.items`` groups."""
    env = make_env(cfg)
    items = [env.next_item() for _ in range(cfg.item_count(4))]
    start = time.perf_counter()
    _, busy = asyncio.run(_collect(cfg, env, items, 1.0, cfg.group_size, None))
    return busy, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args()
    table = Table("groups in flight", "slots busy (of 8)", "seconds", "throughput vs 1", title="rl process pool use")
    with ScriptedServer(agent(args.latency)) as server:
        base = RlConfig(env="gsm8k", api_base=server.url, items=args.items, group_size=4, slots=8, max_turns=4)
        rows = {"1 (one group at a time)": run(base.model_copy(update={"groups_in_flight": 1}))}
        rows["default (fill the slots + 1)"] = run(base)
    first = next(iter(rows.values()))[1]
    for name, (busy, secs) in rows.items():
        table.add_row(name, f"{busy:.2f}", f"{secs:.1f}", f"{first / secs:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
