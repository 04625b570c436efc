"""`repogym rl process | serve | eval`: groups of rollouts to JSONL, to an Atropos trainer, or an evaluation."""

from __future__ import annotations

import asyncio
import statistics
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repogym.agents.loop import AgentConfig
from repogym.errors import RepogymError
from repogym.executor import Executor, InfrastructureFailure, make_executor
from repogym.llm import LLM, Model, ModelConfig
from repogym.rl.atropos import AtroposClient, JsonlSink
from repogym.rl.envs.base import Environment, GroupResult, run_group
from repogym.rl.scored import ScoredGroup
from repogym.sandbox.limits import Limits
from repogym.sandbox.pool import SandboxPool


class RlConfig(BaseModel):
    """One run; every field can come from a TOML file (same names) or a flag. An unknown name is an error."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="gsm8k or swe.")
    data: Path | None = Field(None, description="gsm8k: a JSONL file (default: the bundled 100); swe: a state dir.")
    model: str = Field("openai/boa", description="provider/name of the served model.")
    api_base: str | None = Field(None, description="Base URL of the OpenAI-compatible or generate endpoint.")
    server_format: str = Field(
        "openai", description="openai (server-side tool parsing), vllm, vllm-completions, sglang."
    )
    tokenizer: Path | None = Field(None, description="managed: tokenizer.json of the model.")
    chat_template: Path | None = Field(None, description="managed: the model's chat template (jinja2).")
    eos_token: str = Field("<|im_end|>", description="managed: the end-of-turn token.")
    parser: str = Field("hermes", description="managed: tool-call parser name.")
    items: int | None = Field(
        None, description="Items (groups) to run; process and serve: 4 when not given; eval: every held-out item."
    )
    group_size: int = Field(4, description="Rollouts per item.")
    slots: int = Field(8, description="Sandbox slots (concurrent rollouts).")
    max_turns: int = Field(10, description="Model calls per rollout.")
    max_tokens: int = Field(512, description="Tokens per model call.")
    temperature: float = Field(1.0, description="Sampling temperature (eval uses 0).")
    seed: int = Field(0, description="Item order.")
    normalize_std: bool = Field(False, description="Divide advantages by the group's std.")
    max_batches_offpolicy: int = Field(3, description="serve: batches the env may run ahead of the trainer.")
    max_token_length: int = Field(8192, description="serve: announced to the trainer.")
    groups_in_flight: int | None = Field(None, description="Groups run at once (default: enough to fill the slots).")
    executor: str = Field("local", description="Where groups run: local (one pool here) or ray (a group per task).")
    ray_address: str | None = Field(None, description="Ray cluster address (default: running cluster, else local).")
    reward: str = Field("binary", description="swe: binary (resolved) or partial (share of F2P x share of P2P).")
    limits: Limits = Field(default_factory=Limits, description="swe: processes, memory and disk of each sandbox.")

    def item_count(self, default: int) -> int:
        return self.items if self.items is not None else default


def load_config(path: Path | None, overrides: dict[str, Any]) -> RlConfig:
    """TOML values, then the flags that were given."""
    base: dict[str, Any] = {}
    if path is not None:
        try:
            base = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise RepogymError(f"{path}: cannot read the config ({e})") from e
        base = {k.replace("-", "_"): v for k, v in base.items()}
    try:
        return RlConfig.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as e:
        where = f"{path}: " if path is not None else ""
        raise RepogymError(f"{where}bad RL config: {_problems(e)}") from e


def _problems(e: ValidationError) -> str:
    """Pydantic's errors as one line: field and message."""
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'config'}: {x['msg']}" for x in e.errors())


def make_env(cfg: RlConfig) -> Environment:
    if cfg.env == "gsm8k":
        from repogym.rl.envs.gsm8k import Gsm8kEnv

        return Gsm8kEnv(cfg.data, seed=cfg.seed)
    if cfg.env == "swe":
        from repogym.rl.envs.swe import SweEnv

        if cfg.data is None:
            raise RepogymError("the swe environment needs a workflow state dir: repogym rl process swe STATE_DIR")
        return SweEnv(cfg.data, seed=cfg.seed, reward=cfg.reward, limits=cfg.limits)
    raise RepogymError(f"unknown environment {cfg.env!r}; choose one of: gsm8k, swe")


