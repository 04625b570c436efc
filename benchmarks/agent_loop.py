"""The built-in agent loop's own overhead per turn, at 1 and 32 concurrent rollouts, against a scripted server
that answers at once; the baseline is the raw client call (the same request through the openai SDK). Two kinds of
turn: a file read (no sandbox command), and a shell command in a bwrap session (one sandbox per rollout).

    python benchmarks/agent_loop.py [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from repogym.agents.loop import AgentConfig, run_agent
from repogym.agents.tools import SCHEMAS
from repogym.llm import LLM, ModelConfig
from repogym.sandbox.base import Sandbox
from repogym.sandbox.bwrap import BwrapSandbox
from repogym.sandbox.process import ProcessSandbox
from repogym.scripted_server import ScriptedServer, ToolCall


def script(turns: int):
    """Each rollout: `turns - 1` cheap tool calls (read_file, or bash `true` when the rollout asks for a shell),
    then submit; keyed by the rollout's first message."""
    counts: dict[str, int] = {}

    def reply(req: dict) -> ToolCall:
        if len(req["messages"]) < 2:
            return ToolCall("submit")  # a raw call
        key = req["messages"][1]["content"]
        counts[key] = counts.get(key, 0) + 1
        if counts[key] >= turns:
            return ToolCall("submit")
        shell = "shell" in key
        return ToolCall("bash", {"command": "true"}) if shell else ToolCall("read_file", {"path": "a.txt"})

    return reply


async def raw_calls(llm: LLM, n: int, concurrency: int) -> float:
    msgs = [{"role": "user", "content": "x"}]

    async def worker(k: int) -> None:
        for _ in range(n):
            await llm.client.chat.completions.create(model="boa", messages=msgs, tools=[SCHEMAS["submit"]])

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return (time.perf_counter() - start) / (n * concurrency)


async def loop_turns(llm: LLM, root: Path, turns: int, concurrency: int, shell: bool = False) -> float:
    cfg = AgentConfig(max_turns=turns + 1, tools=["bash" if shell else "read_file", "submit"])

    def sandbox() -> Sandbox:
        return BwrapSandbox(root, session=True) if shell else ProcessSandbox(root)

    async def rollout(k: int) -> None:
        with sandbox() as sb:
            kind = "shell" if shell else "file"
            traj = await run_agent(llm, sb, "system", f"rollout {k} {kind} {time.monotonic()}", cfg)
            assert traj.stop_reason == "submitted", traj.stop_reason

    start = time.perf_counter()
    await asyncio.gather(*(rollout(k) for k in range(concurrency)))
    return (time.perf_counter() - start) / (turns * concurrency)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    (root / "a.txt").write_text("hello\n")
    table = Table(
        "concurrent rollouts", "turn", "raw call (ms)", "agent turn (ms)", "turn / raw", "overhead (ms)",
        title="agent loop overhead",
    )  # fmt: skip
    with ScriptedServer(script(args.turns)) as server:
        llm = LLM(ModelConfig(model="openai/boa", api_base=server.url))
        for conc in (1, 32):
            raw = await raw_calls(llm, args.turns, conc)
            for shell in (False, True):
                turn = await loop_turns(llm, root, args.turns, conc, shell)
                kind = "bash in a bwrap session" if shell else "read_file"
                table.add_row(
                    str(conc), kind, f"{raw * 1000:.2f}", f"{turn * 1000:.2f}", f"{turn / raw:.2f}x",
                    f"{(turn - raw) * 1000:.2f}",
                )  # fmt: skip
        await llm.close()
    Console(width=120).print(table)
    print("per-turn time is wall time divided by all turns of all rollouts (throughput view)")


if __name__ == "__main__":
    asyncio.run(main())
