"""Run an agent on validated tasks and grade it the way the checks do; summaries.

Each attempt gets a sealed working copy (one commit holding the task state, no history) in its own sandbox.
After the agent stops, `grading` takes its diff, leaves out test files and test infrastructure, and runs the
hidden tests on a fresh copy: an attempt is resolved when every FAIL_TO_PASS test passes and no PASS_TO_PASS
test fails or goes missing.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from repogym.agents.external import ExternalAgentConfig, external_trajectory
from repogym.agents.loop import AgentConfig, run_agent
from repogym.agents.tools import ALL_TOOLS, FILE_TOOLS
from repogym.check import check_task
from repogym.environment import EnvSpec, open_env_sandbox
from repogym.errors import RepogymError
from repogym.executor import Executor, InfrastructureFailure
from repogym.grading import grade_solution
from repogym.llm import LLM, ModelConfig
from repogym.records import Record, ValidatedRecord, append_record, load_records
from repogym.repo import GitError, RepoSource, sealed_copy
from repogym.sandbox.limits import Limits

SYSTEM = (
    "You are an expert software engineer. You work in a repository checked out at /repo, with tools to read, "
    "edit and (when available) run commands. Make the smallest change to the source code that fulfils the "
    "task, check your work, and call submit() when you are done. Do not edit existing tests."
)


class EvalConfig(BaseModel):
    model: ModelConfig
    agent: AgentConfig = Field(default_factory=AgentConfig)
    external: ExternalAgentConfig | None = Field(None, description="An external agent (codex) instead of builtin.")
    attempts: int = Field(1, description="Attempts per task (pass@k).")
    no_exec: bool = Field(False, description="Only read and edit files: no shell.")
    workers: int = Field(4, description="Concurrent attempts.")
    suite_timeout_s: float = Field(900.0, description="Timeout of the grading suite run.")
    limits: Limits = Field(default_factory=Limits, description="Processes, memory and disk of each sandbox.")
    session: bool = Field(True, description="One long-lived sandbox per attempt serves every tool command.")


class EvalResult(Record):
    task_id: str
    attempt: int
    resolved: bool
    stop_reason: str
    patch: str = ""
    fail_to_pass: dict[str, str] = Field(default_factory=dict)
    pass_to_pass_failed: list[str] = Field(default_factory=list)
    turns: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    trajectory: str = ""
    error: str | None = None
    dropped: list[str] = Field(default_factory=list, description="Changed files left out of the grade, and why.")


def prompt(description: str, spec: EnvSpec, no_exec: bool) -> str:
    how = (
        "You can read and edit files only; you cannot run commands."
        if no_exec
        else f"Run the tests with: {spec.run_command}"
    )
    return f"<task>\n{description.strip()}\n</task>\n\nThe repository is at /repo (your working directory). {how}"


async def attempt_task(
    rec: ValidatedRecord, description: str, src: RepoSource, spec: EnvSpec, cfg: EvalConfig, n: int, out_dir: Path
) -> EvalResult:
    """One attempt, start to grade; any failure becomes a result with the reason, never an exception."""
    root = Path(tempfile.mkdtemp(prefix="repogym-eval-"))
    try:
        wc = await asyncio.to_thread(sealed_copy, src, rec.src_diff, root / src.name.replace("#", "__"))
        return await _attempt_in(wc, rec, description, src, spec, cfg, n, out_dir)
    except GitError as e:
        return EvalResult(task_id=rec.task_id, attempt=n, resolved=False, stop_reason="bad_task", error=str(e))
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)


async def _attempt_in(
    wc: Path, rec: ValidatedRecord, description: str, src: RepoSource, spec: EnvSpec, cfg: EvalConfig, n: int,
    out_dir: Path,
) -> EvalResult:  # fmt: skip
    traj_path = out_dir / "trajectories" / f"{rec.task_id.replace('/', '__')}__{n}.json"
    if cfg.external is not None:
        text = f"{SYSTEM}\n\n{prompt(description, spec, False)}".replace("/repo", str(wc))
        traj = await asyncio.to_thread(external_trajectory, cfg.external, text, wc, traj_path.with_suffix(".log.jsonl"))
    else:
        agent_cfg = cfg.agent.model_copy(update={"tools": list(FILE_TOOLS if cfg.no_exec else ALL_TOOLS)})
        llm = LLM(cfg.model)
        try:
            with open_env_sandbox(spec, wc, cfg.limits, session=cfg.session) as sb:
                traj = await run_agent(llm, sb, SYSTEM, prompt(description, spec, cfg.no_exec), agent_cfg)
        finally:
            await llm.close()
    traj.save(traj_path)
    result = EvalResult(
        task_id=rec.task_id, attempt=n, resolved=False, stop_reason=traj.stop_reason, turns=traj.turns,
        usage=traj.usage, seconds=traj.seconds, trajectory=str(traj_path), error=traj.error,
    )  # fmt: skip
    if traj.stop_reason == "infrastructure_error":
        return result
    graded = await asyncio.to_thread(grade_solution, src, spec, rec, wc, cfg.suite_timeout_s)
    result.patch, result.dropped, result.resolved = graded.patch, graded.dropped, graded.resolved
    result.fail_to_pass, result.pass_to_pass_failed = graded.fail_to_pass, graded.pass_to_pass_failed
    result.error = graded.error or result.error
    return result


class Unit(NamedTuple):
    """One attempt to run: a task, its description and the attempt number."""

    rec: ValidatedRecord
    description: str
    n: int


class AttemptRunner:
    """Resolve, complete the test lists, run and grade one attempt; picklable, so a Ray worker can run it.

    A task whose repository or environment cannot be resolved is a failed result, never a crashed batch.
    """

    def __init__(self, resolve: Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]], cfg: EvalConfig,
                 out_dir: Path) -> None:  # fmt: skip
        self.resolve, self.cfg, self.out_dir = resolve, cfg, out_dir

    def __call__(self, unit: Unit) -> EvalResult:
        return asyncio.run(self.attempt(unit))

    async def attempt(self, unit: Unit) -> EvalResult:
        try:
            src, spec = await asyncio.to_thread(self.resolve, unit.rec)
            rec = await asyncio.to_thread(with_test_lists, unit.rec, src, spec, self.cfg.suite_timeout_s)
        except RepogymError as e:
            return EvalResult(task_id=unit.rec.task_id, attempt=unit.n, resolved=False, stop_reason="bad_task",
                              error=str(e))  # fmt: skip
        return await attempt_task(rec, unit.description, src, spec, self.cfg, unit.n, self.out_dir)


async def evaluate(runner: AttemptRunner, units: list[Unit], on_result: Callable[[EvalResult], None]) -> None:
    """Every unit on this machine's one event loop, at most ``cfg.workers`` at once; ``on_result`` gets each."""
    gate = asyncio.Semaphore(runner.cfg.workers)

    async def one(unit: Unit) -> None:
        async with gate:
            on_result(await runner.attempt(unit))

    await asyncio.gather(*(one(u) for u in units))


