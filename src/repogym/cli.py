"""The `repogym` command: thin wrappers that build configs and call one library function each."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from repogym import __version__
from repogym.errors import RepogymError

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
