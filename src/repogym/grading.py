"""Grade a solution the way nothing the agent touched can influence.

The grade never runs in the agent's tree. The agent's changes are read as a diff against the task state through
a git directory of repogym's own (the agent's ``.git`` may be rewritten), changes to the hidden tests and to test
infrastructure are dropped (and named), the rest is applied to a fresh task-state copy with tests.diff, and the
suite runs in a fresh sandbox the way every run of the environment does: pytest's plugin autoloading off, only
the environment's own plugins loaded (``project/plugins.py``), so a plugin planted in the working copy never runs.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from repogym.environment import EnvSpec, open_env_sandbox, run_tests
from repogym.records import ValidatedRecord
from repogym.repo import GitError, RepoSource, apply_diff, changed_files, diff, git, temp_sealed_copy
from repogym.scoring import reward, split_outcomes
from repogym.testresults import TestRun

TEST_DIRS = {"test", "tests", "testing"}
STARTUP_HOOKS = {"sitecustomize.py", "usercustomize.py", "conftest.py"}
PYTEST_FILES = {"pytest.ini", ".pytest.ini"}
# Files whose pytest section configures the run: a change to that section is a change to the grader.
PYTEST_SECTIONS = {"pyproject.toml": "tool.pytest", "setup.cfg": "tool:pytest", "tox.ini": "pytest"}


@dataclass
class Grade:
    """The verdict on one solution, with what was left out of it and why."""

    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass_failed: list[str] = field(default_factory=list)
    resolved: bool = False
    patch: str = ""
    dropped: list[str] = field(default_factory=list)
    error: str | None = None


def verdict(rec: ValidatedRecord, outcomes: Mapping[str, str]) -> tuple[dict[str, str], list[str], bool]:
    """(FAIL_TO_PASS outcome per test, PASS_TO_PASS tests that failed or went missing, resolved)."""
    f2p, p2p_failed = split_outcomes(outcomes, rec.FAIL_TO_PASS or [], rec.PASS_TO_PASS or [])
    return f2p, p2p_failed, reward(f2p, rec.PASS_TO_PASS or [], p2p_failed) == 1.0


def solution_diff(agent_wc: Path, trusted_wc: Path) -> str:
    """The agent's tree as a diff against the task state, staged through ``trusted_wc``'s own git directory."""
    gd = ["--git-dir", str(trusted_wc / ".git"), "--work-tree", str(agent_wc)]
    git([*gd, "add", "-A"], cwd=trusted_wc)
    try:
        return git([*gd, "diff", "--cached", "--binary", "HEAD"], cwd=trusted_wc)
    finally:
        git(["reset", "-q"], cwd=trusted_wc)


def split_diff(patch: str) -> list[tuple[str, str]]:
    """(path, that file's part of the diff) for each file of a git diff, in order."""
    parts = re.split(r"(?m)^(?=diff --git )", patch)
    out = []
    for part in parts:
        files = changed_files(part)
        if files:
            out.append((files[0], part))
    return out


def why_dropped(path: str, part: str, rec: ValidatedRecord, task_wc: Path, agent_wc: Path) -> str:
    """Why a changed file is left out of the graded solution, or '' when it is kept."""
    p = PurePosixPath(path)
    if path in changed_files(rec.tests_diff):
        return "a file the hidden tests add or change"
    if p.name in STARTUP_HOOKS or p.suffix == ".pth" or p.name in PYTEST_FILES:
        return "test infrastructure (runs before or around the tests)"
    if TEST_DIRS & set(p.parts[:-1]) or p.name.startswith("test_") or p.name.endswith("_test.py"):
        return "a test file"
    if any(part_.endswith((".dist-info", ".egg-info", ".egg-link")) for part_ in p.parts):
        return "package metadata (could register a plugin)"
    if re.search(r"(?m)^(new file mode|new mode|old mode) 120000", part):
        return "a symbolic link"
    if re.search(r"(?m)^new file mode", part) and _shadows(p, task_wc):
        return "a new top-level module (it could shadow the test runner or a library)"
    if (
        p.name in PYTEST_SECTIONS
        and len(p.parts) == 1
        and _section(task_wc / path, p.name) != _section(agent_wc / path, p.name)
    ):
        return "a change to the pytest configuration"
    return ""


def _shadows(p: PurePosixPath, task_wc: Path) -> bool:
    """A new module at the repository root, the first entry of sys.path when tests run from there."""
    top = p.parts[0]
    return (len(p.parts) == 1 and p.suffix == ".py") or (len(p.parts) > 1 and not (task_wc / top).exists())


def _section(path: Path, name: str) -> Any:
    """The pytest section of a configuration file, comparable between two versions (None when absent)."""
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    if name == "pyproject.toml":
        try:
            return tomllib.loads(text).get("tool", {}).get("pytest")
        except tomllib.TOMLDecodeError:
            return text
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string(text)
    except configparser.Error:
        return text
    section = PYTEST_SECTIONS[name]
    return dict(cfg.items(section)) if cfg.has_section(section) else None


def screen(patch: str, rec: ValidatedRecord, task_wc: Path, agent_wc: Path) -> tuple[str, list[str]]:
    """(the part of ``patch`` that is graded, '<path>: <reason>' for each file left out)."""
    kept, dropped = [], []
    for path, part in split_diff(patch):
        reason = why_dropped(path, part, rec, task_wc, agent_wc)
        if reason:
            dropped.append(f"{path}: {reason}")
        else:
            kept.append(part)
    return "".join(kept), dropped


def gold_patch_args(rec: ValidatedRecord) -> list[str]:
    """git apply options that restrict reverse(src.diff) to files that tests.diff does not touch."""
    return [f"--exclude={f}" for f in changed_files(rec.tests_diff)]


def gold_patch(src: RepoSource, rec: ValidatedRecord) -> str:
    """The gold patch as a diff against the task state: reverse(src.diff) outside the files tests.diff touches."""
    with temp_sealed_copy(src, rec.src_diff, prefix="repogym-gold-") as wc:
        apply_diff(wc, rec.src_diff, reverse=True, extra=gold_patch_args(rec))
        return diff(wc, "HEAD")


def run_solution(
    src: RepoSource, spec: EnvSpec, rec: ValidatedRecord, patch: str, timeout_s: float, excluded: set[str] | None = None
) -> tuple[TestRun | None, str | None]:
    """Task state + ``patch`` + tests.diff in a fresh copy and a fresh sandbox: (the run without the ``excluded``
    tests, or why it could not run). Check 3 runs the gold patch through here, an agent's grade its diff."""
    with temp_sealed_copy(src, rec.src_diff, prefix="repogym-grade-") as wc:
        run, error = _run_in(wc, spec, rec, patch, timeout_s)
        return (run.without(excluded) if run is not None and excluded else run), error


def _run_in(
    wc: Path, spec: EnvSpec, rec: ValidatedRecord, patch: str, timeout_s: float
) -> tuple[TestRun | None, str | None]:
    for name, diff_text in (("the solution", patch), ("tests.diff", rec.tests_diff)):
        try:
            apply_diff(wc, diff_text)
        except GitError as e:
            return None, f"{name} does not apply: {e}"
    with open_env_sandbox(spec, wc) as sb:
        return run_tests(spec, sb, timeout_s), None


def grade_solution(src: RepoSource, spec: EnvSpec, rec: ValidatedRecord, agent_wc: Path, timeout_s: float) -> Grade:
    """Grade the agent's working copy: its screened diff, applied to a fresh task state with the hidden tests."""
    with temp_sealed_copy(src, rec.src_diff, prefix="repogym-grade-") as wc:
        patch = solution_diff(agent_wc, wc)
        kept, dropped = screen(patch, rec, wc, agent_wc)
        run, error = _run_in(wc, spec, rec, kept, timeout_s)
    if run is None:
        return Grade(patch=patch, dropped=dropped, error=error)
    f2p, p2p_failed, resolved = verdict(rec, run.outcomes)
    return Grade(f2p, p2p_failed, resolved, patch, dropped)
