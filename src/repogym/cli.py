"""The `repogym` command: thin wrappers that build configs and call one library function each."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from repogym import __version__
from repogym.errors import RepogymError

if TYPE_CHECKING:
    from repogym.environment import EnvSpec
    from repogym.evaluate import EvalResult
    from repogym.llm import ModelConfig
    from repogym.records import CheckRecord, ValidatedRecord
    from repogym.repo import RepoSource
    from repogym.rl.envs.base import GroupResult
    from repogym.rl.run import RlConfig

console = Console(highlight=False, soft_wrap=True, markup=False)  # test ids like t[1] are not markup
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

app = typer.Typer(
    name="repogym",
    help="Turn a git repository into verified, executable coding tasks; run and score agents on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
patch_app = typer.Typer(help="Check or apply SEARCH/REPLACE patches.", no_args_is_help=True)
app.add_typer(patch_app, name="patch")
env_app = typer.Typer(help="Detect, build and run a repository's test environment.", no_args_is_help=True)
app.add_typer(env_app, name="env")

serve_app = typer.Typer(help="Start, list and stop local inference servers (vLLM, SGLang, llama.cpp).")
app.add_typer(serve_app, name="serve")

REPO_ARG = typer.Argument(..., help="A git repo, a plain directory, a .tar/.tar.gz or a git URL.")
REF_OPT = typer.Option(None, "--ref", help="Branch, tag or commit (default: HEAD).")
BACKEND_OPT = typer.Option(None, "--backend", help="bwrap (default), podman, docker or process (no isolation).")
TEST_DEPS_OPT = typer.Option(None, "--test-deps", help="Extra test dependency (repeatable).")
MODEL_OPT = typer.Option(None, "--model", help="provider/name, e.g. openai/boa (feature_removal).")
API_BASE_OPT = typer.Option(None, "--api-base", help="Base URL ending in /v1 (default: $OPENAI_API_BASE).")
TEST_CMD_OPT = typer.Option(
    None, "--test-command", help="Replaces the detected test command; write JUnit XML to $REPOGYM_JUNIT."
)


def _version(value: bool) -> None:
    if value:
        console.print(f"repogym {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """repogym: repository in, verified coding tasks out."""


def read_text_arg(path: str) -> str:
    """Read a file argument, or standard input for '-'."""
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise RepogymError(f"{path}: no such file")
    return p.read_text()


@patch_app.command("check")
def patch_check(
    patch: str = typer.Argument(..., help="Patch file ('-' for standard input)."),
    repo: Path = typer.Option(Path("."), "--repo", help="Directory the patch's paths are relative to."),
) -> None:
    """Say whether every block of a patch applies, without changing any file."""
    from repogym import patches

    blocks = patches.parse(read_text_arg(patch))
    result = patches.apply(blocks, repo, dry_run=True)
    _report_patch(blocks, result, "would change")


@patch_app.command("apply")
def patch_apply(
    patch: str = typer.Argument(..., help="Patch file ('-' for standard input)."),
    repo: Path = typer.Option(Path("."), "--repo", help="Directory the patch's paths are relative to."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report, change nothing."),
    show_diff: bool = typer.Option(False, "--diff", help="Print the change as a unified git diff."),
) -> None:
    """Apply a SEARCH/REPLACE patch: every block or none."""
    from repogym import patches

    blocks = patches.parse(read_text_arg(patch))
    result = patches.apply(blocks, repo, dry_run=dry_run)
    _report_patch(blocks, result, "would change" if dry_run else "changed")
    if show_diff:
        sys.stdout.write(patches.unified_diff(result))


def _report_patch(blocks: list, result: object, verb: str) -> None:
    from repogym.patches import ApplyResult

    assert isinstance(result, ApplyResult)
    fallback = dict(result.fallbacks)
    for n, b in enumerate(blocks, 1):
        how = f"applies, ignoring {fallback[n]}" if n in fallback else "applies"
        console.print(f"block {n} ({b.path}): {how}")
    console.print(f"{len(blocks)} block(s) apply; {verb} {len(result.files)} file(s): {', '.join(result.files)}")


def say(msg: str) -> None:
    err.print(msg, style="dim")


def pick_backend(backend: str | None) -> str:
    from repogym.sandbox import BACKENDS, default_backend

    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise RepogymError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "process":
        say("warning: the process backend runs the repository's code on this machine with no isolation")
    return backend


@env_app.command("detect")
def env_detect(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
) -> None:
    """Print the environment spec inferred from the repository's files (JSON)."""
    from repogym import environment
    from repogym.repo import open_repo, temp_working_copy

    src = open_repo(repo, ref, say=say)
    with temp_working_copy(src) as wc:
        spec = environment.detect(wc, src.name, pick_backend(backend), test_deps, test_command)
    print(spec.model_dump_json(indent=2))


