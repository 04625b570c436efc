"""The built-in agent: an async loop over the OpenAI chat-completions tool-calling spec.

Tools run in the task's sandbox, in threads, so that many rollouts share one event loop. Limits on turns,
total tokens, wall time and cost end a rollout with a recorded reason; every rollout becomes a Trajectory, saved
even when the rollout ends in an error.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from repogym.agents.tools import ALL_TOOLS, SCHEMAS, ToolLimits, run_tool
from repogym.llm import LLMError, Model, Usage
from repogym.sandbox import Sandbox

NUDGE = "Use the tools to work on the task, and call submit() when you are done."


class AgentConfig(BaseModel):
    """Limits and tools of one rollout."""

    tools: list[str] = Field(default_factory=lambda: list(ALL_TOOLS), description="Tool names the agent gets.")
    max_turns: int = Field(40, description="Model calls per rollout.")
    max_total_tokens: int | None = Field(None, description="Prompt + completion tokens over the rollout.")
    max_seconds: float = Field(1800.0, description="Wall time of the rollout.")
    max_cost_usd: float | None = Field(None, description="Cost of the rollout (when prices are known).")
    command_timeout_s: float = Field(120.0, description="Timeout of one bash command.")
    max_output_bytes: int = Field(20_000, description="Output cap of one tool result.")
    tool_choice: str = Field("auto", description="tool_choice sent with every call.")
    stop_on_text: bool = Field(False, description="End the rollout when the model answers without a tool call.")


class Trajectory(BaseModel):
    """One rollout: everything needed to replay, grade or train on it."""

    messages: list[dict[str, Any]]
    stop_reason: str
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    turn_seconds: list[float] = Field(default_factory=list)
    error: str | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=1))
        tmp.replace(path)


class StopRollout(Exception):
    """A terminal state of the loop; carries the reason recorded in the trajectory."""

    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


async def run_agent(llm: Model, sandbox: Sandbox, system: str, user: str, cfg: AgentConfig | None = None) -> Trajectory:
    """Run one rollout to a terminal state: submitted, a limit, or a model error."""
    cfg = cfg or AgentConfig()
    tools = tuple(t for t in cfg.tools if t in SCHEMAS)
    schemas = [SCHEMAS[t] for t in tools]
    limits = ToolLimits(cfg.command_timeout_s, cfg.max_output_bytes)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    usage = Usage()
    traj = Trajectory(messages=messages, stop_reason="running")
    start = time.monotonic()
    try:
        while True:
            _check_limits(traj, cfg, usage, start)
            t0 = time.monotonic()
            try:
                out = await llm.chat(messages, tools=schemas, tool_choice=cfg.tool_choice)
            except LLMError as e:
                raise StopRollout("model_error", str(e)) from e
            traj.turns += 1
            usage.add(out.usage)
            message = {k: v for k, v in out.message.items() if k in ("role", "content", "tool_calls")}
            messages.append(message)
            calls = message.get("tool_calls") or []
            if not calls and cfg.stop_on_text:
                raise StopRollout("answered")
            if not calls:
                messages.append({"role": "user", "content": NUDGE})
            for call in calls:
                fn = call.get("function", {})
                res = await asyncio.to_thread(run_tool, sandbox, fn.get("name", ""), fn.get("arguments"), tools, limits)
                traj.tool_calls += 1
                traj.tool_errors += res.error
                messages.append({"role": "tool", "tool_call_id": call.get("id", ""), "content": res.content})
                if res.submitted:
                    raise StopRollout("submitted")
            traj.turn_seconds.append(round(time.monotonic() - t0, 4))
    except StopRollout as stop:
        traj.stop_reason, traj.error = stop.reason, stop.error
    except Exception as e:  # a sandbox that died, say: an infrastructure failure, recorded, never a crash
        traj.stop_reason, traj.error = "infrastructure_error", f"{type(e).__name__}: {e}"
    finally:
        traj.messages = messages  # pydantic copied the list at construction
        traj.usage = usage.record()
        traj.seconds = round(time.monotonic() - start, 3)
    return traj


def _check_limits(traj: Trajectory, cfg: AgentConfig, usage: Usage, start: float) -> None:
    if traj.turns >= cfg.max_turns:
        raise StopRollout("max_turns")
    if cfg.max_total_tokens and usage.prompt_tokens + usage.completion_tokens >= cfg.max_total_tokens:
        raise StopRollout("max_tokens")
    if time.monotonic() - start >= cfg.max_seconds:
        raise StopRollout("max_seconds")
    if cfg.max_cost_usd is not None and usage.cost_usd is not None and usage.cost_usd >= cfg.max_cost_usd:
        raise StopRollout("max_cost")


def final_text(traj: Trajectory) -> str:
    """The content of the last assistant message (what an answer-grading environment reads)."""
    for m in reversed(traj.messages):
        if m.get("role") == "assistant" and m.get("content"):
            return str(m["content"])
    return ""
