"""Turn a synthesized task into src.diff + tests.diff.

`auto` (no LLM): apply the candidate, run the suite, and take the tests that now fail as the feature's tests.
src.diff removes the feature and exactly those test functions; tests.diff adds the test functions back.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from repogym import baserun, describe, patches, testresults
from repogym.agents.external import ExternalAgentConfig, external_trajectory
from repogym.agents.loop import AgentConfig, Trajectory, run_agent
from repogym.environment import BaseRun, EnvSpec, open_env_sandbox
from repogym.errors import PatchError, RepogymError
from repogym.executor import Executor, InfrastructureFailure, LocalExecutor
from repogym.llm import LLM, ModelConfig
from repogym.project.imports import importers
from repogym.project.pytest_config import is_test_path
from repogym.records import RejectedRecord, TaskRecord, ValidatedRecord, append_record, existing_ids, read_jsonl
from repogym.repo import RepoSource, changed_files, diff, git, reversed_diff, temp_working_copy
from repogym.synth.coverage import CoverageMap
from repogym.testresults import TestRun
from repogym.workspace import Workspace, kept_warm, workspace

COLLECTION_ERROR_CODES = (2, 3, 4, 5)  # pytest: interrupted, internal error, usage error, no tests collected
KILLED_CODES = (-9, 137)  # SIGKILL: the sandbox's memory or process limit
MAX_REPAIRS = 3
SELECTED_START_S = 10.0  # the least a selected run is allowed for the runner's start and collection


class Rejected(RepogymError):
    """A candidate that cannot become a task; the message is the reason."""


@dataclass
class Baseline:
    """The suite at the base commit (recorded in spec.base): validation compares every candidate against it."""

    spec: EnvSpec

    @property
    def facts(self) -> BaseRun:
        assert self.spec.base is not None
        return self.spec.base

    @property
    def passing(self) -> set[str]:
        """Tests that pass in every base run: the only ones that may become FAIL_TO_PASS or PASS_TO_PASS."""
        return set(self.facts.passed)

    @property
    def excluded(self) -> set[str]:
        return self.facts.excluded()

    def timeout(self) -> float:
        """A suite run that takes 10x longer than at the base is stuck (a mutation can loop forever)."""
        return max(60.0, 10 * self.facts.seconds)


def baseline(src: RepoSource, spec: EnvSpec, timeout_s: float = 900.0) -> Baseline:
    """The recorded base run of ``spec``, recording it first when it is not there yet."""
    return Baseline(spec if spec.base is not None else baserun.record(src, spec, timeout_s))


def validate_auto(
    task: TaskRecord,
    src: RepoSource,
    spec: EnvSpec,
    base: Baseline,
    timeout_s: float = 900.0,
    max_fail_fraction: float = 0.5,
    coverage: CoverageMap | None = None,
    writer: IssueWriter | None = None,
    warm: bool = False,
) -> ValidatedRecord:
    """Validate one candidate without an LLM; raises Rejected with the reason when it cannot be a task. With a
    ``writer``, the description is an issue a model wrote from the failures (the template otherwise).

    With a coverage map (change-aware validation) only the tests that execute the changed lines run with the
    change (and the opaque ones, see synth/coverage.py), and only the test files the task moves run in the task
    state, when removing the failing tests can break anything but themselves: a test that executes no changed
    line behaves as at the base. A change to lines run at import (but a function's header), or a selection the
    runner cannot take, runs the whole suite; checks 1 and 3 run the whole suite of every task that survives.
    ``warm``: in a kept working copy from the pool, whose runs fork from a server that has imported pytest (see
    workspace.py).
    """
    with workspace(src, spec, warm) as ws:
        wc = ws.wc
        try:
            applied = patches.apply(patches.parse(task.patches), wc)
        except PatchError as e:
            raise Rejected(f"the candidate's patch does not apply: {e}") from e
        changed = [PurePosixPath(f).as_posix() for f in applied.files]
        _mark_changed(wc, changed)
        before = {PurePosixPath(f).as_posix(): text for f, text in applied.before.items()}
        selection = _selection(coverage, task.lines or changed_lines(wc), spec, before)
        run, failing, selected = _with_change(ws, base, timeout_s, max_fail_fraction, selection, coverage)
        # Change-aware, the task state runs only what the removal can touch, after a whole run as after a
        # selected one: either saw every test the change can alter.
        test_files = separate_tests(ws, base, failing, changed, timeout_s, subset=coverage is not None)
        src_diff = ws.diff(src.commit_sha)
        if not set(changed) <= set(changed_files(src_diff)):
            raise Rejected(f"the source change is missing from src.diff (files {', '.join(changed)})")
        # tests.diff takes the test files back to the base: src.diff's sections of them, reversed; where one is not
        # plain text, git says (-R swaps the sides and their prefixes, so they are named the other way round to
        # read a/ -> b/ as every diff does; the task state adds no test file, so the work tree's diff has them all).
        tests_diff = reversed_diff(src_diff, test_files)
        if tests_diff is None:
            tests_diff = git(["diff", "--binary", "-R", "--src-prefix=b/", "--dst-prefix=a/", src.commit_sha, "--",
                              *test_files], cwd=wc)  # fmt: skip
    passing = set(run.passed) | (base.passing - set(run.outcomes)) if selected else set(run.passed)
    record = ValidatedRecord(
        task_id=task.task_id,
        repo=task.repo,
        container=spec.image or spec.venv or spec.backend,
        **{"src.diff": src_diff, "tests.diff": tests_diff},
        commit_sha=src.commit_sha,
        task_description=describe_failures(task, run, failing),
        commit_message=f"{task.subject}\n\nFails: {', '.join(failing)}",
        validator="auto",
        log=f"{len(failing)} test(s) fail with the change; "
        + (f"{len(run.outcomes)} selected test(s) ran" if selected else f"{len(run.passed)} pass"),
        FAIL_TO_PASS=failing,
        PASS_TO_PASS=sorted(base.passing & passing - set(failing)),
        changes=task.changes,
    )
    if writer is not None:
        text, usage = writer(task, run, failing)
        record = record.model_copy(
            update={"task_description": text, "description_style": "issue", "description_usage": usage}
        )
    return record


class IssueWriter:
    """Writes a task's description as an issue, with a model, from what a user sees of the failures (never the
    diff, never the changed function's name); picklable, so a Ray worker can run it."""

    def __init__(self, model: ModelConfig) -> None:
        self.model = model

    def __call__(self, task: TaskRecord, run: TestRun, failing: list[str]) -> tuple[str, dict[str, Any]]:
        symbols = task.changed_symbols or [task.subject.split(" in ", 1)[-1].split(" (", 1)[0]]
        try:
            return describe.issue_description(self.model, run, failing, symbols)
        except describe.DescriptionError as e:
            if isinstance(e.__cause__, describe.DescriptionError):
                raise Rejected(str(e)) from e  # the model never left the name out
            raise  # the endpoint: every candidate would meet it, so the stage stops and says so


def _selection(
    coverage: CoverageMap | None, lines: dict[str, list[int]], spec: EnvSpec, before: dict[str, str | None]
) -> list[str] | None:
    """The tests to run with the change (of ``lines`` of the base files ``before``), or None for the whole suite
    (no map, a change at import time other than a function's header)."""
    if coverage is None or not spec.pytest or not lines:
        return None
    if coverage.at_import(lines):
        through = coverage.through_calls(lines, before)
        if through is None:
            return None
        lines = through
    selection = coverage.selection(lines)
    if not selection:
        raise Rejected("no test executes the changed lines (per the coverage map)")
    return selection


def selected_timeout(coverage: CoverageMap | None, tests: list[str], base: Baseline) -> float:
    """A run of selected tests that takes 10x what they would take untraced, plus a base run's time for the
    runner's start, is stuck: a mutation that loops costs seconds, not the suite's timeout. Untraced: their
    traced seconds scaled by the base run's time over the traced suite's (tracing slows CPU-bound tests 10-20x)."""
    if coverage is None:
        return max(SELECTED_START_S, base.facts.seconds)
    traced = coverage.seconds_of(tests)
    slowdown = max(1.0, coverage.traced_seconds() / base.facts.seconds) if base.facts.seconds else 1.0
    return max(SELECTED_START_S, base.facts.seconds) + 10 * traced / slowdown


def _with_change(
    ws: Workspace,
    base: Baseline,
    timeout_s: float,
    max_fail_fraction: float,
    selection: list[str] | None,
    coverage: CoverageMap | None,
) -> tuple[TestRun, list[str], bool]:
    """(the run with the change, the tests it makes fail, whether only a selection ran)."""
    if selection is not None:
        limit = min(timeout_s, selected_timeout(coverage, selection, base))
        run = ws.run(limit, selection)
        if _selection_ran(run, base):
            return run, _failing(run, base, limit, max_fail_fraction), True
    run = ws.run(timeout_s)
    return run, _failing(run, base, timeout_s, max_fail_fraction), False


def _selection_ran(run: TestRun, base: Baseline) -> bool:
    """Whether a selected run can be trusted: it ran tests the base run knows (same ids), without a usage error
    (a node id pytest could not find) or a collection error. A timeout or a kill counts: the whole suite would
    meet the same loop."""
    if run.timed_out or run.exit_code in KILLED_CODES:
        return True
    known = base.passing | base.excluded
    return bool(run.outcomes) and run.exit_code not in (2, 3, 4, 5) and bool(set(run.outcomes) & known)


def changed_lines(wc: Path) -> dict[str, list[int]]:
    """File -> base lines the working copy's uncommitted change replaces (an insertion: the lines around it)."""
    out: dict[str, list[int]] = {}
    path = ""
    for line in git(["diff", "-U0", "--no-color", "--no-ext-diff", "HEAD"], cwd=wc).splitlines():
        if line.startswith("--- "):
            path = line[6:] if line.startswith("--- a/") else ""
        m = re.match(r"@@ -(\d+)(?:,(\d+))? ", line)
        if m and path:
            start, count = int(m.group(1)), int(m.group(2) or 1)
            out.setdefault(path, []).extend(range(start, start + count) if count else (start, start + 1))
    return out


def _mark_changed(wc: Path, files: list[str]) -> None:
    """A same-size edit in the second of the checkout looks unchanged to git's stat check: move its mtime on."""
    later = time.time_ns() + 2_000_000_000
    for rel in files:
        os.utime(wc / rel, ns=(later, later))


def _failing(run: TestRun, base: Baseline, timeout_s: float, max_fail_fraction: float) -> list[str]:
    """The base-passing tests that the change makes fail; Rejected when there are none or too many."""
    if run.timed_out:
        raise Rejected(f"the suite timed out after {timeout_s:.0f}s with the change")
    if run.exit_code in KILLED_CODES:
        raise Rejected(f"the suite was killed with the change (exit code {run.exit_code}: out of memory or a limit)")
    if run.source == "junit" and run.exit_code in COLLECTION_ERROR_CODES or not run.outcomes:
        raise Rejected(f"the suite errors at collection with the change (exit code {run.exit_code})")
    failing = sorted(set(run.failed) & base.passing)
    if not failing:
        raise Rejected("no test fails with the change: the changed code is not covered by the tests")
    if len(failing) > max_fail_fraction * len(base.passing):
        raise Rejected(
            f"{len(failing)} of {len(base.passing)} tests fail: the change breaks the program as a whole, "
            "not one behaviour (raise --max-fail-fraction to keep such tasks)"
        )
    return failing


def separate_tests(
    ws: Workspace,
    base: Baseline,
    failing: list[str],
    source_files: list[str],
    timeout_s: float,
    subset: bool = False,
) -> list[str]:
    """Remove the failing tests from the changed working copy so that the rest of the suite passes; returns
    the test files touched (they become tests.diff).

    First surgically (the functions, methods or parametrized functions that produce the failing tests); then, as
    long as the task state still has failing tests or modules that no longer collect, the whole modules move
    into tests.diff (their passing tests come back as PASS_TO_PASS). Rejected when that cannot work. ``subset``:
    the run with the change ran every test whose outcome it can alter; the task state then runs only the touched
    test files that remain and the test modules that import them, and nothing when the removal is local (see
    ``_removal_is_local``).
    """
    wc, whole = ws.wc, set[str]()
    for _ in range(MAX_REPAIRS):
        files = remove_tests(wc, failing, whole)
        if set(source_files) & set(files):
            raise Rejected("the change touches a test file")
        if subset:
            left = [f for f in files if (wc / f).is_file() and f.endswith(".py")]
            importing = importers(wc, files)  # a removal can break the modules that import it
            if not left or not importing and _removal_is_local(wc, files, failing):
                return files
            left += importing
            run = ws.run(timeout_s, left)
            if not _selection_ran(run, base):
                run = ws.run(timeout_s)
        else:
            run = ws.run(timeout_s)
        problems = _task_state_problems(run, base)
        if not problems:
            return files
        more = {_test_file(wc, t) for t in problems}
        if more <= whole:
            break
        git(["checkout", "-q", "HEAD", "--", *files], cwd=wc)  # the base's test files, then remove anew
        whole |= more
    raise Rejected(f"the task state fails without the feature's tests: {', '.join(sorted(problems)[:5])}")


def _removal_is_local(wc: Path, files: list[str], failing: list[str]) -> bool:
    """Whether removing the failing test functions can change nothing but their own outcomes: each file lost only
    functions (no whole module moved), still parses, and names none of them anywhere else, as a word of its text
    (a helper another test calls, a base class, an alias; a comment or a string that names one counts too); no
    other module imports it (checked by the caller). Then every test left in the task state behaves as it did with
    the change, where the selected run saw it pass: it needs no run of its own."""
    if not all((wc / rel).is_file() and rel.endswith(".py") for rel in files):
        return False
    removed: dict[str, set[str]] = {}
    for tid in failing:
        rel, _classes, func = test_location(wc, tid)
        removed.setdefault(rel, set()).add(func)
    for rel in files:
        if rel not in removed:
            return False
        try:
            text = (wc / rel).read_text(encoding="utf-8")
            ast.parse(text, rel)
        except (SyntaxError, ValueError):  # UnicodeDecodeError is a ValueError
            return False
        names = "|".join(map(re.escape, sorted(removed[rel])))
        if re.search(rf"(?<!\w)(?:{names})(?!\w)", text):
            return False
    return True


def _task_state_problems(run: TestRun, base: Baseline) -> set[str]:
    """Tests that fail in the task state (base exclusions aside) and modules that no longer collect."""
    if run.timed_out:
        raise Rejected("the suite times out in the task state")
    judged = run.without(base.excluded)
    failed = {t for t in judged.failed if t.split("::")[-1] not in run.collection_errors}
    problems = failed | set(run.collection_errors)
    if not problems and not judged.passed:
        raise Rejected("no test runs in the task state")
    return problems


def _changed(wc: Path) -> list[str]:
    git(["add", "-A"], cwd=wc)
    return [line for line in git(["diff", "--cached", "--name-only"], cwd=wc).splitlines() if line]


def describe_failures(task: TaskRecord, run: TestRun, failing: list[str]) -> str:
    """The task description plus the behaviour the hidden tests check, named by test, never by transform."""
    names = [t.split("::")[-1] for t in failing]
    shown = ", ".join(f"`{n}`" for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{task.task_description}\n\nThe behaviour is checked by tests such as {shown}."


def test_location(wc: Path, test_id: str) -> tuple[str, list[str], str]:
    """testresults.test_location, with a Rejected when the file cannot be found."""
    try:
        return testresults.test_location(wc, test_id)
    except ValueError as e:
        raise Rejected(str(e)) from e


def _test_file(wc: Path, test_id: str) -> str:
    rel = test_location(wc, test_id)[0]
    if not _movable(rel):
        raise Rejected(f"test {test_id!r} lives in {rel}, which is not a test module (a doctest?)")
    return rel


def _movable(rel: str) -> bool:
    """Test modules, and text files of doctests, may move into tests.diff; source modules never."""
    return is_test_path(rel) or Path(rel).suffix in testresults.DOC_SUFFIXES


def remove_tests(wc: Path, test_ids: list[str], whole: set[str] | None = None) -> list[str]:
    """Delete the test functions (with their decorators) by AST positions, or whole modules (those in
    ``whole``, and those where a test is not defined in its own class: inherited); returns the files changed."""
    whole = set(whole or ())
    targets: dict[str, set[tuple[tuple[str, ...], str]]] = {}
    for tid in test_ids:
        rel, classes, func = test_location(wc, tid)
        if not _movable(rel):
            raise Rejected(f"test {tid!r} lives in {rel}, which is not a test module (a doctest?)")
        targets.setdefault(rel, set()).add((tuple(classes), func))
    for rel, wanted in targets.items():
        if rel not in whole and not _remove_functions(wc / rel, wanted):
            whole.add(rel)
    for rel in sorted(whole):
        if rel.rsplit("/", 1)[-1] != "conftest.py":
            (wc / rel).unlink(missing_ok=True)
    return sorted(set(targets) | whole)


def _remove_functions(path: Path, wanted: set[tuple[tuple[str, ...], str]]) -> bool:
    """Cut the wanted functions out of ``path``; False (and no change) when one of them is not there."""
    if path.suffix != ".py":
        return False
    with path.open(newline="") as f:  # line endings as they are: a CRLF file stays CRLF
        text = f.read()
    spans = sorted(_function_spans(ast.parse(text), wanted), key=lambda span: span[2], reverse=True)  # last first
    if len({(c, f) for c, f, *_ in spans}) < len(wanted):
        return False
    lines = re.split(r"(?<=\n)", text)  # lines as the parser counts them (not at form feeds, as splitlines does)
    ending = "\r\n" if "\r\n" in text else "\n"
    for _c, _f, first, last, indent, to_pass in spans:
        while not to_pass and last < len(lines) and not lines[last].strip():
            last += 1  # the blank lines after the function go with it
        lines[first - 1 : last] = [f"{indent}pass{ending}"] if to_pass else []
    with path.open("w", newline="") as f:
        f.write("".join(lines))
    return True


def _function_spans(
    tree: ast.Module, wanted: set[tuple[tuple[str, ...], str]]
) -> list[tuple[tuple[str, ...], str, int, int, str, bool]]:
    """(class path, name, first line, last line, indent, whether it becomes `pass`) of each wanted function: the
    first of a body that would be left empty (a class whose every test goes) becomes `pass`."""
    out: list[tuple[tuple[str, ...], str, int, int, str, bool]] = []

    def visit(body: list[ast.stmt], classes: tuple[str, ...]) -> None:
        def goes(node: ast.stmt) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
            return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (classes, node.name) in wanted

        emptied = all(goes(node) for node in body)
        for i, node in enumerate(body):
            if isinstance(node, ast.ClassDef):
                visit(node.body, (*classes, node.name))
            elif goes(node):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                end = node.end_lineno or node.lineno
                out.append((classes, node.name, first, end, " " * node.col_offset, emptied and i == 0))

    visit(tree.body, ())
    return out


AGENT_PROTOCOL = """\
You turn a proposed feature removal into a verified benchmark task. The repository is at /repo (a git work
tree; the environment is ready). Run the test suite only with exactly this command:

    {test_command}

Do at most {max_runs} suite runs in all. Steps:
1. Read how the feature below is implemented.
2. Find the tests that exercise it; if there are none or too few, write focused tests for it in the test files.
   Run the suite until it passes, then commit the tests: git add -A && git commit -q -m "tests for the feature".
   Make no other commit.
3. Remove the feature from the source code, without touching any test (the proposed patch below is a guide).
4. Run the suite and confirm that at least one of the feature's tests fails.
5. Delete exactly those failing test functions (leave the commit alone; just edit the files), and confirm that
   the suite passes.
6. Call submit(). repogym then writes src.diff (your source change plus the removed tests) and tests.diff
   (the tests added back) from the git history.
{tips}
<feature>
{subject}

{description}
</feature>

<proposed_patch>
{patches}
</proposed_patch>
"""


class BuiltinRunner:
    """The built-in agent, in a sandbox over the working copy (which it sees at /repo)."""

    def __init__(self, model: ModelConfig, agent: AgentConfig) -> None:
        self.model, self.agent = model, agent
        self.validator = f"agent:{model.model}"

    def test_command(self, spec: EnvSpec, wc: Path) -> str:
        return spec.run_command

    def run(self, prompt: str, spec: EnvSpec, wc: Path) -> Trajectory:
        import asyncio

        async def go() -> Trajectory:
            llm = LLM(self.model)
            try:
                with open_env_sandbox(spec, wc) as sb:
                    return await run_agent(llm, sb, "You are a careful software engineer.", prompt, self.agent)
            finally:
                await llm.close()

        return asyncio.run(go())


class ExternalRunner:
    """An external coding agent (codex, mini-swe-agent) on the host, in the working copy; its one way to run
    the suite is repogym's sandbox, through `repogym env test DIR --in-place`."""

    def __init__(self, cfg: ExternalAgentConfig, log_dir: Path) -> None:
        self.cfg, self.log_dir = cfg, log_dir
        self.validator = f"{cfg.agent}:{cfg.model}"

    def test_command(self, spec: EnvSpec, wc: Path) -> str:
        repogym = f"{shlex.quote(sys.executable)} -m repogym"
        return f"{repogym} env test {shlex.quote(str(wc))} --in-place --backend {spec.backend}"

    def run(self, prompt: str, spec: EnvSpec, wc: Path) -> Trajectory:
        text = prompt.replace("/repo", str(wc))
        return external_trajectory(self.cfg, text, wc, self.log_dir / f"{wc.name}.log.jsonl")


def validate_with_agent(
    task: TaskRecord, src: RepoSource, spec: EnvSpec, runner: BuiltinRunner | ExternalRunner, tips: str = ""
) -> tuple[ValidatedRecord, Trajectory]:
    """The Build-A-Bench validation protocol, run by an agent in a working copy.

    The agent commits the feature's tests once, then leaves the removal (source change and removed tests)
    uncommitted: src.diff = base -> work tree, tests.diff = work tree -> that commit, on the test files.
    """
    with temp_working_copy(src, prefix="repogym-agent-validate-") as wc:
        prompt = AGENT_PROTOCOL.format(
            test_command=runner.test_command(spec, wc),
            max_runs=6,
            tips=f"\nTips from earlier tasks:\n{tips}\n" if tips else "",
            subject=task.subject,
            description=task.task_description,
            patches=task.patches,
        )
        traj = runner.run(prompt, spec, wc)
        if traj.stop_reason != "submitted":
            raise Rejected(
                f"the agent stopped without submitting ({traj.stop_reason}{': ' + traj.error if traj.error else ''})"
            )
        head = git(["rev-parse", "HEAD"], cwd=wc).strip()
        if head == src.commit_sha:
            raise Rejected("the agent did not commit the feature's tests")
        test_files = [f for f in git(["diff", "--name-only", src.commit_sha, head], cwd=wc).splitlines() if f]
        test_files += [f for f in _changed(wc) if is_test_path(f) and f not in test_files]
        src_diff = diff(wc, src.commit_sha)
        tree = git(["write-tree"], cwd=wc).strip()  # the work tree, as diff() staged it
        tests_diff = git(["diff", "--binary", tree, "HEAD", "--", *test_files], cwd=wc) if test_files else ""
    if not tests_diff.strip():
        raise Rejected("the agent removed no test: tests.diff would be empty")
    record = ValidatedRecord(
        task_id=task.task_id,
        repo=task.repo,
        container=spec.image or spec.venv or spec.backend,
        **{"src.diff": src_diff, "tests.diff": tests_diff},
        commit_sha=src.commit_sha,
        task_description=task.task_description,
        commit_message=f"Add {task.subject}",
        validator=runner.validator,
        log=f"{traj.turns} turns, {traj.tool_calls} tool calls, stop: {traj.stop_reason}",
        tips=tips,
    )
    return record, traj


class CandidateValidator:
    """Validate one candidate (auto, or with an agent) into a record or a rejection; picklable, so a Ray worker
    can run it. The base run and the coverage map (change-aware validation; None runs the whole suite) are
    computed once, before, and travel with it."""

    def __init__(
        self,
        src: RepoSource,
        spec: EnvSpec,
        runner: BuiltinRunner | ExternalRunner | None = None,
        tips: str = "",
        timeout_s: float | None = None,
        max_fail_fraction: float = 0.5,
        coverage: CoverageMap | None = None,
        writer: IssueWriter | None = None,
        warm: bool = True,
    ) -> None:
        self.src, self.spec, self.runner, self.tips = src, spec, runner, tips
        self.warm = warm
        self.base = Baseline(spec)
        self.timeout_s = timeout_s or self.base.timeout()
        self.max_fail_fraction = max_fail_fraction
        self.coverage, self.writer = coverage, writer

    def __call__(self, task: TaskRecord) -> ValidatedRecord | RejectedRecord:
        try:
            if self.runner is not None:
                return validate_with_agent(task, self.src, self.spec, self.runner, self.tips)[0]
            return validate_auto(
                task, self.src, self.spec, self.base, self.timeout_s, self.max_fail_fraction, self.coverage,
                self.writer, self.warm,
            )  # fmt: skip
        except Rejected as e:
            return RejectedRecord(task_id=task.task_id, strategy=task.strategy, reason=str(e))


def _failing_of(validated_path: Path) -> dict[str, set[str]]:
    """Task id -> FAIL_TO_PASS of the records already validated (a combined candidate's members)."""
    if not validated_path.exists():
        return {}
    return {
        str(o["task_id"]): set(o.get("FAIL_TO_PASS") or [])
        for _, o in read_jsonl(validated_path)
        if isinstance(o, dict) and "task_id" in o
    }


def _unless_interacting(
    task: TaskRecord, res: ValidatedRecord, failing: dict[str, set[str]]
) -> ValidatedRecord | RejectedRecord:
    """A combined candidate is a task only when its failing tests are the union of its members': otherwise its
    changes interact (one undoes what another breaks, or together they break more), and fixing it is not fixing
    each change."""
    if not all(m in failing for m in task.members):
        return res
    union = set().union(*(failing[m] for m in task.members))
    got = set(res.FAIL_TO_PASS or [])
    if got == union:
        return res
    diff = sorted(union - got) + sorted(got - union)
    return RejectedRecord(
        task_id=task.task_id,
        strategy=task.strategy,
        reason=f"the changes interact: {len(union - got)} of the members' failing tests pass together and "
        f"{len(got - union)} others fail ({', '.join(diff[:3])})",
    )


def validate_many(
    tasks: list[TaskRecord],
    validator: Callable[[TaskRecord], ValidatedRecord | RejectedRecord],
    validated_path: Path,
    rejected_path: Path,
    *,
    workers: int = 1,
    executor: Executor[TaskRecord, ValidatedRecord | RejectedRecord] | None = None,
    on_done: Callable[[ValidatedRecord | RejectedRecord], None] | None = None,
) -> list[ValidatedRecord | RejectedRecord]:
    """Validate the candidates neither file has decided yet, appending each verdict as it comes (to
    ``validated_path`` or ``rejected_path``), so a killed run resumes without deciding anything twice. A unit
    whose worker died every time is a rejection that names the infrastructure failure."""
    done = existing_ids(validated_path) | existing_ids(rejected_path)
    todo = [t for t in tasks if t.task_id not in done]
    out: list[ValidatedRecord | RejectedRecord] = []
    failing = _failing_of(validated_path) if any(t.members for t in todo) else {}

    def record(task: TaskRecord, res: ValidatedRecord | RejectedRecord | InfrastructureFailure) -> None:
        if isinstance(res, InfrastructureFailure):
            res = RejectedRecord(task_id=task.task_id, strategy=task.strategy, reason=str(res))
        elif isinstance(res, ValidatedRecord) and task.members:
            res = _unless_interacting(task, res, failing)
        append_record(validated_path if isinstance(res, ValidatedRecord) else rejected_path, res)
        out.append(res)
        if on_done:
            on_done(res)

    with kept_warm():
        (executor or LocalExecutor(workers)).run(validator, todo, record)
    return out
