"""The suite at the base commit, recorded as a fact rather than used as a gate.

Two runs at the base: modules that cannot be collected are ignored (named, with pytest's reason), tests that
fail, error or are skipped are known failures, tests whose outcome differs between the runs are flaky. All of
them are excluded from FAIL_TO_PASS / PASS_TO_PASS and from the checks' verdicts. A repository is refused only
when no test passes at the base, with the runner's own last lines.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable
from pathlib import Path

from repogym.environment import BaseRun, EnvSpec, open_env_sandbox, prepare, run_tests
from repogym.errors import RepogymError
from repogym.project import pytest_config
from repogym.project.pytest_config import is_test_path
from repogym.repo import RepoSource, cache_dir, temp_working_copy
from repogym.testresults import DOC_SUFFIXES, TestRun, test_location

KEEP_GOING = "--continue-on-collection-errors"
RECORD_FORMAT = 5  # in the cache file's name: a new way of judging the base run records it anew


def _run(src: RepoSource, spec: EnvSpec, timeout_s: float) -> TestRun:
    probe = spec.model_copy(update={"run_command": f"{spec.run_command} {KEEP_GOING}"}) if spec.pytest else spec
    with temp_working_copy(src) as wc, open_env_sandbox(probe, wc) as sb:
        return run_tests(probe, sb, timeout_s)


def record(
    src: RepoSource, spec: EnvSpec, timeout_s: float = 900.0, say: Callable[[str], None] | None = None
) -> EnvSpec:
    """The spec with its base run recorded (``spec.base``) and uncollectable modules ignored in run_command.

    Raises RepogymError, quoting the runner, when no test passes at the base.
    """
    say = say or (lambda _m: None)
    spec = spec.model_copy(deep=True)
    first = _run(src, spec, timeout_s)
    if spec.pytest and not first.outcomes and "unrecognized arguments" in first.output:
        spec, first = _without_unknown_addopts(src, spec, first, timeout_s)
    ignored = _ignore_modules(src, spec, first)
    second = _run(src, spec, timeout_s)
    base = _source_doctests_apart(src, facts(first, second, ignored))
    if not base.passed:
        raise RepogymError(_refusal(src, spec, second if second.output else first))
    spec.base = base
    spec.notes += [f"ignored at the base: {m} ({why})" for m, why in ignored.items()]
    say(
        f"base run: {len(base.passed)} passed, {len(base.known_failures)} known failures, {len(base.flaky)} flaky, "
        f"{len(ignored)} module(s) ignored, {len(base.in_source)} doctest(s) of source modules set apart"
    )
    return spec


def _ignore_modules(src: RepoSource, spec: EnvSpec, run: TestRun) -> dict[str, str]:
    """--ignore each module that failed to collect; returns module path -> pytest's reason."""
    if not spec.pytest or not run.collection_errors:
        return {}
    ignored: dict[str, str] = {}
    with temp_working_copy(src) as wc:
        for name, why in run.collection_errors.items():
            path = _module_path(wc, name)
            if path:
                ignored[path] = why
    if ignored:
        spec.add_pytest_args([f"--ignore={p}" for p in sorted(ignored)])
    return ignored


def _module_path(wc: Path, name: str) -> str | None:
    """The file or folder of a collection-error name (``tests.test_x`` or ``tests/test_x.py``)."""
    for rel in (name, name.replace(".", "/") + ".py", name.replace(".", "/")):
        if rel and (wc / rel).exists():
            return rel
    return None


def _source_doctests_apart(src: RepoSource, base: BaseRun) -> BaseRun:
    """Doctests that live in source modules (--doctest-modules) cannot be taken out of a task's source: they
    are recorded apart and judged by no check."""
    with temp_working_copy(src) as wc:
        in_source = sorted(t for t in base.passed if _in_source_module(wc, t))
    if in_source:
        base.passed = [t for t in base.passed if t not in set(in_source)]
        base.in_source = in_source
    return base


def _in_source_module(wc: Path, test_id: str) -> bool:
    try:
        rel = test_location(wc, test_id)[0]
    except ValueError:
        return False
    return not is_test_path(rel) and Path(rel).suffix not in DOC_SUFFIXES