@env_app.command("build")
def env_build(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
    dockerfile: Path | None = typer.Option(None, "--dockerfile", help="podman/docker: the Dockerfile to build."),
    image: str | None = typer.Option(None, "--image", help="podman/docker: image name (default env_agent__NAME)."),
    agent: str | None = typer.Option(
        None, "--agent", help="podman: let an agent write the Dockerfile (codex, claude, mini-swe-agent)."
    ),
    agent_binary: str | None = typer.Option(None, "--agent-binary", help="Path of the agent's executable."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    tips_path: Path | None = typer.Option(None, "--env-tips-path", help="Tips the agent reads and updates."),
) -> None:
    """Build the environment: a cached virtualenv (bwrap/process) or an image (podman/docker)."""
    from repogym import environment
    from repogym.repo import open_repo

    src = open_repo(repo, ref, say=say)
    if agent:
        from repogym.agents.cli import ExternalAgentConfig, check_installed
        from repogym.env_agent import build_with_agent
        from repogym.sandbox.podman import default_image_name

        if (backend or "podman") != "podman" or not model:
            raise RepogymError("--agent builds a podman image: give --backend podman (the default here) and --model")
        ext = ExternalAgentConfig(agent=agent, model=model.split("/", 1)[-1], api_base=api_base, binary=agent_binary)
        check_installed(ext)
        name = image or default_image_name(src.name)
        result = build_with_agent(src, ext, name, tips_path, Path(f"outputs/env_agent/{name}.log.jsonl").resolve())
        console.print(f"environment ready: {result.image} ({result.image_id[:12]}); the agent's Dockerfile:")
        console.print(result.dockerfile)
        return
    spec = environment.prepare(
        src,
        pick_backend(backend),
        test_deps=test_deps,
        test_command=test_command,
        dockerfile=dockerfile,
        image=image,
        say=say,
    )
    console.print(f"environment ready: {spec.venv or spec.image}")


@env_app.command("test")
def env_test(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
    image: str | None = typer.Option(None, "--image", help="podman/docker: image name (default env_agent__NAME)."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds before the suite is killed."),
    as_json: bool = typer.Option(False, "--json", help="Print per-test outcomes as JSON."),
    in_place: bool = typer.Option(
        False, "--in-place", help="Test REPO's work tree as it is (uncommitted edits included), not a clean copy."
    ),
) -> None:
    """Run the test suite in the sandbox and print per-test outcomes (builds the environment if needed)."""
    import json

    from repogym import environment
    from repogym.repo import open_repo, temp_working_copy

    src = open_repo(repo, ref, say=say)
    spec = environment.prepare(
        src, pick_backend(backend), test_deps=test_deps, test_command=test_command, image=image, say=say
    )
    if in_place:
        if not Path(repo).is_dir():
            raise RepogymError(f"--in-place needs a directory, not {repo}")
        with environment.open_env_sandbox(spec, Path(repo)) as sb:
            run = environment.run_tests(spec, sb, timeout_s=timeout)
    else:
        with temp_working_copy(src) as wc, environment.open_env_sandbox(spec, wc) as sb:
            run = environment.run_tests(spec, sb, timeout_s=timeout)
    if as_json:
        print(
            json.dumps(
                {
                    "backend": spec.backend,
                    "source": run.source,
                    "exit_code": run.exit_code,
                    "timed_out": run.timed_out,
                    "summary": run.summary(),
                    "outcomes": run.outcomes,
                    "note": run.note,
                },
                indent=2,
            )
        )
    else:
        _print_test_run(run)
    if not run.all_passed:
        raise typer.Exit(1)


def _print_test_run(run: object) -> None:
    from rich.table import Table

    from repogym.testresults import TestRun

    assert isinstance(run, TestRun)
    table = Table("test", "outcome")
    for tid, outcome in sorted(run.outcomes.items()):
        table.add_row(tid, outcome)
    if run.outcomes:
        console.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in run.summary().items() if n)
    console.print(f"{counts or 'no per-test results'} in {run.seconds:.1f}s (exit code {run.exit_code})")
    if run.note:
        console.print(run.note)


@env_app.command("base-image")
def env_base_image(
    engine: str = typer.Option("podman", "--engine", help="podman or docker."),
    name: str = typer.Option("localhost/repogym-base:bookworm", "--name", help="Image name."),
) -> None:
    """Build a Debian base image with Python (debootstrap) for projects' Dockerfiles to start FROM."""
    from repogym.sandbox.images import build_base_image

    console.print(f"built {build_base_image(engine, name, say=say)}")


PATTERNS_ARG = typer.Argument(..., help="Globs of the source files to work on, e.g. 'src/pkg/*.py'.")
WORKERS_OPT = typer.Option(1, "--workers", help="Parallel validations and checks.")
TIMEOUT_OPT = typer.Option(900.0, "--timeout", help="Seconds before one test-suite run is killed.")
AUTO_TIMEOUT_OPT = typer.Option(
    None, "--timeout", help="Seconds before one test-suite run is killed (default: 10x the base run, >= 60)."
)


MAX_RETRIES_OPT = typer.Option(5, "--max-retries", help="Retries of a model call on 429, 5xx and timeouts.")


def _model_config(
    model: str, api_base: str | None, max_tokens: int | None, flex: bool, timeout: float = 600.0, max_retries: int = 5
) -> ModelConfig:
    from repogym.llm import ModelConfig

    return ModelConfig(
        model=model,
        api_base=api_base,
        max_tokens=max_tokens,
        flex_processing=flex,
        timeout_s=timeout,
        max_retries=max_retries,
    )


def _strategy(strategy: str | None, model: str | None) -> str:
    """feature_removal when a model is given, procedural otherwise; a model strategy without a model is refused."""
    strategy = strategy or ("feature_removal" if model else "procedural")
    if strategy not in ("procedural", "feature_removal"):
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: feature_removal, procedural")
    if strategy == "feature_removal" and not model:
        raise RepogymError(
            "--strategy feature_removal needs --model provider/name (and --api-base or $OPENAI_API_BASE)"
        )
    return strategy


@app.command("synth")
def synth_cmd(
    repo: str = REPO_ARG,
    patterns: list[str] = PATTERNS_ARG,
    ref: str | None = REF_OPT,
    strategy: str | None = typer.Option(
        None, "--strategy", help="feature_removal (LLM; the default with --model) or procedural (no LLM)."
    ),
    num_candidates: int = typer.Option(10, "--num-candidates", help="How many candidates to make."),
    seed: int = typer.Option(0, "--seed", help="procedural: seed of candidate selection."),
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
    import asyncio

    from repogym import environment
    from repogym.records import TaskRecord, append_record
    from repogym.repo import open_repo, temp_working_copy
    from repogym.synth import feature_removal
    from repogym.synth.coverage import executed_functions
    from repogym.synth.procedural import synthesize

    strategy = strategy or ("feature_removal" if model else "procedural")
    if strategy not in ("procedural", "feature_removal"):
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: feature_removal, procedural")
    if strategy == "feature_removal" and not model:
        raise RepogymError(
            "--strategy feature_removal needs --model provider/name (and --api-base or $OPENAI_API_BASE)"
        )
    src = open_repo(repo, ref, say=say)
    records: list[TaskRecord]
    with temp_working_copy(src) as wc:
        if strategy == "feature_removal":
            assert model is not None
            cfg = feature_removal.FeatureRemovalConfig(
                model=_model_config(model, api_base, max_tokens, flex_processing, timeout, max_retries),
                num_candidates=num_candidates,
                avoid=avoid or [],
                extra=extra,
                max_input_tokens=max_input_tokens,
                num_attempts=num_attempts,
                check_patch_applies=check_patch_applies,
            )
            records = asyncio.run(feature_removal.synthesize(src, wc, patterns, cfg, log=say))
        else:
            spec = environment.prepare(src, pick_backend(backend), say=say)
            with environment.open_env_sandbox(spec, wc) as sb:
                executed = executed_functions(spec, sb)
            records = synthesize(
                src, wc, patterns, num_candidates=num_candidates, seed=seed, avoid=set(avoid or []), executed=executed
            )
    if not records:
        raise RepogymError(f"no candidates from files matching {' '.join(patterns)} (see the messages above)")
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
    max_fail_fraction: float = typer.Option(0.5, "--max-fail-fraction", help="Reject if more tests fail."),
) -> None:
    """Turn task candidates into src.diff + tests.diff by running the suite (validated_tasks.jsonl)."""
    import json

    from repogym import environment, validate
    from repogym.agents.cli import AGENTS, ExternalAgentConfig, check_installed
    from repogym.records import TaskRecord, append_record, existing_ids, load_records
    from repogym.repo import open_repo

    if agent not in ("auto", "builtin", *AGENTS):
        raise RepogymError(f"unknown agent {agent!r}; choose one of: auto, builtin, {', '.join(AGENTS)}")
    if agent != "auto" and not model:
        raise RepogymError(f"--agent {agent} needs --model provider/name")
    runner: validate.BuiltinRunner | validate.ExternalRunner | None = None
    if agent == "builtin":
        from repogym.agents.loop import AgentConfig

        assert model is not None
        runner = validate.BuiltinRunner(_model_config(model, api_base, None, False), AgentConfig(max_turns=max_turns))
    elif agent != "auto":
        assert model is not None
        ext = ExternalAgentConfig(agent=agent, model=model.split("/", 1)[-1], api_base=api_base, binary=agent_binary)
        check_installed(ext)
        runner = validate.ExternalRunner(ext, output.parent / "agent_logs")
    if (input_json is None) == (tasks is None):
        raise RepogymError("give exactly one of --input-json and --tasks")
    if input_json is not None:
        text = sys.stdin.read() if input_json == "-" else input_json
        try:
            records = [TaskRecord.model_validate(json.loads(text))]
        except ValueError as e:
            raise RepogymError(f"--input-json: not a task record ({str(e).splitlines()[0]})") from e
    else:
        assert tasks is not None
        records, bad = load_records(tasks, TaskRecord)
        for b in bad:
            err.print(f"error: {b}")
    done = existing_ids(output)
    rejected = 0
    chosen = pick_backend(backend)
    for rec in records:
        if rec.task_id in done:
            continue
        src = open_repo(repo or rec.repo, rec.commit_sha, say=say)
        spec = environment.prepare(src, chosen, say=say)
        try:
            if runner is not None:
                tips = tips_path.read_text() if tips_path and tips_path.exists() else ""
                record, _ = validate.validate_with_agent(rec, src, spec, runner, tips)
            else:
                base = validate.baseline(src, spec)
                record = validate.validate_auto(rec, src, spec, base, timeout or base.timeout(), max_fail_fraction)
            append_record(output, record)
            console.print(f"{rec.task_id}: validated")
        except validate.Rejected as e:
            rejected += 1
            console.print(f"{rec.task_id}: rejected: {e}")
    if rejected:
        raise typer.Exit(1)


@app.command("check")
def check_cmd(
    validated: Path = typer.Argument(..., help="validated_tasks.jsonl"),
    workers: int = WORKERS_OPT,
    timeout: float = TIMEOUT_OPT,
    reruns: int = typer.Option(0, "--reruns", help="Repeat checks 1 and 3 K times to flag flaky tasks."),
    backend: str | None = BACKEND_OPT,
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    output: Path = typer.Option(Path("check_results.jsonl"), "--output", help="Append check records here."),
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
    resolve = _resolver(pick_backend(backend), repo)
    results: list[CheckRecord] = []
    with stage("checking", len(todo)) as advance:

        def on_done(rec: CheckRecord) -> None:
            append_record(output, rec)
            results.append(rec)
            advance(f"{rec.task_id}: {'ok' if rec.ok else 'failed'}")

        check_many(todo, resolve, workers=workers, timeout_s=timeout, reruns=reruns, on_done=on_done)
    _print_checks(results, len(records) - len(todo))
    if bad or not all(r.ok for r in results):
        raise typer.Exit(1)


def _resolver(backend: str, repo: str | None) -> Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]]:
    """Open each record's repository and environment once, shared by the worker threads."""
    import threading

    from repogym import environment
    from repogym.repo import open_repo

    lock = threading.Lock()
    memo: dict[tuple[str, str | None, str], tuple[RepoSource, EnvSpec]] = {}

    def resolve(rec: ValidatedRecord) -> tuple[RepoSource, EnvSpec]:
        image = rec.container if backend in ("podman", "docker") and rec.container else None
        key = (repo or rec.repo, rec.commit_sha, image or "")
        with lock:
            if key not in memo:
                src = open_repo(key[0], rec.commit_sha, say=say)
                memo[key] = (src, environment.prepare(src, backend, image=image, say=say))
            return memo[key]

    return resolve


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
    patterns: list[str] = PATTERNS_ARG,
    state_dir: Path = typer.Option(..., "--state-dir", help="Directory of the state files (resumable)."),
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
) -> None:
    """Repository in, verified tasks out: environment, synthesis, validation and checks, resumable."""
    from repogym.agents.cli import AGENTS, ExternalAgentConfig, check_installed
    from repogym.workflow import Workflow, WorkflowConfig

    strategy = _strategy(strategy, model)
    if agent not in ("auto", "builtin", *AGENTS):
        raise RepogymError(f"unknown agent {agent!r}; choose one of: auto, builtin, {', '.join(AGENTS)}")
    if agent != "auto" and not model:
        raise RepogymError(f"--agent {agent} needs --model provider/name")
    if agent in AGENTS:
        check_installed(ExternalAgentConfig(agent=agent, binary=agent_binary))
    model_cfg = _model_config(model, api_base, max_tokens, flex_processing, max_retries=max_retries) if model else None
    cfg = WorkflowConfig(
        repo=repo,
        ref=ref,
        patterns=patterns,
        state_dir=state_dir,
        num_candidates=num_candidates,
        strategy=strategy,
        model=model_cfg,
        num_attempts=num_attempts,
        extra=extra,
        agent=agent,
        agent_binary=agent_binary,
        env_tips_path=env_tips_path,
        validate_tips_path=validate_tips_path,
        workers=workers,
        backend=pick_backend(backend),
        dockerfile=dockerfile,
        seed=seed,
        timeout_s=timeout,
        reruns=reruns,
        force_fresh=force_fresh,
    )
    summary = Workflow(cfg).run()
    _print_summary(summary)


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
    console.print(table)
    console.print(f"{summary.rejected} candidate(s) rejected by validation (reasons in rejected_tasks.jsonl)")
    console.print(f"records: {summary.state_dir}/validated_tasks.jsonl, {summary.state_dir}/check_results.jsonl")


