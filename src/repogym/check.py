"""The three LLM-free checks of a validated task: checks 1 and 2 from a working copy at the base, check 3 in a
sealed copy of the task state (what an agent's grade runs in). Each copy is a fresh one with a fresh sandbox, or
(warm, the default of check_many) the worker's kept one, reset or sealed anew, whose runs fork from a server that
has imported pytest (workspace.py).

Tests that fail, error, are skipped or are flaky at the base (spec.base) are left out of every verdict.

1. task state (base + src.diff): every test passes and at least one ran (the whole suite).
2. task state + tests.diff: at least one test fails; those are FAIL_TO_PASS. Only the tests tests.diff adds run
   (the rest of the suite is check 1's), or the whole test files it touches when it does more than add tests
   (added_tests.py), unless it touches a conftest or a non-Python file, or the selection cannot run;
   ``select=False`` runs the whole suite.
3. task state + tests.diff + gold patch (reverse src.diff outside the test files): every test passes, every
   FAIL_TO_PASS test passes, and no test that passed in check 1 (PASS_TO_PASS) fails or goes missing (the whole
   suite).

With ``parallel`` the three runs of a task start together (a worker is free); otherwise each runs only when the
one before it passed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

from repogym import baserun
from repogym.added_tests import added_tests
from repogym.environment import EnvSpec
from repogym.errors import RepogymError
from repogym.executor import Executor, InfrastructureFailure, LocalExecutor
from repogym.grading import gold_patch, run_solution
from repogym.project.imports import importers
from repogym.project.pytest_config import is_test_path
from repogym.records import CheckOutcome, CheckRecord, ValidatedRecord
from repogym.repo import GitError, RepoSource, apply_diff, changed_files
from repogym.testresults import TestRun
from repogym.workspace import kept_warm, workspace

T = TypeVar("T")
Outcome = tuple[TestRun | None, str | None]


def _apply(wc: Path, name: str, patch: str) -> str | None:
    """Apply src.diff or tests.diff to a working copy; returns a reason when it is empty or does not apply."""
    if not patch.strip():
        return f"{name} is empty"
    try:
        apply_diff(wc, patch)
    except GitError as e:
        return f"{name} does not apply: {e}"
    return None


def _text(path: Path) -> str | None:
    return path.read_text(errors="replace") if path.is_file() else None


def run_state(
    src: RepoSource,
    spec: EnvSpec,
    rec: ValidatedRecord,
    tests: bool,
    timeout_s: float,
    excluded: set[str] | None = None,
    select: list[str] | None = None,
    warm: bool = False,
) -> Outcome:
    """Check 1's or 2's run (``select``: only these test files, or only the tests tests.diff adds to them when
    that is all it does (added_tests.py), and the test modules that import them), judged without the
    ``excluded`` tests (the base's known failures and flaky tests); ``warm``: in a kept working copy from the
    pool (see workspace.py). Check 3 runs through the grader (``grading.run_solution``): a sealed copy, as every
    agent's grade."""
    with workspace(src, spec, warm, prefix="repogym-check-") as ws:
        reason = _apply(ws.wc, "src.diff", rec.src_diff)
        before = {f: _text(ws.wc / f) for f in select or []}
        if not reason and tests:
            reason = _apply(ws.wc, "tests.diff", rec.tests_diff)
        if reason:
            return None, reason
        if select is not None:
            added = added_tests(before, {f: _text(ws.wc / f) for f in select})
            # a module that imports a test module runs what it adds
            select = (added if added else select) + importers(ws.wc, select)
        return ws.run(timeout_s, select).without(excluded or set()), None


def touched_test_files(rec: ValidatedRecord) -> list[str] | None:
    """The test modules tests.diff touches, or None when it touches anything else (a conftest, a doctest file)
    whose effect reaches beyond them."""
    files = changed_files(rec.tests_diff)
    ok = all(f.endswith(".py") and is_test_path(f) and f.rsplit("/", 1)[-1] != "conftest.py" for f in files)
    return files if files and ok else None


def _tests_fail_run(
    src: RepoSource,
    spec: EnvSpec,
    rec: ValidatedRecord,
    timeout_s: float,
    excluded: set[str],
    select: bool,
    warm: bool = False,
) -> Outcome:
    """Check 2's run: the test files tests.diff touches, or the whole suite when they cannot run alone."""
    files = touched_test_files(rec) if select and spec.pytest else None
    if files is not None:
        run, reason = run_state(src, spec, rec, True, timeout_s, excluded, select=files, warm=warm)
        if reason or run is None or run.timed_out or (run.outcomes and run.exit_code not in (3, 4, 5)):
            return run, reason
    return run_state(src, spec, rec, tests=True, timeout_s=timeout_s, excluded=excluded, warm=warm)


class _Runs(Generic[T]):
    """A task's check runs by name: each computed once, when first asked for, or all started at once."""

    def __init__(self, fns: dict[str, Callable[[], T]], parallel: bool) -> None:
        self.fns = fns
        self.pool = ThreadPoolExecutor(len(fns)) if parallel else None
        self.futures: dict[str, Future[T]] = {k: self.pool.submit(f) for k, f in fns.items()} if self.pool else {}

    def get(self, name: str) -> T:
        if name not in self.futures:
            fut: Future[T] = Future()
            fut.set_result(self.fns[name]())
            self.futures[name] = fut
        return self.futures[name].result()

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True)