def make_model(cfg: RlConfig, temperature: float) -> Model:
    """The run's model client: one shared OpenAI-compatible client, or a managed one whose ``rollout()`` gives
    each rollout its own token sequence."""
    if cfg.server_format == "openai":
        return LLM(
            ModelConfig(model=cfg.model, api_base=cfg.api_base, max_tokens=cfg.max_tokens, temperature=temperature)
        )
    from repogym.rl.parsers import get_parser
    from repogym.rl.servers import GenerateClient
    from repogym.rl.tokens import ChatTokenizer, ManagedLLM

    if cfg.tokenizer is None or cfg.chat_template is None or cfg.api_base is None:
        raise RepogymError("managed mode needs --tokenizer tokenizer.json, --chat-template FILE and --api-base URL")
    tok = ChatTokenizer.from_files(str(cfg.tokenizer), cfg.chat_template.read_text(), {"eos_token": cfg.eos_token})
    client = GenerateClient(cfg.api_base, cfg.server_format, model=cfg.model.split("/", 1)[-1])
    return ManagedLLM(client, tok, get_parser(cfg.parser), cfg.max_tokens, temperature)


async def groups(
    cfg: RlConfig, env: Environment, items: list[dict[str, Any]], temperature: float, group_size: int,
    on_group: Callable[[GroupResult], Any], on_slot: Callable[[Any], None] | None = None,
) -> float:  # fmt: skip
    """Run one group per item through one sandbox pool, groups overlapping so the pool stays full: at most
    ``cfg.groups_in_flight`` at once (default: enough to fill every slot, plus one). ``on_group`` gets each
    result as it finishes and may wait (a trainer's back-pressure); returns the slots busy on average."""
    model = make_model(cfg, temperature)
    pool = SandboxPool(env.make_sandbox, size=cfg.slots)
    agent = AgentConfig(max_turns=cfg.max_turns, command_timeout_s=60)
    gate = asyncio.Semaphore(cfg.groups_in_flight or -(-cfg.slots // group_size) + 1)
    delivering = asyncio.Lock()  # results are handed on one at a time, in completion order

    async def one(item: dict[str, Any]) -> None:
        async with gate:
            result = await run_group(env, item, group_size, model, pool, agent, cfg.normalize_std, on_slot)
            async with delivering:
                out = on_group(result)
                if asyncio.iscoroutine(out):
                    await out

    try:
        await asyncio.gather(*(one(item) for item in items))
        return pool.busy_mean()
    finally:
        pool.close()
        await model.close()


def summary(results: list[GroupResult]) -> dict[str, Any]:
    scores = [s for r in results if r.group for s in r.group.scores]
    lengths = [len(t) for r in results if r.group and r.group.tokens for t in r.group.tokens]
    turns = [t for r in results for t in r.turns]
    return {
        "groups": sum(1 for r in results if r.group),
        "rollouts": len(scores),
        "infrastructure_failures": sum(len(r.failures) for r in results),
        "reward_mean": round(statistics.fmean(scores), 4) if scores else None,
        "turns_mean": round(statistics.fmean(turns), 2) if turns else None,
        "tokens_mean": round(statistics.fmean(lengths), 1) if lengths else None,
        "mode": next((r.group.mode for r in results if r.group), None),
    }


class RunReport(BaseModel):
    """What a run did: the summary numbers, and each rollout left out for an infrastructure reason."""

    env: str
    stats: dict[str, Any]
    failures: list[dict[str, Any]] = Field(default_factory=list)


async def _collect(
    cfg: RlConfig, env: Environment, items: list[dict[str, Any]], temperature: float, group_size: int,
    send: Callable[[ScoredGroup], Any] | None,
) -> tuple[list[GroupResult], float]:  # fmt: skip
    """Every group's result and the slots busy on average; each scored group also goes to ``send`` (run in a
    thread: it may block)."""
    results: list[GroupResult] = []

    async def on_group(r: GroupResult) -> None:
        results.append(r)
        if send is not None and r.group is not None:
            await asyncio.to_thread(send, r.group)

    busy = await groups(cfg, env, items, temperature, group_size, on_group)
    return results, busy


def _collect_on(
    executor: Executor[dict[str, Any], GroupResult], cfg: RlConfig, items: list[dict[str, Any]], temperature: float,
    group_size: int, send: Callable[[ScoredGroup], Any] | None,
) -> tuple[list[GroupResult], float]:  # fmt: skip
    """Each group as one executor unit (a Ray task with a pool of its own on its node); ``send`` runs here, as
    each group comes back, so a trainer's back-pressure holds the driver."""
    results: list[GroupResult] = []

    def on_done(item: dict[str, Any], res: GroupResult | InfrastructureFailure) -> None:
        if isinstance(res, InfrastructureFailure):
            res = GroupResult(group=None, failures=[{"stop_reason": "infrastructure_error", "error": str(res)}])
        results.append(res)
        if send is not None and res.group is not None:
            send(res.group)

    executor.run(GroupRunner(cfg, temperature, group_size), items, on_done)
    return results, float("nan")


class GroupRunner:
    """One group of one item, start to score, with its own model client and sandbox pool; picklable."""

    def __init__(self, cfg: RlConfig, temperature: float, group_size: int) -> None:
        self.cfg, self.temperature, self.group_size = cfg, temperature, group_size

    def __call__(self, item: dict[str, Any]) -> GroupResult:
        return asyncio.run(self._run(item))

    async def _run(self, item: dict[str, Any]) -> GroupResult:
        env = make_env(self.cfg)
        model = make_model(self.cfg, self.temperature)
        pool = SandboxPool(env.make_sandbox, size=self.group_size)
        agent = AgentConfig(max_turns=self.cfg.max_turns, command_timeout_s=60)
        try:
            return await run_group(env, item, self.group_size, model, pool, agent, self.cfg.normalize_std)
        finally:
            pool.close()
            await model.close()


def _run_groups(
    cfg: RlConfig, env: Environment, items: list[dict[str, Any]], temperature: float, group_size: int,
    send: Callable[[ScoredGroup], Any] | None,
) -> tuple[list[GroupResult], float]:  # fmt: skip
    """The groups of a run, on this machine's one pool or as executor units (``cfg.executor``)."""
    if cfg.executor == "local":
        return asyncio.run(_collect(cfg, env, items, temperature, group_size, send))
    executor = make_executor(cfg.executor, max(1, cfg.slots // group_size), cfg.ray_address)
    return _collect_on(executor, cfg, items, temperature, group_size, send)


def _report(env: Environment, run: tuple[list[GroupResult], float], **extra: Any) -> RunReport:
    results, busy = run
    failures = [f for r in results for f in r.failures]
    stats = summary(results) | {"slots_busy_mean": None if busy != busy else round(busy, 2)} | extra
    return RunReport(env=env.name, stats=stats, failures=failures)


def process(cfg: RlConfig, out: Path) -> RunReport:
    """`rl process`: groups of rollouts, each scored group appended to ``out`` (JSONL); no trainer needed."""
    env = make_env(cfg)
    items = [env.next_item() for _ in range(cfg.item_count(4))]
    run = _run_groups(cfg, env, items, cfg.temperature, cfg.group_size, JsonlSink(out).send)
    return _report(env, run, out=str(out))


def serve(cfg: RlConfig, api: str, on_registered: Callable[[dict[str, Any]], None]) -> RunReport:
    """`rl serve`: register with the trajectory API at ``api`` and send each group when the trainer has room."""
    if cfg.server_format == "openai":
        raise RepogymError(
            "a trainer needs token ids: serve in managed mode (--server-format vllm|vllm-completions|sglang)"
        )
    env = make_env(cfg)
    client = AtroposClient(api)
    on_registered(client.register_env(f"repogym-{cfg.env}", cfg.max_token_length, cfg.group_size))

    def send(group: ScoredGroup) -> None:
        client.wait_for_room(cfg.group_size, cfg.max_batches_offpolicy)
        client.send(group)

    items = [env.next_item() for _ in range(cfg.item_count(4))]
    return _report(env, _run_groups(cfg, env, items, cfg.temperature, cfg.group_size, send), api=api)


def evaluate(cfg: RlConfig) -> RunReport:
    """`rl eval`: one greedy rollout (temperature 0) per held-out item, ``cfg.items`` of them (default: all)."""
    env = make_env(cfg)
    held_out = env.items("eval")[: cfg.items]
    return _report(env, _run_groups(cfg, env, held_out, 0.0, 1, None))