def run_eval(
    tasks: list[tuple[ValidatedRecord, str]],
    resolve: Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]],
    cfg: EvalConfig,
    out_dir: Path,
    on_result: Callable[[EvalResult], None],
    executor: Executor[Unit, EvalResult] | None = None,
) -> list[EvalResult]:
    """Resume from ``out_dir/results.jsonl``: run the attempts it lacks (here, or as the executor's units),
    append each result as it comes, and return every result of the chosen tasks. Bad lines are reported."""
    path = out_dir / "results.jsonl"
    old, bad = load_records(path, EvalResult) if path.exists() else ([], [])
    if bad:
        raise RepogymError(f"{bad[0]}; fix or remove that line of the results, then run again")
    ids = {r.task_id for r, _ in tasks}
    results = [r for r in old if r.task_id in ids]
    done = {(r.task_id, r.attempt) for r in results}
    units = [Unit(r, d, n) for r, d in tasks for n in range(cfg.attempts) if (r.task_id, n) not in done]

    def record(res: EvalResult) -> None:
        append_record(path, res)
        results.append(res)
        on_result(res)

    runner = AttemptRunner(resolve, cfg, out_dir)
    if executor is None:
        asyncio.run(evaluate(runner, units, record))
    else:
        executor.run(runner, units, lambda u, res: record(_as_result(u, res)))
    return results


def _as_result(unit: Unit, res: EvalResult | InfrastructureFailure) -> EvalResult:
    if isinstance(res, EvalResult):
        return res
    return EvalResult(task_id=unit.rec.task_id, attempt=unit.n, resolved=False, stop_reason="infrastructure_error",
                      error=str(res))  # fmt: skip


def with_test_lists(rec: ValidatedRecord, src: RepoSource, spec: EnvSpec, timeout_s: float) -> ValidatedRecord:
    """Records from tools that do not store FAIL_TO_PASS/PASS_TO_PASS get them from the checks."""
    if rec.FAIL_TO_PASS:
        return rec
    checked = check_task(rec, src, spec, timeout_s)
    if not checked.ok:
        raise RepogymError(f"{rec.task_id}: the task does not pass its checks ({checked.reason}); cannot grade it")
    return rec.model_copy(update={"FAIL_TO_PASS": checked.FAIL_TO_PASS, "PASS_TO_PASS": checked.PASS_TO_PASS})


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al., 2021) for n attempts with c successes."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


class EvalSummary(BaseModel):
    tasks: int
    attempts: int
    pass_at_1: float
    pass_at_k: float
    k: int
    cost_usd: float | str
    seconds: float
    stop_reasons: dict[str, int]


def summarize(results: list[EvalResult], k: int) -> EvalSummary:
    by_task: dict[str, list[EvalResult]] = {}
    for r in results:
        by_task.setdefault(r.task_id, []).append(r)
    p1 = [pass_at_k(len(rs), sum(r.resolved for r in rs), 1) for rs in by_task.values()]
    pk = [pass_at_k(len(rs), sum(r.resolved for r in rs), min(k, len(rs))) for rs in by_task.values()]
    costs = [r.usage.get("cost_usd", "unknown") for r in results]
    known = [c for c in costs if isinstance(c, int | float)]
    reasons: dict[str, int] = {}
    for r in results:
        reasons[r.stop_reason] = reasons.get(r.stop_reason, 0) + 1
    return EvalSummary(
        tasks=len(by_task),
        attempts=len(results),
        pass_at_1=sum(p1) / len(p1) if p1 else 0.0,
        pass_at_k=sum(pk) / len(pk) if pk else 0.0,
        k=k,
        cost_usd=round(sum(known), 6) if known and len(known) == len(costs) else "unknown",
        seconds=round(sum(r.seconds for r in results), 1),
        stop_reasons=reasons,
    )