@app.command("doctor")
def doctor_cmd(
    api_base: str | None = API_BASE_OPT,
    model: str = typer.Option("openai/boa", "--model", help="provider/name of the model to check."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
) -> None:
    """Check that an OpenAI-compatible endpoint is ready: models, chat, tool calls (with latencies)."""
    import asyncio

    from repogym.doctor import doctor
    from repogym.llm import ModelConfig

    cfg = ModelConfig(model=model, api_base=api_base, timeout_s=timeout)
    console.print(f"checking {cfg.base_url()} for model {cfg.name!r}")
    checks = asyncio.run(doctor(cfg))
    for c in checks:
        console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<7} {c.seconds * 1000:7.0f} ms  {c.detail}")
    if len(checks) < 3 or not all(c.ok for c in checks):
        raise typer.Exit(1)


def _serve(
    engine: str,
    model: str,
    name: str,
    port: int,
    host: str,
    parser: str | None,
    gpu: str | None,
    python: str | None,
    wait: float,
) -> None:
    import asyncio

    from repogym import serving
    from repogym.doctor import doctor
    from repogym.llm import ModelConfig

    cfg = serving.ServeConfig(
        engine=engine,
        model=model,
        served_model_name=name,
        port=port,
        host=host,
        tool_call_parser=parser,
        gpu=gpu,
        python=python or sys.executable,
    )
    say("$ " + " ".join(serving.command(cfg)))
    info = serving.start(cfg, wait_s=wait)
    console.print(f"{engine} server pid {info.pid} answers on http://{host}:{port}/v1 (log: {info.log})")
    checks = asyncio.run(doctor(ModelConfig(model=f"openai/{name}", api_base=f"http://{host}:{port}/v1")))
    for c in checks:
        console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<7} {c.seconds * 1000:7.0f} ms  {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


NAME_OPT = typer.Option("boa", "--served-model-name", help="The name clients use (openai/NAME).")
PORT_OPT = typer.Option(8000, "--port", help="Port to listen on.")
HOST_OPT = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 to serve other machines).")
GPU_OPT = typer.Option(None, "--gpu", help="CUDA_VISIBLE_DEVICES for the server, e.g. 0 or 0,1.")
PYTHON_OPT = typer.Option(None, "--python", help="Interpreter that has the engine installed.")
WAIT_OPT = typer.Option(900.0, "--wait", help="Seconds to wait for /v1/models to answer.")


