"""The Gym commands: rl process, serve and eval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from repogym.cli.common import API_BASE_OPT, MODEL_OPT, app, console, say

if TYPE_CHECKING:
    from repogym.rl.run import RlConfig, RunReport


rl_app = typer.Typer(help="RL environments: scored groups for trainers (Atropos) or JSONL.", no_args_is_help=True)
app.add_typer(rl_app, name="rl")


def _rl_config(config: Path | None, **flags: object) -> RlConfig:
    """The run's config: the TOML file, then the flags that were given. Each command names its flags; a name that
    is no config field is an error, never silently dropped."""
    from repogym.rl.run import load_config

    return load_config(config, flags)


ENV_ARG = typer.Argument(..., help="gsm8k or swe.")
DATA_ARG = typer.Argument(None, help="gsm8k: JSONL (default: 100 bundled problems); swe: a workflow state dir.")
CONFIG_OPT = typer.Option(None, "--config", help="TOML file with any of these options (flags win).")
FORMAT_OPT = typer.Option(None, "--server-format", help="openai (default), vllm, vllm-completions or sglang.")
TOKENIZER_OPT = typer.Option(None, "--tokenizer", help="managed: the model's tokenizer.json.")
TEMPLATE_OPT = typer.Option(None, "--chat-template", help="managed: the model's chat template (jinja2 file).")
PARSER_OPT = typer.Option(None, "--parser", help="managed: tool-call parser (hermes, qwen3_coder, ...).")
GROUP_SIZE_OPT = typer.Option(None, "--group-size", help="Rollouts per group (default 4).")
MAX_TURNS_OPT = typer.Option(None, "--max-turns", help="Model calls per rollout (default 10).")
MAX_TOKENS_OPT = typer.Option(None, "--max-tokens", help="Tokens per model call (default 512).")
SLOTS_OPT = typer.Option(None, "--slots", help="Sandbox slots, i.e. concurrent rollouts (default 8).")
REWARD_OPT = typer.Option(None, "--reward", help="swe: binary (default) or partial credit.")
RL_EXECUTOR_OPT = typer.Option(None, "--executor", help="local (default) or ray: each group a Ray task.")
RL_RAY_OPT = typer.Option(None, "--ray-address", help="Ray cluster address (default: running cluster, else local).")


def _print_rl(report: RunReport) -> None:
    """The run's numbers; a run where every rollout failed for infrastructure reasons exits 1."""
    console.print(" ".join(f"{k}={v}" for k, v in report.stats.items()))
    for f in report.failures:
        console.print(f"infrastructure failure (excluded from its group): {f}")
    if report.failures and not report.stats.get("rollouts"):
        raise typer.Exit(1)


@rl_app.command("process")
def rl_process(
    env: str = ENV_ARG,
    data: Path | None = DATA_ARG,
    config: Path | None = CONFIG_OPT,
    items: int | None = typer.Option(None, "--items", help="Groups to make (default 4)."),
    group_size: int | None = GROUP_SIZE_OPT,
    out: Path = typer.Option(Path("groups.jsonl"), "--out", help="Append groups here."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    server_format: str | None = FORMAT_OPT,
    tokenizer: Path | None = TOKENIZER_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    parser: str | None = PARSER_OPT,
    max_turns: int | None = MAX_TURNS_OPT,
    max_tokens: int | None = MAX_TOKENS_OPT,
    seed: int | None = typer.Option(None, "--seed", help="Item order."),
    slots: int | None = SLOTS_OPT,
    reward: str | None = REWARD_OPT,
    executor: str | None = RL_EXECUTOR_OPT,
    ray_address: str | None = RL_RAY_OPT,
) -> None:
    """Run groups of rollouts and write the scored groups to JSONL; no trainer needed."""
    from repogym.rl.run import process

    cfg = _rl_config(
        config, env=env, data=data, items=items, group_size=group_size, model=model, api_base=api_base,
        server_format=server_format, tokenizer=tokenizer, chat_template=chat_template, parser=parser,
        max_turns=max_turns, max_tokens=max_tokens, seed=seed, slots=slots, reward=reward, executor=executor,
        ray_address=ray_address,
    )  # fmt: skip
    _print_rl(process(cfg, out))


@rl_app.command("serve")
def rl_serve(
    env: str = ENV_ARG,
    data: Path | None = DATA_ARG,
    api: str = typer.Option(..., "--api", help="The trajectory API, e.g. http://127.0.0.1:8000 (atroposlib run-api)."),
    config: Path | None = CONFIG_OPT,
    items: int | None = typer.Option(None, "--items", help="Groups to send before stopping (default 4)."),
    group_size: int | None = GROUP_SIZE_OPT,
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    server_format: str | None = FORMAT_OPT,
    tokenizer: Path | None = TOKENIZER_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    parser: str | None = PARSER_OPT,
    max_turns: int | None = MAX_TURNS_OPT,
    max_tokens: int | None = MAX_TOKENS_OPT,
    slots: int | None = SLOTS_OPT,
    reward: str | None = REWARD_OPT,
    executor: str | None = RL_EXECUTOR_OPT,
    ray_address: str | None = RL_RAY_OPT,
) -> None:
    """Register with an Atropos-compatible trajectory API and send scored groups as the trainer takes them."""
    from repogym.rl.run import serve

    cfg = _rl_config(
        config, env=env, data=data, items=items, group_size=group_size, model=model, api_base=api_base,
        server_format=server_format, tokenizer=tokenizer, chat_template=chat_template, parser=parser,
        max_turns=max_turns, max_tokens=max_tokens, slots=slots, reward=reward, executor=executor,
        ray_address=ray_address,
    )  # fmt: skip
    _print_rl(serve(cfg, api, lambda info: say(f"registered as env {info['env_id']} ({info.get('wandb_name')})")))


@rl_app.command("eval")
def rl_eval(
    env: str = ENV_ARG,
    data: Path | None = DATA_ARG,
    config: Path | None = CONFIG_OPT,
    items: int | None = typer.Option(None, "--items", help="Held-out items to evaluate (default: all)."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    server_format: str | None = FORMAT_OPT,
    tokenizer: Path | None = TOKENIZER_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    parser: str | None = PARSER_OPT,
    max_turns: int | None = MAX_TURNS_OPT,
    max_tokens: int | None = MAX_TOKENS_OPT,
    reward: str | None = REWARD_OPT,
    executor: str | None = RL_EXECUTOR_OPT,
    ray_address: str | None = RL_RAY_OPT,
) -> None:
    """Greedy evaluation (temperature 0, one rollout per item) on the held-out split."""
    from repogym.rl.run import evaluate

    cfg = _rl_config(
        config, env=env, data=data, items=items, model=model, api_base=api_base, server_format=server_format,
        tokenizer=tokenizer, chat_template=chat_template, parser=parser, max_turns=max_turns, max_tokens=max_tokens,
        reward=reward, executor=executor, ray_address=ray_address,
    )  # fmt: skip
    report = evaluate(cfg)
    stats = report.stats
    console.print(f"{report.env} held-out: {stats['rollouts']} item(s), accuracy {stats['reward_mean']}")
    _print_rl(report)