def _outcome(name: str, run: TestRun | None, ok: bool, note: str = "") -> CheckOutcome:
    if run is None:
        return CheckOutcome(name=name, ok=False, note=note)
    return CheckOutcome(
        name=name,
        ok=ok,
        exit_code=run.exit_code,
        timed_out=run.timed_out,
        seconds=round(run.seconds, 3),
        failed_tests=run.failed,
        passed_tests=run.passed,
        note=note or run.note,
    )


def check_task(
    rec: ValidatedRecord,
    src: RepoSource,
    spec: EnvSpec,
    timeout_s: float = 900.0,
    reruns: int = 0,
    select: bool = True,
    parallel: bool = False,
    warm: bool = False,
) -> CheckRecord:
    """Run the three checks (plus reruns of 1 and 3) and say why a task fails, in words a person can act on.
    ``warm``: they run in kept copies from the pool (not with ``parallel``, where the three run at once in fresh
    copies, nor for a task an agent validated)."""
    out = CheckRecord(task_id=rec.task_id, ok=False)
    # Only repogym's own code runs warm: a task an agent validated carries the agent's tests, checked cold.
    warm = warm and not parallel and rec.validator == "auto"
    excluded = spec.base.excluded() if spec.base else set()
    try:
        gold: str | None = gold_patch(src, rec)
        gold_error = ""
    except GitError as e:
        gold, gold_error = None, f"the gold patch does not apply: {e}"

    def solution() -> Outcome:
        return run_solution(src, spec, rec, gold, timeout_s, excluded, warm) if gold is not None else (None, gold_error)

    runs: _Runs[Outcome] = _Runs(
        {
            "task_state": lambda: run_state(src, spec, rec, False, timeout_s, excluded, warm=warm),
            "tests_fail": lambda: _tests_fail_run(src, spec, rec, timeout_s, excluded, select, warm),
            "gold_passes": solution,
        },
        parallel,
    )
    try:
        first = _checks_1_and_2(runs, spec, out)
        if first is not None:
            rerun = functools.partial(run_state, src, spec, rec, False, timeout_s, excluded, warm=warm)
            _check_3(runs, solution, first, rerun, reruns, out)
    finally:
        runs.close()
    return out


def _check_3(
    runs: _Runs[Outcome],
    solution: Callable[[], Outcome],
    first: TestRun,
    task_state: Callable[[], Outcome],
    reruns: int,
    out: CheckRecord,
) -> None:
    """Check 3 (and the reruns of checks 1 and 3) into ``out``."""
    for attempt in range(reruns + 1):
        if attempt > 0:
            run1, _ = task_state()
            out.flaky |= run1 is not None and run1.outcomes != first.outcomes
        run3, reason = runs.get("gold_passes") if attempt == 0 else solution()
        if reason or run3 is None:
            out.checks.append(_outcome("gold_passes", None, False, reason or ""))
            out.reason = reason or "the gold patch could not be applied"
            return
        problem = _why_gold(run3, out.FAIL_TO_PASS, out.PASS_TO_PASS)
        if attempt > 0:
            prev = next(c for c in out.checks if c.name == "gold_passes")
            if sorted(run3.failed) != prev.failed_tests or sorted(run3.passed) != prev.passed_tests:
                out.flaky = True
            out.checks.append(_outcome(f"gold_passes_rerun{attempt}", run3, problem is None))
            continue
        out.checks.append(_outcome("gold_passes", run3, problem is None))
        if problem:
            out.reason = problem
            return
    out.ok = not out.flaky
    out.reason = "flaky: outcomes differ between reruns" if out.flaky else ""


