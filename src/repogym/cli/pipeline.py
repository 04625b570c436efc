"""The Bench pipeline commands: synth, validate, check, workflow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from repogym.cli.common import (
    API_BASE_OPT,
    AUTO_TIMEOUT_OPT,
    BACKEND_OPT,
    EXECUTOR_OPT,
    MAX_RETRIES_OPT,
    MODEL_OPT,
    RAY_ADDRESS_OPT,
    REF_OPT,
    REPO_ARG,
    TIMEOUT_OPT,
    WORKERS_OPT,
    app,
    build_model_config,
    console,
    err,
    pick_backend,
    pick_executor,
    pick_strategy,
    repo_resolver,
    say,
)
from repogym.errors import RepogymError

if TYPE_CHECKING:
    from repogym.records import CheckRecord

# The source files are optional: without them, the project's importable modules are the targets.
SOURCE_GLOBS_ARG = typer.Argument(
    None, help="Globs of the source files to work on, e.g. 'src/pkg/*.py' (default: the importable modules)."
)
FILES_OPT = typer.Option(None, "--files", help="A glob that narrows the source files (repeatable).")
MAX_FAIL_OPT = typer.Option(0.5, "--max-fail-fraction", help="Reject a candidate if more of the suite fails.")
SELECT_OPT = typer.Option(
    True,
    "--select/--no-select",
    help="Run only the tests that execute a change (per the coverage map) and, in check 2, the test files "
    "tests.diff touches; --no-select runs the whole suite every time (for suites whose coverage is unreliable).",
)
WARM_OPT = typer.Option(
    True,
    "--warm/--no-warm",
    help="Fork each test run from a sandboxed server that has imported pytest, in one working copy per worker "
    "(reset between tasks); --no-warm starts a fresh interpreter, sandbox and working copy every time.",
)
DESCRIBE_OPT = typer.Option(
    "template",
    "--describe",
    help="Task descriptions: template, or issue (an issue written by --model from the failures).",
)


@app.command("synth")
def synth_cmd(
    repo: str = REPO_ARG,
    patterns: list[str] | None = SOURCE_GLOBS_ARG,
    files: list[str] | None = FILES_OPT,
    ref: str | None = REF_OPT,
    strategy: str | None = typer.Option(
        None,
        "--strategy",
        help="feature_removal (LLM; the default with --model), procedural (no LLM), or combine (2-4 validated "
        "single changes of a state directory, --from).",
    ),
    from_dir: Path | None = typer.Option(
        None, "--from", help="combine: the state directory whose validated candidates are combined."
    ),
    num_candidates: int = typer.Option(10, "--num-candidates", help="How many candidates to make."),
    seed: int = typer.Option(0, "--seed", help="procedural, combine: seed of candidate selection."),
    backend: str | None = BACKEND_OPT,
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    avoid: list[str] | None = typer.Option(
        None, "--avoid", help="feature_removal: a subject not to pick (repeatable)."
    ),
    extra: str = typer.Option("", "--extra", help="feature_removal: extra instructions for the model."),
    flex_processing: bool = typer.Option(False, "--flex-processing", help="service_tier=flex (OpenAI)."),
    max_input_tokens: int = typer.Option(100_000, "--max-input-tokens", help="Truncate the files shown, warning."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Completion token limit per call."),
    num_attempts: int = typer.Option(3, "--num-attempts", help="Answer + normalization attempts per candidate."),
    check_patch_applies: bool = typer.Option(
        True, "--check-patch-applies/--no-check-patch-applies", help="Keep only candidates whose patch applies."
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds per model call."),
    max_retries: int = MAX_RETRIES_OPT,
    output: Path | None = typer.Option(None, "--output", help="Append tasks.jsonl records here."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON lines on stdout."),
) -> None:
    """Synthesize task candidates from a repository (tasks.jsonl records)."""
    from repogym import environment
    from repogym.repo import open_repo
    from repogym.synth import feature_removal
    from repogym.synth.stage import SynthRequest, synthesize

    patterns = [*(patterns or []), *(files or [])]
    src = open_repo(repo, ref, say=say)
    if strategy == "combine":
        records = synthesize("combine", _combine_request(src, patterns, num_candidates, seed, from_dir))
        return _emit(records, output, as_json, "the validated candidates of --from")
    strategy = pick_strategy(strategy, model)
    model_cfg = feature_removal.FeatureRemovalConfig(
        model=build_model_config(model, api_base, max_tokens, flex_processing, timeout, max_retries),
        extra=extra, max_input_tokens=max_input_tokens, num_attempts=num_attempts,
        check_patch_applies=check_patch_applies,
    ) if model else None  # fmt: skip
    spec = environment.prepare(src, pick_backend(backend), say=say) if strategy == "procedural" else None
    records = synthesize(strategy, SynthRequest(src, patterns, num_candidates, seed, avoid or [], spec=spec,
                                                model=model_cfg, log=say))  # fmt: skip
    where = f"files matching {' '.join(patterns)}" if patterns else "the project's importable modules"
    _emit(records, output, as_json, where)


def _combine_request(src: Any, patterns: list[str], n: int, seed: int, state: Path | None) -> Any:
    """The combine strategy's request: the validated single changes of state directory ``state``."""
    from repogym.records import TaskRecord, existing_ids, load_records, next_task_number
    from repogym.synth.stage import SynthRequest

    if state is None or not (state / "tasks.jsonl").is_file():
        raise RepogymError("--strategy combine needs --from STATE_DIR (a workflow's state directory with tasks.jsonl)")
    tasks, _ = load_records(state / "tasks.jsonl", TaskRecord)
    validated = existing_ids(state / "validated_tasks.jsonl")
    return SynthRequest(
        src, patterns, n, seed=seed, avoid=[t.subject for t in tasks if t.strategy == "combine"],
        first_index=next_task_number(t.task_id for t in tasks), log=say,
        singles=[t for t in tasks if t.task_id in validated],
    )  # fmt: skip


