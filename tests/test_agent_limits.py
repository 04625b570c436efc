"""The agent's limits end a rollout with their own reason: the real loop, a real bwrap sandbox, and the shipped
scripted server over HTTP playing a model that never submits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from repogym.agents.loop import AgentConfig, Trajectory, run_agent
from repogym.llm import LLM, ModelConfig
from repogym.sandbox import open_sandbox
from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import ScriptedServer, ToolCall

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is missing (apt-get install bubblewrap)")


def rollout(tmp_path: Path, cfg: AgentConfig, model: str = "openai/boa", command: str = "echo working") -> tuple:
    """One rollout against a model that runs ``command`` forever; (trajectory, requests the server got)."""
    with ScriptedServer(lambda _req: ToolCall("bash", {"command": command})) as server:

        async def go() -> Trajectory:
            llm = LLM(ModelConfig(model=model, api_base=server.url, max_retries=0))
            try:
                with open_sandbox("bwrap", tmp_path) as sb:
                    return await run_agent(llm, sb, "You are an agent.", "Keep working.", cfg)
            finally:
                await llm.close()

        return asyncio.run(go()), server.requests


def test_max_total_tokens_stops_before_the_call_that_would_pass_it(tmp_path: Path) -> None:
    traj, requests = rollout(tmp_path, AgentConfig(max_total_tokens=600))
    used = traj.usage["prompt_tokens"] + traj.usage["completion_tokens"]
    assert traj.stop_reason == "max_tokens" and traj.error is None
    assert 1 < traj.turns < 40 and len(requests) == traj.turns and used >= 600
    assert traj.messages[-1]["role"] == "tool" and "working" in traj.messages[-1]["content"], "the last tool ran"


def test_max_cost_stops_once_a_priced_model_has_spent_it(tmp_path: Path) -> None:
    traj, requests = rollout(tmp_path, AgentConfig(max_cost_usd=0.002), model="openai/gpt-4o")
    assert traj.stop_reason == "max_cost" and 1 < traj.turns < 40 and len(requests) == traj.turns
    assert traj.usage["cost_usd"] >= 0.002


def test_max_cost_never_stops_a_model_of_unknown_price(tmp_path: Path) -> None:
    """An unknown price is "unknown", never $0 and never over the limit: the other limits still apply."""
    traj, _ = rollout(tmp_path, AgentConfig(max_cost_usd=1e-9, max_turns=3))
    assert traj.stop_reason == "max_turns" and traj.turns == 3 and traj.usage["cost_usd"] == "unknown"


def test_max_seconds_stops_after_the_turn_that_passed_it(tmp_path: Path) -> None:
    traj, requests = rollout(tmp_path, AgentConfig(max_seconds=0.5), command="sleep 1 && echo slept")
    assert traj.stop_reason == "max_seconds" and traj.turns == 1 and len(requests) == 1
    assert "slept" in traj.messages[-1]["content"], "the turn in progress finished; no new turn began"
