"""The environment contract and the group runner.

An environment supplies its tools, its items (deterministic under a seed), the prompt for an item, how to fill
a rollout's working directory, and ``reward(item, trajectory, sandbox)``, which may run commands in the
rollout's own sandbox as a verifier would. The runner plays N rollouts of one item concurrently, each in its own
pool slot, scores them and builds a scored group. The model backend decides the mode: OpenAI (server-side tool
parsing, messages and scores only) or managed (token ids, masks, logprobs); an environment never knows which.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from repogym.agents.loop import AgentConfig, Trajectory, run_agent
from repogym.llm import Model
from repogym.rl.scored import ScoredGroup, ScoredItem, build_group
from repogym.sandbox.base import Sandbox
from repogym.sandbox.pool import SandboxPool

INFRA_STOPS = ("infrastructure_error", "model_error")


class Environment(ABC):
    name = ""
    tools: tuple[str, ...] = ()
    stop_on_text = False  # True where an answer in plain text ends the rollout (math), not a submit() call

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._order: list[dict[str, Any]] = []

    @abstractmethod
    def items(self, split: str) -> list[dict[str, Any]]:
        """The items of a split: "train" for groups, "eval" for held-out evaluation."""

    @abstractmethod
    def prompt(self, item: dict[str, Any]) -> tuple[str, str]:
        """(system, user) messages for an item."""

    def prepare(self, item: dict[str, Any], repo_dir: Path) -> None:
        """Fill a rollout's working directory (empty by default)."""
        repo_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def make_sandbox(self, repo_dir: Path) -> Sandbox:
        """The sandbox a rollout runs in, over its working directory."""

    @abstractmethod
    def reward(self, item: dict[str, Any], traj: Trajectory, sandbox: Sandbox) -> tuple[float, dict[str, Any]]:
        """The score of a finished rollout, and metadata for the group (per-test outcomes, the answer...)."""

    def next_item(self) -> dict[str, Any]:
        """Training items in a seeded random order, cycling."""
        if not self._order:
            self._order = list(self.items("train"))
            self.rng.shuffle(self._order)
        return self._order.pop()


class GroupResult(BaseModel):
    group: ScoredGroup | None
    failures: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[int] = Field(default_factory=list)


async def run_rollout(
    env: Environment,
    item: dict[str, Any],
    model: Model,
    pool: SandboxPool,
    cfg: AgentConfig,
    on_slot: Callable[[Any], None] | None = None,
) -> tuple[ScoredItem | None, dict[str, Any] | None, int]:
    """One rollout in its own slot: (scored item, or None with the infrastructure failure; turns). Whatever fails
    around the model (the working copy, the sandbox, the verifier) is a failure record, never a crashed batch."""
    try:
        slot = await pool.acquire(lambda repo: env.prepare(item, repo))
    except Exception as e:  # the item's working copy or sandbox could not be made
        return None, {"stop_reason": "prepare_error", "error": f"{type(e).__name__}: {e}"}, 0
    try:
        if on_slot:
            on_slot(slot)
        assert slot.sandbox is not None
        llm = model.rollout()
        system, user = env.prompt(item)
        agent = cfg.model_copy(update={"tools": list(env.tools), "stop_on_text": env.stop_on_text})
        traj = await run_agent(llm, slot.sandbox, system, user, agent)
        if traj.stop_reason in INFRA_STOPS:
            return None, {"stop_reason": traj.stop_reason, "error": traj.error, "slot": slot.index}, traj.turns
        try:
            score, meta = await asyncio.to_thread(env.reward, item, traj, slot.sandbox)
        except Exception as e:  # the verifier could not run: infrastructure, not a zero
            return None, {"stop_reason": "reward_error", "error": f"{type(e).__name__}: {e}", "slot": slot.index}, 0
        seq = llm.sequence
        scored = ScoredItem(
            score=score,
            messages=traj.messages,
            tokens=seq.tokens if seq else None,
            masks=seq.masks if seq else None,
            inference_logprobs=seq.logprobs if seq else None,
            meta={**meta, "stop_reason": traj.stop_reason, "turns": traj.turns,
                  "mismatches": len(seq.mismatches) if seq else 0},
        )  # fmt: skip
        return scored, None, traj.turns
    finally:
        await pool.release(slot)


async def run_group(
    env: Environment,
    item: dict[str, Any],
    group_size: int,
    model: Model,
    pool: SandboxPool,
    cfg: AgentConfig,
    normalize_std: bool = False,
    on_slot: Callable[[Any], None] | None = None,
) -> GroupResult:
    """N concurrent rollouts of one item, scored; infrastructure failures are excluded and listed."""
    outs = await asyncio.gather(*(run_rollout(env, item, model, pool, cfg, on_slot) for _ in range(group_size)))
    scored = [s for s, _, _ in outs if s is not None]
    failures = [f for _, f, _ in outs if f is not None]
    group = build_group(scored, normalize_std, meta={"item": item.get("id"), "env": env.name}) if scored else None
    return GroupResult(group=group, failures=failures, turns=[t for _, _, t in outs])