def _checks_1_and_2(runs: _Runs[Outcome], spec: EnvSpec, out: CheckRecord) -> TestRun | None:
    """Checks 1 and 2 into ``out`` (FAIL_TO_PASS, PASS_TO_PASS); returns check 1's run, None when one failed."""
    run1, reason = runs.get("task_state")
    if reason or run1 is None:
        out.checks.append(_outcome("task_state", None, False, reason or ""))
        out.reason = reason or "task state could not be built"
        return None
    out.checks.append(_outcome("task_state", run1, run1.all_passed))
    if not run1.all_passed:
        out.reason = _why_task_state(run1)
        return None
    run2, reason = runs.get("tests_fail")
    if reason or run2 is None:
        out.checks.append(_outcome("tests_fail", None, False, reason or ""))
        out.reason = reason or "tests.diff could not be applied"
        return None
    f2p = sorted(_stable(set(run2.failed), spec))
    ok2 = bool(f2p) and not run2.timed_out
    out.checks.append(_outcome("tests_fail", run2, ok2))
    if not ok2:
        out.reason = (
            "the suite timed out with tests.diff"
            if run2.timed_out
            else "tests.diff makes no test fail: the tests it adds do not exercise what src.diff removed"
        )
        return None
    out.FAIL_TO_PASS = f2p
    out.PASS_TO_PASS = sorted(_stable(set(run1.passed) | set(run2.passed), spec))
    return run1


def _stable(tests: set[str], spec: EnvSpec) -> set[str]:
    """The tests that may be FAIL_TO_PASS or PASS_TO_PASS, when the base run is known (BaseRun.usable)."""
    return spec.base.usable(tests) if spec.base else tests


def _why_task_state(run: TestRun) -> str:
    if run.timed_out:
        return "the suite timed out in the task state"
    if run.source == "junit" and not run.outcomes:
        return "no test ran in the task state"
    failed = run.failed
    return (
        f"{len(failed)} test(s) fail in the task state (src.diff breaks tests it does not remove): "
        + ", ".join(failed[:5])
        if failed
        else f"the suite failed in the task state (exit code {run.exit_code}; {run.note or 'no per-test results'})"
    )


def _why_gold(run: TestRun, f2p: list[str], p2p: list[str]) -> str | None:
    if run.timed_out:
        return "the suite timed out with the gold patch"
    passed = set(run.passed)
    missing_f2p = [t for t in f2p if t not in passed]
    if missing_f2p:
        return f"FAIL_TO_PASS test(s) still fail with the gold patch: {', '.join(missing_f2p[:5])}"
    regressed = [t for t in p2p if t not in passed]
    if regressed:
        return f"PASS_TO_PASS test(s) fail or are missing with the gold patch: {', '.join(regressed[:5])}"
    if run.failed:
        return f"test(s) fail with the gold patch: {', '.join(run.failed[:5])}"
    if not run.all_passed:
        return f"the suite fails with the gold patch (exit code {run.exit_code})"
    return None


def check_many(
    records: list[ValidatedRecord],
    resolve: Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]],
    *,
    workers: int,
    timeout_s: float,
    reruns: int,
    on_done: Callable[[CheckRecord], None],
    executor: Executor[ValidatedRecord, CheckRecord] | None = None,
    select: bool = True,
    warm: bool = True,
) -> None:
    """Check records in parallel (threads here, or the executor's units: Ray tasks); ``on_done`` receives each
    result as it completes, in the calling thread. A unit whose worker died every time is a failed record. With
    more local workers than tasks, a task's three runs start together; otherwise, with ``warm``, each worker's
    checks run in its kept copies (see workspace.py)."""
    run = executor or LocalExecutor(workers)
    parallel = executor is None and workers > len(records)
    unit = functools.partial(
        _safe_check, resolve=resolve, timeout_s=timeout_s, reruns=reruns, select=select, parallel=parallel,
        warm=warm,
    )  # fmt: skip
    with kept_warm():
        run.run(unit, records, lambda rec, res: on_done(res if isinstance(res, CheckRecord) else _failed(rec, res)))


def _failed(rec: ValidatedRecord, failure: InfrastructureFailure) -> CheckRecord:
    return CheckRecord(task_id=rec.task_id, ok=False, reason=str(failure))


def _safe_check(
    rec: ValidatedRecord,
    resolve: Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]],
    timeout_s: float,
    reruns: int,
    select: bool = True,
    parallel: bool = False,
    warm: bool = False,
) -> CheckRecord:
    """A task whose repository or environment cannot be opened is a failed record, not a crashed batch."""
    try:
        src, spec = resolve(rec)
        base = baserun.ensure(src, spec, timeout_s)
        return check_task(rec, src, base, timeout_s, reruns, select, parallel, warm)
    except RepogymError as e:
        return CheckRecord(task_id=rec.task_id, ok=False, reason=str(e))
