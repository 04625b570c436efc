"""The three LLM-free checks of a validated task, each in a fresh working copy and sandbox.

Tests that fail, error, are skipped or are flaky at the base (spec.base) are left out of every verdict.

1. task state (base + src.diff): every test passes and at least one ran.
2. task state + tests.diff: at least one test fails; those are FAIL_TO_PASS.
3. task state + tests.diff + gold patch (reverse src.diff outside the test files): every test passes, every
   FAIL_TO_PASS test passes, and no test that passed in check 1 (PASS_TO_PASS) fails or goes missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from repogym import baserun
from repogym.environment import EnvSpec, open_env_sandbox, run_tests
from repogym.errors import RepogymError
from repogym.executor import Executor, InfrastructureFailure, LocalExecutor
from repogym.grading import gold_patch, run_solution
from repogym.records import CheckOutcome, CheckRecord, ValidatedRecord
from repogym.repo import GitError, RepoSource, apply_diff, temp_working_copy
from repogym.testresults import TestRun


def _state(wc: Path, rec: ValidatedRecord, tests: bool) -> str | None:
    """Bring a base working copy to the task state (with tests.diff); returns a reason when a diff does not apply."""
    steps = [("src.diff", rec.src_diff)] + ([("tests.diff", rec.tests_diff)] if tests else [])
    for name, patch in steps:
        if not patch.strip():
            return f"{name} is empty"
        try:
            apply_diff(wc, patch)
        except GitError as e:
            return f"{name} does not apply: {e}"
    return None


def run_state(
    src: RepoSource,
    spec: EnvSpec,
    rec: ValidatedRecord,
    tests: bool,
    timeout_s: float,
    excluded: set[str] | None = None,
) -> tuple[TestRun | None, str | None]:
    """Check 1's or 2's run, judged without the ``excluded`` tests (the base's known failures and flaky tests).
    Check 3 runs through the grader (``grading.run_solution``), the same path as every agent's grade."""
    with temp_working_copy(src, prefix="repogym-check-") as wc:
        reason = _state(wc, rec, tests)
        if reason:
            return None, reason
        with open_env_sandbox(spec, wc) as sb:
            return run_tests(spec, sb, timeout_s).without(excluded or set()), None


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
    rec: ValidatedRecord, src: RepoSource, spec: EnvSpec, timeout_s: float = 900.0, reruns: int = 0
) -> CheckRecord:
    """Run the three checks (plus reruns of 1 and 3) and say why a task fails, in words a person can act on."""
    out = CheckRecord(task_id=rec.task_id, ok=False)
    excluded = spec.base.excluded() if spec.base else set()
    first = _checks_1_and_2(rec, src, spec, timeout_s, excluded, out)
    if first is None:
        return out
    for attempt in range(reruns + 1):
        if attempt > 0:
            run1, _ = run_state(src, spec, rec, tests=False, timeout_s=timeout_s, excluded=excluded)
            out.flaky |= run1 is not None and run1.outcomes != first.outcomes
        try:
            gold = gold_patch(src, rec)
        except GitError as e:
            out.checks.append(_outcome("gold_passes", None, False, f"the gold patch does not apply: {e}"))
            out.reason = f"the gold patch does not apply: {e}"
            return out
        run3, reason = run_solution(src, spec, rec, gold, timeout_s, excluded)
        if reason or run3 is None:
            out.checks.append(_outcome("gold_passes", None, False, reason or ""))
            out.reason = reason or "the gold patch could not be applied"
            return out
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
            return out
    out.ok = not out.flaky
    out.reason = "flaky: outcomes differ between reruns" if out.flaky else ""
    return out


def _checks_1_and_2(
    rec: ValidatedRecord, src: RepoSource, spec: EnvSpec, timeout_s: float, excluded: set[str], out: CheckRecord
) -> TestRun | None:
    """Checks 1 and 2 into ``out`` (FAIL_TO_PASS, PASS_TO_PASS); returns check 1's run, None when one failed."""
    run1, reason = run_state(src, spec, rec, tests=False, timeout_s=timeout_s, excluded=excluded)
    if reason or run1 is None:
        out.checks.append(_outcome("task_state", None, False, reason or ""))
        out.reason = reason or "task state could not be built"
        return None
    out.checks.append(_outcome("task_state", run1, run1.all_passed))
    if not run1.all_passed:
        out.reason = _why_task_state(run1)
        return None
    run2, reason = run_state(src, spec, rec, tests=True, timeout_s=timeout_s, excluded=excluded)
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
) -> None:
    """Check records in parallel (threads here, or the executor's units: Ray tasks); ``on_done`` receives each
    result as it completes, in the calling thread. A unit whose worker died every time is a failed record."""
    run = executor or LocalExecutor(workers)
    unit = functools.partial(_safe_check, resolve=resolve, timeout_s=timeout_s, reruns=reruns)
    run.run(unit, records, lambda rec, res: on_done(res if isinstance(res, CheckRecord) else _failed(rec, res)))


def _failed(rec: ValidatedRecord, failure: InfrastructureFailure) -> CheckRecord:
    return CheckRecord(task_id=rec.task_id, ok=False, reason=str(failure))


def _safe_check(
    rec: ValidatedRecord,
    resolve: Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]],
    timeout_s: float,
    reruns: int,
) -> CheckRecord:
    """A task whose repository or environment cannot be opened is a failed record, not a crashed batch."""
    try:
        src, spec = resolve(rec)
        return check_task(rec, src, baserun.ensure(src, spec, timeout_s), timeout_s, reruns)
    except RepogymError as e:
        return CheckRecord(task_id=rec.task_id, ok=False, reason=str(e))