def _emit(records: list[Any], output: Path | None, as_json: bool, where: str) -> None:
    from repogym.records import append_record

    if not records:
        raise RepogymError(f"no candidates from {where} (see the messages above); give globs of source files")
    for rec in records:
        if output:
            append_record(output, rec)
        if as_json or not output:
            print(rec.model_dump_json())
    say(f"{len(records)} candidate(s)" + (f" appended to {output}" if output else ""))


@app.command("validate")
def validate_cmd(
    agent: str = typer.Option(
        "auto",
        "--agent",
        help="Validator: auto (no LLM), or an agent: builtin, codex, claude or mini-swe-agent (--model).",
    ),
    agent_binary: str | None = typer.Option(None, "--agent-binary", help="Path of an external agent's executable."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    max_turns: int = typer.Option(60, "--max-turns", help="builtin: model calls per task."),
    tips_path: Path | None = typer.Option(None, "--validate-tips-path", help="builtin: tips shown to the agent."),
    input_json: str | None = typer.Option(None, "--input-json", help="One task record as JSON ('-': stdin)."),
    tasks: Path | None = typer.Option(None, "--tasks", help="A tasks.jsonl file."),
    output: Path = typer.Option(Path("validated_tasks.jsonl"), "--output", help="Append validated records here."),
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    backend: str | None = BACKEND_OPT,
    timeout: float | None = AUTO_TIMEOUT_OPT,
    max_fail_fraction: float = MAX_FAIL_OPT,
    rejected: Path | None = typer.Option(
        None, "--rejected", help="Append rejections here (default: rejected_tasks.jsonl beside --output)."
    ),
    workers: int = WORKERS_OPT,
    executor: str = EXECUTOR_OPT,
    ray_address: str | None = RAY_ADDRESS_OPT,
    select: bool = SELECT_OPT,
    warm: bool = WARM_OPT,
    describe: str = DESCRIBE_OPT,
) -> None:
    """Turn task candidates into src.diff + tests.diff by running the suite; resumable (a candidate already
    validated or rejected is never validated again)."""
    from repogym import validate
    from repogym.progress import stage
    from repogym.records import RejectedRecord, existing_ids

    runner = _validation_runner(agent, agent_binary, model, api_base, max_turns, output.parent / "agent_logs")
    writer = _issue_writer(describe, model, api_base)
    tips = tips_path.read_text() if tips_path and tips_path.exists() else ""
    rejected_path = rejected or output.with_name("rejected_tasks.jsonl")
    decided = existing_ids(output) | existing_ids(rejected_path)
    todo = [t for t in _task_records(input_json, tasks) if t.task_id not in decided]
    verdicts: list[object] = []
    with stage("validating", len(todo)) as advance:
        for records, validator in _validators(todo, repo, pick_backend(backend), runner, tips, timeout,
                                              max_fail_fraction, select, writer, warm):  # fmt: skip
            verdicts += validate.validate_many(
                records, validator, output, rejected_path, workers=workers,
                executor=pick_executor(executor, workers, ray_address), on_done=lambda r: advance(_verdict(r)),
            )  # fmt: skip
    for v in verdicts:
        console.print(_verdict(v))
    if any(isinstance(v, RejectedRecord) for v in verdicts):
        raise typer.Exit(1)


def _verdict(v: object) -> str:
    reason = getattr(v, "reason", None)
    return f"{getattr(v, 'task_id', '?')}: rejected: {reason}" if reason else f"{getattr(v, 'task_id', '?')}: validated"


def _validation_runner(
    agent: str, binary: str | None, model: str | None, api_base: str | None, max_turns: int, log_dir: Path
) -> Any:
    """The agent that validates (None for auto), checked before any candidate runs."""
    from repogym import validate
    from repogym.agents.external import external_agent
    from repogym.agents.loop import AgentConfig

    _check_agent(agent, model, binary)
    if agent == "auto" or model is None:
        return None
    if agent == "builtin":
        return validate.BuiltinRunner(
            build_model_config(model, api_base, None, False), AgentConfig(max_turns=max_turns)
        )
    return validate.ExternalRunner(external_agent(agent, model, api_base, binary), log_dir)


def _task_records(input_json: str | None, tasks: Path | None) -> list[Any]:
    """The candidates from --input-json or --tasks (bad lines reported, the rest kept)."""
    import json

    from repogym.records import TaskRecord, load_records

    if (input_json is None) == (tasks is None):
        raise RepogymError("give exactly one of --input-json and --tasks")
    if input_json is not None:
        text = sys.stdin.read() if input_json == "-" else input_json
        try:
            return [TaskRecord.model_validate(json.loads(text))]
        except ValueError as e:
            raise RepogymError(f"--input-json: not a task record ({str(e).splitlines()[0]})") from e
    assert tasks is not None
    records, bad = load_records(tasks, TaskRecord)
    for b in bad:
        err.print(f"error: {b}")
    return records


def _issue_writer(describe: str, model: str | None, api_base: str | None) -> Any:
    """The model that writes issue-style descriptions (None for the template), checked before any work."""
    from repogym import validate

    if describe not in ("template", "issue"):
        raise RepogymError(f"unknown --describe {describe!r}; choose template or issue")
    if describe == "template":
        return None
    if not model:
        raise RepogymError("--describe issue needs --model provider/name (the model writes the issue)")
    return validate.IssueWriter(build_model_config(model, api_base, None, False))


def _validators(
    records: list[Any],
    repo: str | None,
    backend: str,
    runner: Any,
    tips: str,
    timeout: float | None,
    mff: float,
    select: bool,
    writer: Any,
    warm: bool,
) -> Any:
    """(candidates, validator) per repository and base commit: the environment, base run and coverage map are
    made once each."""
    from repogym import baserun, validate
    from repogym.repo import open_repo
    from repogym.synth.coverage import coverage_map

    groups: dict[tuple[str, str], list[Any]] = {}
    for rec in records:
        groups.setdefault((repo or rec.repo, rec.commit_sha), []).append(rec)
    for (where, sha), recs in groups.items():
        src = open_repo(where, sha, say=say)
        spec = baserun.prepare_with_base(src, backend, say=say)
        coverage = coverage_map(src, spec) if select and runner is None else None
        yield recs, validate.CandidateValidator(src, spec, runner, tips, timeout, mff, coverage, writer, warm)


@app.command("check")
def check_cmd(
    validated: Path = typer.Argument(..., help="validated_tasks.jsonl"),
    workers: int = WORKERS_OPT,
    timeout: float = TIMEOUT_OPT,
    reruns: int = typer.Option(0, "--reruns", help="Repeat checks 1 and 3 K times to flag flaky tasks."),
    backend: str | None = BACKEND_OPT,
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    output: Path = typer.Option(Path("check_results.jsonl"), "--output", help="Append check records here."),
    executor: str = EXECUTOR_OPT,
    ray_address: str | None = RAY_ADDRESS_OPT,
    select: bool = SELECT_OPT,
    warm: bool = WARM_OPT,
) -> None:
    """Run the three LLM-free checks on validated tasks, in parallel (check_results.jsonl)."""
    from repogym.check import check_many
    from repogym.progress import stage
    from repogym.records import ValidatedRecord, append_record, existing_ids, load_records

    records, bad = load_records(validated, ValidatedRecord)
    for b in bad:
        err.print(f"error: {b} (record skipped; the others are checked)")
    done = existing_ids(output)
    todo = [r for r in records if r.task_id not in done]
    resolve = repo_resolver(pick_backend(backend), repo)
    results: list[CheckRecord] = []
    with stage("checking", len(todo)) as advance:

        def on_done(rec: CheckRecord) -> None:
            append_record(output, rec)
            results.append(rec)
            advance(f"{rec.task_id}: {'ok' if rec.ok else 'failed'}")

        check_many(
            todo, resolve, workers=workers, timeout_s=timeout, reruns=reruns, on_done=on_done,
            executor=pick_executor(executor, workers, ray_address), select=select, warm=warm,
        )  # fmt: skip
    _print_checks(results, len(records) - len(todo))
    if bad or not all(r.ok for r in results):
        raise typer.Exit(1)


def _print_checks(results: list[CheckRecord], skipped: int) -> None:
    from rich.table import Table

    table = Table("task", "ok", "F2P", "P2P", "reason")
    for r in sorted(results, key=lambda r: r.task_id):
        table.add_row(r.task_id, "yes" if r.ok else "NO", str(len(r.FAIL_TO_PASS)), str(len(r.PASS_TO_PASS)), r.reason)
    if results:
        console.print(table)
    ok = sum(r.ok for r in results)
    console.print(
        f"{ok} of {len(results)} task(s) pass all checks" + (f"; {skipped} already checked" if skipped else "")
    )


@app.command("workflow")
def workflow_cmd(
    repo: str = REPO_ARG,
    patterns: list[str] | None = SOURCE_GLOBS_ARG,
    files: list[str] | None = FILES_OPT,
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Directory of the state files, resumable (default: outputs/NAME)."
    ),
    ref: str | None = REF_OPT,
    num_candidates: int = typer.Option(20, "--num-candidates", help="Candidates to synthesize in total."),
    strategy: str | None = typer.Option(
        None, "--strategy", help="feature_removal (LLM; the default with --model) or procedural (no LLM)."
    ),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Completion token limit per model call."),
    flex_processing: bool = typer.Option(False, "--flex-processing", help="service_tier=flex (OpenAI)."),
    num_attempts: int = typer.Option(3, "--num-attempts", help="feature_removal: attempts per candidate."),
    extra: str = typer.Option("", "--extra", help="feature_removal: extra instructions for the model."),
    max_retries: int = MAX_RETRIES_OPT,
    agent: str = typer.Option(
        "auto", "--agent", help="Validator: auto (no LLM), builtin, codex, claude or mini-swe-agent (with --model)."
    ),
    agent_binary: str | None = typer.Option(None, "--agent-binary", help="Path of an external agent's executable."),
    env_tips_path: Path | None = typer.Option(None, "--env-tips-path", help="Tips file of the environment agent."),
    validate_tips_path: Path | None = typer.Option(None, "--validate-tips-path", help="Tips for the validator."),
    workers: int = WORKERS_OPT,
    backend: str | None = BACKEND_OPT,
    dockerfile: Path | None = typer.Option(None, "--dockerfile", help="podman/docker: Dockerfile of the image."),
    seed: int = typer.Option(0, "--seed", help="Seed of candidate selection."),
    timeout: float | None = AUTO_TIMEOUT_OPT,
    reruns: int = typer.Option(0, "--reruns", help="Repeat checks 1 and 3 K times to flag flaky tasks."),
    force_fresh: bool = typer.Option(False, "--force-fresh", help="Delete the state files and start over."),
    executor: str = EXECUTOR_OPT,
    ray_address: str | None = RAY_ADDRESS_OPT,
    select: bool = SELECT_OPT,
    warm: bool = WARM_OPT,
    describe: str = DESCRIBE_OPT,
    combine: int = typer.Option(
        0, "--combine", help="Also make N harder candidates, each 2-4 validated single changes of one package."
    ),
    max_fail_fraction: float = MAX_FAIL_OPT,
) -> None:
    """Repository in, verified tasks out: environment, synthesis, validation and checks, resumable."""
    from repogym.workflow import Workflow, WorkflowConfig

    _check_agent(agent, model, agent_binary)
    _issue_writer(describe, model, api_base)
    model_cfg = (
        build_model_config(model, api_base, max_tokens, flex_processing, max_retries=max_retries) if model else None
    )
    cfg = WorkflowConfig(
        repo=repo, ref=ref, patterns=[*(patterns or []), *(files or [])],
        state_dir=state_dir or default_state_dir(repo), num_candidates=num_candidates,
        strategy=pick_strategy(strategy, model), model=model_cfg, num_attempts=num_attempts, extra=extra,
        agent=agent, agent_binary=agent_binary, env_tips_path=env_tips_path, validate_tips_path=validate_tips_path,
        workers=workers, backend=pick_backend(backend), dockerfile=dockerfile, seed=seed, timeout_s=timeout,
        reruns=reruns, force_fresh=force_fresh, executor=executor, ray_address=ray_address, select=select,
        describe=describe, combine=combine, max_fail_fraction=max_fail_fraction, warm=warm,
    )  # fmt: skip
    _print_summary(Workflow(cfg).run())


