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
    from repogym.records import CheckRecord, ValidatedRecord
    from repogym.repo import RepoSource

console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

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

REPO_ARG = typer.Argument(..., help="A git repo, a plain directory, a .tar/.tar.gz or a git URL.")
REF_OPT = typer.Option(None, "--ref", help="Branch, tag or commit (default: HEAD).")
BACKEND_OPT = typer.Option(None, "--backend", help="bwrap (default), podman, docker or process (no isolation).")
TEST_DEPS_OPT = typer.Option(None, "--test-deps", help="Extra test dependency (repeatable).")
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
    err.print(f"[dim]{msg}[/dim]" if console.is_terminal else msg)


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
) -> None:
    """Build the environment: a cached virtualenv (bwrap/process) or an image (podman/docker)."""
    from repogym import environment
    from repogym.repo import open_repo

    src = open_repo(repo, ref, say=say)
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
) -> None:
    """Run the test suite in the sandbox and print per-test outcomes (builds the environment if needed)."""
    import json

    from repogym import environment
    from repogym.repo import open_repo, temp_working_copy

    src = open_repo(repo, ref, say=say)
    spec = environment.prepare(
        src, pick_backend(backend), test_deps=test_deps, test_command=test_command, image=image, say=say
    )
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


@app.command("synth")
def synth_cmd(
    repo: str = REPO_ARG,
    patterns: list[str] = PATTERNS_ARG,
    ref: str | None = REF_OPT,
    strategy: str = typer.Option("procedural", "--strategy", help="Synthesis strategy: procedural (no LLM)."),
    num_candidates: int = typer.Option(10, "--num-candidates", help="How many candidates to make."),
    seed: int = typer.Option(0, "--seed", help="Seed of candidate selection."),
    backend: str | None = BACKEND_OPT,
    output: Path | None = typer.Option(None, "--output", help="Append tasks.jsonl records here."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON lines on stdout."),
) -> None:
    """Synthesize task candidates from a repository (tasks.jsonl records)."""
    from repogym import environment
    from repogym.records import append_record
    from repogym.repo import open_repo, temp_working_copy
    from repogym.synth.coverage import executed_functions
    from repogym.synth.procedural import synthesize

    if strategy != "procedural":
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: procedural")
    src = open_repo(repo, ref, say=say)
    spec = environment.prepare(src, pick_backend(backend), say=say)
    with temp_working_copy(src) as wc:
        with environment.open_env_sandbox(spec, wc) as sb:
            executed = executed_functions(spec, sb)
        records = synthesize(
            src, wc, patterns, num_candidates=num_candidates, seed=seed, avoid=set(), executed=executed
        )
    if not records:
        raise RepogymError(f"no candidates: no tested Python function in files matching {' '.join(patterns)}")
    for rec in records:
        if output:
            append_record(output, rec)
        if as_json or not output:
            print(rec.model_dump_json())
    say(f"{len(records)} candidate(s)" + (f" appended to {output}" if output else ""))


@app.command("validate")
def validate_cmd(
    agent: str = typer.Option("auto", "--agent", help="Validator: auto (no LLM)."),
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
    from repogym.records import TaskRecord, append_record, existing_ids, load_records
    from repogym.repo import open_repo

    if agent != "auto":
        raise RepogymError(f"unknown agent {agent!r}; choose one of: auto")
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
        base = validate.baseline(src, spec)
        try:
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
    strategy: str = typer.Option("procedural", "--strategy", help="Synthesis strategy: procedural."),
    agent: str = typer.Option("auto", "--agent", help="Validator: auto."),
    workers: int = WORKERS_OPT,
    backend: str | None = BACKEND_OPT,
    dockerfile: Path | None = typer.Option(None, "--dockerfile", help="podman/docker: Dockerfile of the image."),
    seed: int = typer.Option(0, "--seed", help="Seed of candidate selection."),
    timeout: float | None = AUTO_TIMEOUT_OPT,
    reruns: int = typer.Option(0, "--reruns", help="Repeat checks 1 and 3 K times to flag flaky tasks."),
    force_fresh: bool = typer.Option(False, "--force-fresh", help="Delete the state files and start over."),
) -> None:
    """Repository in, verified tasks out: environment, synthesis, validation and checks, resumable."""
    from repogym.workflow import Workflow, WorkflowConfig

    if strategy != "procedural":
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: procedural")
    if agent != "auto":
        raise RepogymError(f"unknown agent {agent!r}; choose one of: auto")
    cfg = WorkflowConfig(
        repo=repo,
        ref=ref,
        patterns=patterns,
        state_dir=state_dir,
        num_candidates=num_candidates,
        strategy=strategy,
        agent=agent,
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