@serve_app.command("vllm")
def serve_vllm(
    model: str = typer.Argument(..., help="Hugging Face id or local path."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    tool_call_parser: str | None = typer.Option("qwen3_xml", "--tool-call-parser", help="vLLM tool-call parser."),
    gpu: str | None = GPU_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """vllm serve MODEL --enable-auto-tool-choice --tool-call-parser X --enable-prefix-caching."""
    _serve("vllm", model, served_model_name, port, host, tool_call_parser, gpu, None, wait)


@serve_app.command("sglang")
def serve_sglang(
    model: str = typer.Argument(..., help="Hugging Face id or local path."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    tool_call_parser: str | None = typer.Option(None, "--tool-call-parser", help="SGLang tool-call parser."),
    gpu: str | None = GPU_OPT,
    python: str | None = PYTHON_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """python -m sglang.launch_server --model-path MODEL --tool-call-parser X."""
    _serve("sglang", model, served_model_name, port, host, tool_call_parser, gpu, python, wait)


@serve_app.command("llama-cpp")
def serve_llama_cpp(
    model: str = typer.Argument(..., help="Path of a GGUF file."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    chat_format: str | None = typer.Option(
        "chatml-function-calling", "--tool-call-parser", help="llama.cpp chat format that handles tools."
    ),
    python: str | None = PYTHON_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """python -m llama_cpp.server --model GGUF --chat_format chatml-function-calling (CPU)."""
    _serve("llama-cpp", model, served_model_name, port, host, chat_format, None, python, wait)


@serve_app.command("status")
def serve_status() -> None:
    """List the inference servers running on this machine and their ports."""
    from repogym.serving import running_servers

    servers = running_servers()
    for r in servers:
        console.print(f"{r.engine:<10} pid {r.pid:<8} port {r.port}  model {r.model or '?'}  log {r.log or '-'}")
    if not servers:
        console.print("no inference server runs on this machine")


@serve_app.command("stop")
def serve_stop(pid: int = typer.Argument(..., help="Process id from `repogym serve status`.")) -> None:
    """Stop a server started by `repogym serve`."""
    from repogym.serving import stop

    stop(pid)
    console.print(f"stopped {pid}")


export_app = typer.Typer(help="Export tasks to other harnesses' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _load_tasks(validated: Path, tasks: Path | None, ids: list[str] | None) -> list[tuple[ValidatedRecord, str]]:
    """Validated records with their task descriptions (from the record, or from tasks.jsonl)."""
    from repogym.records import TaskRecord, ValidatedRecord, load_records

    records, bad = load_records(validated, ValidatedRecord)
    for b in bad:
        err.print(f"error: {b} (record skipped)")
    described = {t.task_id: t.task_description for t in load_records(tasks, TaskRecord)[0]} if tasks else {}
    out = []
    for r in records:
        if ids and r.task_id not in ids:
            continue
        description = r.task_description or described.get(r.task_id, "")
        if not description:
            raise RepogymError(f"{r.task_id}: no task description in {validated}; pass --tasks tasks.jsonl")
        out.append((r, description))
    if ids and len(out) < len(set(ids)):
        missing = sorted(set(ids) - {r.task_id for r, _ in out})
        raise RepogymError(f"task id(s) not in {validated}: {', '.join(missing)}")
    return out


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
) -> None:
    """Run an agent on validated tasks and grade it by FAIL_TO_PASS / PASS_TO_PASS; resumable."""
    import asyncio

    from repogym.agents.cli import AGENTS, ExternalAgentConfig, check_installed
    from repogym.agents.loop import AgentConfig
    from repogym.evaluate import EvalConfig, EvalResult, evaluate
    from repogym.progress import stage
    from repogym.records import append_record, read_jsonl

    if agent != "builtin" and agent not in AGENTS:
        raise RepogymError(f"unknown agent {agent!r}; choose one of: builtin, {', '.join(AGENTS)}")
    chosen = _load_tasks(validated, tasks, task_id)
    external = None
    if agent != "builtin":
        name = model.split("/", 1)[-1]
        external = ExternalAgentConfig(
            agent=agent, model=name, api_base=api_base, binary=agent_binary, timeout_s=max_seconds
        )
        check_installed(external)
    cfg = EvalConfig(
        model=_model_config(model, api_base, max_tokens, False, max_retries=max_retries),
        agent=AgentConfig(
            max_turns=max_turns, max_total_tokens=max_total_tokens, max_cost_usd=max_cost, max_seconds=max_seconds
        ),
        attempts=attempts,
        no_exec=no_exec,
        workers=workers,
        external=external,
    )
    results_path = output_dir / "results.jsonl"
    old = (
        [EvalResult.model_validate(o) for _, o in read_jsonl(results_path) if isinstance(o, dict)]
        if (results_path.exists())
        else []
    )
    ids = {r.task_id for r, _ in chosen}
    results = [r for r in old if r.task_id in ids]
    done = {(r.task_id, r.attempt) for r in results}
    todo = len(chosen) * attempts - len(done)
    with stage("evaluating", todo) as advance:

        def on_result(res: EvalResult) -> None:
            append_record(results_path, res)
            results.append(res)
            advance(f"{res.task_id}#{res.attempt}: {'resolved' if res.resolved else res.stop_reason}")

        asyncio.run(evaluate(chosen, _resolver(pick_backend(backend), repo), cfg, output_dir, done, on_result))
    _print_eval(results, attempts)


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


@export_app.command("swebench")
def export_swebench(
    validated: Path = typer.Option(..., "--validated", help="validated_tasks.jsonl"),
    tasks: Path | None = typer.Option(None, "--tasks", help="tasks.jsonl (descriptions, when not in V)."),
    output: Path = typer.Option(Path("swebench_instances.jsonl"), "--output", help="Instances JSONL."),
    git_dir: Path = typer.Option(Path("outputs/swebench.git"), "--git-dir", help="Bare repo of task-state commits."),
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    backend: str | None = BACKEND_OPT,
) -> None:
    """Write tasks as SWE-bench instances; each task state is a commit (branch) in --git-dir."""
    from repogym.export import export_swebench as run_export
    from repogym.records import append_record

    chosen = _load_tasks(validated, tasks, None)
    resolve = _resolver(pick_backend(backend), repo)
    output.unlink(missing_ok=True)
    for rec, description in chosen:
        append_record(output, run_export(rec, description, *resolve(rec), git_dir))
    console.print(f"wrote {len(chosen)} instance(s) to {output}; base commits are branches of {git_dir}")


rl_app = typer.Typer(help="RL environments: scored groups for trainers (Atropos) or JSONL.", no_args_is_help=True)
app.add_typer(rl_app, name="rl")


def _rl_config(env: str, data: Path | None, config: Path | None, **flags: object) -> RlConfig:
    from repogym.rl.run import load_config

    return load_config(config, {"env": env, "data": data, **flags})


ENV_ARG = typer.Argument(..., help="gsm8k or swe.")
DATA_ARG = typer.Argument(None, help="gsm8k: JSONL (default: 100 bundled problems); swe: a workflow state dir.")
CONFIG_OPT = typer.Option(None, "--config", help="TOML file with any of these options (flags win).")
FORMAT_OPT = typer.Option(None, "--server-format", help="openai (default), vllm, vllm-completions or sglang.")
TOKENIZER_OPT = typer.Option(None, "--tokenizer", help="managed: the model's tokenizer.json.")
TEMPLATE_OPT = typer.Option(None, "--chat-template", help="managed: the model's chat template (jinja2 file).")
PARSER_OPT = typer.Option(None, "--parser", help="managed: tool-call parser (hermes, qwen3_coder, ...).")


def _print_rl(stats: dict[str, object], failures: list[dict[str, object]]) -> None:
    console.print(" ".join(f"{k}={v}" for k, v in stats.items()))
    for f in failures:
        console.print(f"infrastructure failure (excluded from its group): {f}")


@rl_app.command("process")
def rl_process(
    env: str = ENV_ARG,
    data: Path | None = DATA_ARG,
    config: Path | None = CONFIG_OPT,
    items: int | None = typer.Option(None, "--items", help="Groups to make (default 4)."),
    group_size: int | None = typer.Option(None, "--group-size", help="Rollouts per group (default 4)."),
    out: Path = typer.Option(Path("groups.jsonl"), "--out", help="Append groups here."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    server_format: str | None = FORMAT_OPT,
    tokenizer: Path | None = TOKENIZER_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    parser: str | None = PARSER_OPT,
    max_turns: int | None = typer.Option(None, "--max-turns", help="Model calls per rollout (default 10)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens per model call (default 512)."),
    seed: int | None = typer.Option(None, "--seed", help="Item order."),
) -> None:
    """Run groups of rollouts and write the scored groups to JSONL; no trainer needed."""
    import asyncio

    from repogym.records import append_record
    from repogym.rl.run import groups, make_env, summary

    cfg = _rl_config(
        env,
        data,
        config,
        items=items,
        group_size=group_size,
        model=model,
        api_base=api_base,
        server_format=server_format,
        tokenizer=tokenizer,
        chat_template=chat_template,
        parser=parser,
        max_turns=max_turns,
        max_tokens=max_tokens,
        seed=seed,
    )
    environment = make_env(cfg)
    chosen = [environment.next_item() for _ in range(cfg.items)]
    results: list[GroupResult] = []

    def on_group(r: GroupResult) -> None:
        results.append(r)
        if r.group is not None:
            append_record(out, r.group.model_dump(exclude_none=True))

    asyncio.run(groups(cfg, environment, chosen, cfg.temperature, cfg.group_size, on_group))
    _print_rl(summary(results) | {"out": str(out)}, [f for r in results for f in r.failures])


@rl_app.command("serve")
def rl_serve(
    env: str = ENV_ARG,
    data: Path | None = DATA_ARG,
    api: str = typer.Option(..., "--api", help="The trajectory API, e.g. http://127.0.0.1:8000 (atroposlib run-api)."),
    config: Path | None = CONFIG_OPT,
    items: int | None = typer.Option(None, "--items", help="Groups to send before stopping (default 4)."),
    group_size: int | None = typer.Option(None, "--group-size", help="Rollouts per group (default 4)."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    server_format: str | None = FORMAT_OPT,
    tokenizer: Path | None = TOKENIZER_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    parser: str | None = PARSER_OPT,
    max_turns: int | None = typer.Option(None, "--max-turns", help="Model calls per rollout (default 10)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens per model call (default 512)."),
) -> None:
    """Register with an Atropos-compatible trajectory API and send scored groups as the trainer takes them."""
    import asyncio

    from repogym.rl.atropos import AtroposClient
    from repogym.rl.run import groups, make_env, summary

    cfg = _rl_config(
        env,
        data,
        config,
        items=items,
        group_size=group_size,
        model=model,
        api_base=api_base,
        server_format=server_format,
        tokenizer=tokenizer,
        chat_template=chat_template,
        parser=parser,
        max_turns=max_turns,
        max_tokens=max_tokens,
    )
    if cfg.server_format == "openai":
        raise RepogymError(
            "a trainer needs token ids: serve in managed mode (--server-format vllm|vllm-completions|sglang)"
        )
    environment = make_env(cfg)
    client = AtroposClient(api)
    info = client.register_env(f"repogym-{cfg.env}", cfg.max_token_length, cfg.group_size)
    say(f"registered as env {info['env_id']} ({info.get('wandb_name')})")
    results: list[GroupResult] = []

    async def on_group(r: GroupResult) -> None:
        results.append(r)
        if r.group is not None:
            await asyncio.to_thread(client.wait_for_room, cfg.group_size, cfg.max_batches_offpolicy)
            await asyncio.to_thread(client.send, r.group)

    chosen = [environment.next_item() for _ in range(cfg.items)]
    asyncio.run(groups(cfg, environment, chosen, cfg.temperature, cfg.group_size, on_group))
    _print_rl(summary(results) | {"api": api}, [f for r in results for f in r.failures])


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
    max_turns: int | None = typer.Option(None, "--max-turns", help="Model calls per rollout (default 10)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens per model call (default 512)."),
) -> None:
    """Greedy evaluation (temperature 0, one rollout per item) on the held-out split."""
    import asyncio

    from repogym.rl.run import groups, make_env, summary

    cfg = _rl_config(
        env,
        data,
        config,
        model=model,
        api_base=api_base,
        server_format=server_format,
        tokenizer=tokenizer,
        chat_template=chat_template,
        parser=parser,
        max_turns=max_turns,
        max_tokens=max_tokens,
    )
    environment = make_env(cfg)
    held_out = environment.items("eval")[: items or None]
    results: list[GroupResult] = []
    asyncio.run(groups(cfg, environment, held_out, 0.0, 1, results.append))
    stats = summary(results)
    console.print(f"{environment.name} held-out: {stats['rollouts']} item(s), accuracy {stats['reward_mean']}")
    _print_rl(stats, [f for r in results for f in r.failures])


def main() -> None:
    """Console entry point: user errors become one line on stderr and their exit status."""
    try:
        app()
    except RepogymError as e:
        err.print(f"error: {e}", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        sys.exit(130)