def _check_agent(agent: str, model: str | None, binary: str | None) -> None:
    """An unknown agent, an agent without a model, or an external agent that is not installed: before any work."""
    from repogym.agents.external import AGENTS, external_agent

    if agent not in ("auto", "builtin", *AGENTS):
        raise RepogymError(f"unknown agent {agent!r}; choose one of: auto, builtin, {', '.join(AGENTS)}")
    if agent != "auto" and not model:
        raise RepogymError(f"--agent {agent} needs --model provider/name")
    if agent in AGENTS:
        external_agent(agent, binary=binary)


def default_state_dir(repo: str) -> Path:
    """outputs/NAME, NAME being the repository's name without .git / tarball suffixes."""
    name = repo.rstrip("/").rsplit("/", 1)[-1] or "repo"
    for suffix in (".tar.gz", ".tgz", ".tar", ".git"):
        name = name.removesuffix(suffix)
    return Path("outputs") / name


def _print_summary(summary: object) -> None:
    from rich.table import Column, Table

    from repogym.workflow import Summary

    assert isinstance(summary, Summary)
    table = Table(
        Column("strategy", no_wrap=True),
        "candidates",
        "validated",
        "checked",
        "pass all checks",
        title="repogym workflow",
    )
    for strat, c in summary.by_strategy.items():
        table.add_row(strat, *(str(c.get(k, 0)) for k in ("candidates", "validated", "checked", "passed")))
    table.add_row(
        "total",
        str(summary.candidates),
        str(summary.validated),
        str(summary.checked),
        str(summary.passed),
        style="bold",
    )
    console.print(
        f"base run: {summary.base_passed} tests pass; {summary.known_failures} known failures and {summary.flaky} "
        f"flaky tests excluded; {len(summary.ignored_modules)} module(s) ignored"
        + (f" ({', '.join(summary.ignored_modules)})" if summary.ignored_modules else "")
        + f" (details in {summary.state_dir}/env.json)"
    )
    console.print(table)
    console.print(f"{summary.rejected} candidate(s) rejected by validation (reasons in rejected_tasks.jsonl)")
    if summary.stage_seconds:
        console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary.stage_seconds.items()))
    console.print(f"records: {summary.state_dir}/validated_tasks.jsonl, {summary.state_dir}/check_results.jsonl")
