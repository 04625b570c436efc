"""`repogym eval`: agents on verified tasks, graded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from repogym.cli.common import (
    API_BASE_OPT,
    BACKEND_OPT,
    EXECUTOR_OPT,
    MAX_DISK_OPT,
    MAX_MEMORY_OPT,
    MAX_PROCESSES_OPT,
    MAX_RETRIES_OPT,
    RAY_ADDRESS_OPT,
    app,
    build_limits,
    build_model_config,
    console,
    load_tasks,
    pick_backend,
    pick_executor,
    repo_resolver,
)
from repogym.errors import RepogymError

if TYPE_CHECKING:
    from repogym.evaluate import EvalResult


@app.command("eval")
def eval_cmd(
    validated: Path = typer.Option(..., "--validated", help="validated_tasks.jsonl"),
    tasks: Path | None = typer.Option(None, "--tasks", help="tasks.jsonl (task descriptions, when not in V)."),
    agent: str = typer.Option("builtin", "--agent", help="The agent: builtin, codex, claude or mini-swe-agent."),
    agent_binary: str | None = typer.Option(None, "--agent-binary", help="Path of an external agent's executable."),
    model: str = typer.Option(..., "--model", help="provider/name, e.g. openai/boa."),
    api_base: str | None = API_BASE_OPT,
    task_id: list[str] | None = typer.Option(None, "--task-id", help="Only this task (repeatable)."),
    output_dir: Path = typer.Option(Path("outputs/eval"), "--output-dir", help="results.jsonl and trajectories."),
    attempts: int = typer.Option(1, "--attempts", help="Attempts per task (pass@k)."),
    no_exec: bool = typer.Option(False, "--no-exec", help="The agent may only read and edit files."),
    workers: int = typer.Option(4, "--workers", help="Concurrent attempts."),
    max_turns: int = typer.Option(40, "--max-turns", help="Model calls per attempt."),
    max_total_tokens: int | None = typer.Option(None, "--max-total-tokens", help="Token limit per attempt."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="USD limit per attempt (known prices)."),
    max_seconds: float = typer.Option(1800.0, "--max-seconds", help="Wall time per attempt."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Completion token limit per model call."),
    max_retries: int = MAX_RETRIES_OPT,
    backend: str | None = BACKEND_OPT,
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    max_processes: int = MAX_PROCESSES_OPT,
    max_memory: str = MAX_MEMORY_OPT,
    max_disk: str = MAX_DISK_OPT,
    executor: str = EXECUTOR_OPT,
    ray_address: str | None = RAY_ADDRESS_OPT,
) -> None:
    """Run an agent on validated tasks and grade it by FAIL_TO_PASS / PASS_TO_PASS; resumable."""
    from repogym.agents.loop import AgentConfig
    from repogym.evaluate import EvalConfig, run_eval
    from repogym.progress import stage

    chosen = load_tasks(validated, tasks, task_id)
    cfg = EvalConfig(
        model=build_model_config(model, api_base, max_tokens, False, max_retries=max_retries),
        agent=AgentConfig(
            max_turns=max_turns, max_total_tokens=max_total_tokens, max_cost_usd=max_cost, max_seconds=max_seconds
        ),
        attempts=attempts,
        no_exec=no_exec,
        workers=workers,
        external=_external(agent, agent_binary, model, api_base, max_seconds),
        limits=build_limits(max_processes, max_memory, max_disk),
    )
    resolve = repo_resolver(pick_backend(backend), repo)
    with stage("evaluating", len(chosen) * attempts) as advance:
        results = run_eval(
            chosen, resolve, cfg, output_dir, lambda r: advance(f"{r.task_id}#{r.attempt}: {_outcome(r)}"),
            executor=pick_executor(executor, workers, ray_address),
        )  # fmt: skip
    _print_eval(results, attempts)


def _external(agent: str, binary: str | None, model: str, api_base: str | None, max_seconds: float) -> Any:
    """The external agent's config (None for the built-in agent); a missing agent is reported before any task."""
    from repogym.agents.external import AGENTS, external_agent

    if agent == "builtin":
        return None
    if agent not in AGENTS:
        raise RepogymError(f"unknown agent {agent!r}; choose one of: builtin, {', '.join(AGENTS)}")
    return external_agent(agent, model, api_base, binary, timeout_s=max_seconds)


def _outcome(r: EvalResult) -> str:
    return "resolved" if r.resolved else r.stop_reason


def _print_eval(results: list[EvalResult], k: int) -> None:
    from rich.table import Table

    from repogym.evaluate import summarize

    table = Table("task", "attempt", "resolved", "stop", "turns", "F2P passed", "P2P failed", "seconds")
    for r in sorted(results, key=lambda r: (r.task_id, r.attempt)):
        f2p = f"{sum(v == 'passed' for v in r.fail_to_pass.values())}/{len(r.fail_to_pass)}"
        table.add_row(
            r.task_id,
            str(r.attempt),
            "yes" if r.resolved else "no",
            r.stop_reason,
            str(r.turns),
            f2p,
            str(len(r.pass_to_pass_failed)),
            f"{r.seconds:.1f}",
        )
    console.print(table)
    s = summarize(results, k)
    cost = f"${s.cost_usd:.4f}" if isinstance(s.cost_usd, float) else "unknown"
    console.print(
        f"{s.tasks} task(s), {s.attempts} attempt(s): pass@1 {s.pass_at_1:.1%}, pass@{s.k} "
        f"{s.pass_at_k:.1%}; cost {cost}; agent time {s.seconds:.0f}s; stops {s.stop_reasons}"
    )