def facts(first: TestRun, second: TestRun, ignored: dict[str, str]) -> BaseRun:
    """Flaky: outcomes differ between the runs, or the id is in one run only (a parameter that holds the time);
    known failures: failed, errored or skipped; passed: passed in both."""
    noise = set(first.collection_errors)
    ids = (set(first.outcomes) | set(second.outcomes)) - {t for t in first.outcomes if t.split("::")[-1] in noise}
    flaky = sorted(t for t in ids if first.outcomes.get(t) != second.outcomes.get(t))
    known = {t: o for run in (first, second) for t, o in run.outcomes.items() if t in ids and o != "passed"}
    known = {t: o for t, o in known.items() if t not in flaky}
    passed = sorted(t for t in ids if t not in known and t not in flaky)
    return BaseRun(
        passed=passed,
        known_failures=dict(sorted(known.items())),
        flaky=flaky,
        ignored_modules=ignored,
        seconds=round(max(first.seconds, second.seconds), 2),
    )


def _without_unknown_addopts(src: RepoSource, spec: EnvSpec, run: TestRun, timeout_s: float) -> tuple[EnvSpec, TestRun]:
    """pytest refused options of the project's addopts (a plugin that could not be installed): drop them."""
    m = re.search(r"unrecognized arguments: (.*)", run.output)
    unknown = {a.split("=")[0] for a in (m.group(1).split() if m else [])}
    with temp_working_copy(src) as wc:
        config = pytest_config.read(wc)
    kept = [a for a in config.addopts if a.split("=")[0] not in unknown]
    if len(kept) == len(config.addopts):
        return spec, run
    spec.add_pytest_args([f"--override-ini=addopts={shlex.join(kept)}"])
    spec.notes.append(f"pytest did not know {' '.join(sorted(unknown))} from {config.path} addopts: dropped")
    return spec, _run(src, spec, timeout_s)


def _refusal(src: RepoSource, spec: EnvSpec, run: TestRun) -> str:
    tried = "; ".join(spec.notes[-12:]) or "nothing detected"
    return (
        f"{src.name}: no test passes at the base commit (exit code {run.exit_code}"
        f"{', timed out' if run.timed_out else ''}). The test runner's last lines:\n{run.tail()}\n"
        f"repogym ran `{spec.run_command}` after: {tried}.\n"
        "Pass --test-deps PACKAGE for a missing dependency, or --test-command CMD to run the suite another way."
    )


def _cache_path(spec: EnvSpec, src: RepoSource) -> Path:
    name = f"{spec.repo_name.replace('#', '__')}-{spec.backend}-{spec.key}-{src.commit_sha[:12]}-v{RECORD_FORMAT}.json"
    return cache_dir() / "bases" / name


_LOCK = threading.Lock()


def ensure(
    src: RepoSource, spec: EnvSpec, timeout_s: float = 900.0, say: Callable[[str], None] | None = None
) -> EnvSpec:
    """``spec`` with its base run: the one it has, the one recorded for this environment and commit, or a new
    one (recorded once, even when worker threads ask together)."""
    if spec.base is not None:
        return spec
    with _LOCK:
        cached = _cache_path(spec, src)
        if cached.exists():
            stored = EnvSpec.model_validate_json(cached.read_text())
            return stored.model_copy(update={"venv": spec.venv, "image": spec.image})
        spec = record(src, spec, timeout_s, say)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(spec.model_dump_json(indent=2))
        return spec


def prepare_with_base(
    src: RepoSource,
    backend: str,
    *,
    test_deps: list[str] | None = None,
    test_command: str | None = None,
    dockerfile: Path | None = None,
    image: str | None = None,
    timeout_s: float = 900.0,
    say: Callable[[str], None] | None = None,
) -> EnvSpec:
    """``environment.prepare`` plus the base run (``ensure``)."""
    spec = prepare(
        src, backend, test_deps=test_deps, test_command=test_command, dockerfile=dockerfile, image=image, say=say
    )
    return ensure(src, spec, timeout_s, say)
