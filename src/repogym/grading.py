"""Grade a solution the way nothing the agent touched can influence.

The grade never runs in the agent's tree. The agent's changes are read as a diff against the task state through
a git directory of repogym's own (the agent's ``.git`` may be rewritten), changes to the hidden tests and to test
infrastructure are dropped (and named), the rest is applied to a fresh task-state copy with tests.diff, and the
suite runs in a fresh sandbox the way every run of the environment does: pytest's plugin autoloading off, only
the environment's own plugins loaded (``project/plugins.py``), so a plugin planted in the working copy never runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from repogym.environment import EnvSpec
from repogym.records import ValidatedRecord
from repogym.repo import GitError, RepoSource, apply_diff, changed_files, git, task_commit, temp_sealed_copy
from repogym.scoring import reward, split_outcomes
from repogym.screen import reason
from repogym.testresults import TestRun
from repogym.workspace import Workspace, workspace


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
    """Why a changed file is left out of the graded solution, or '' when it is kept (the policy of screen.py)."""
    old, new = _text(task_wc / path), _text(agent_wc / path)
    top_exists = (task_wc / PurePosixPath(path).parts[0]).exists()
    return reason(path, part, set(changed_files(rec.tests_diff)), old, new, top_exists)


def _text(path: Path) -> str | None:
    return path.read_text(errors="replace") if path.is_file() and not path.is_symlink() else None


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


def gold_patch(src: RepoSource, rec: ValidatedRecord) -> str:
    """The gold patch as a diff against the task state: reverse(src.diff) outside the files tests.diff touches,
    applied to the task state's index in a scratch repository (repo.task_commit)."""
    with task_commit(src, rec.src_diff) as (scratch, commit):
        exclude = [f"--exclude={f}" for f in changed_files(rec.tests_diff)]
        apply_diff(scratch, rec.src_diff, reverse=True, extra=["--cached", *exclude])
        tree = git(["write-tree"], cwd=scratch).strip()
        return git(["diff", "--binary", commit, tree], cwd=scratch)


def run_solution(
    src: RepoSource,
    spec: EnvSpec,
    rec: ValidatedRecord,
    patch: str,
    timeout_s: float,
    excluded: set[str] | None = None,
    warm: bool = False,
) -> tuple[TestRun | None, str | None]:
    """Task state + ``patch`` + tests.diff in a sealed copy: (the run without the ``excluded`` tests, or why it
    could not run). Check 3 runs the gold patch through here: in a fresh copy and sandbox, or ``warm``, in a kept
    sealed copy from the pool, sealed anew, whose runs fork from a server that has imported pytest (see
    workspace.py); never an agent's code, which ``grade_solution`` runs fresh."""
    with workspace(src, spec, warm, prefix="repogym-grade-", sealed=rec.src_diff) as ws:
        error = _apply_solution(ws.wc, rec, patch)
        if error:
            return None, error
        run = ws.run(timeout_s)
        return (run.without(excluded) if excluded else run), None


def _apply_solution(wc: Path, rec: ValidatedRecord, patch: str) -> str | None:
    """Apply the solution, then tests.diff; why one does not apply, or None."""
    for name, diff_text in (("the solution", patch), ("tests.diff", rec.tests_diff)):
        try:
            apply_diff(wc, diff_text)
        except GitError as e:
            return f"{name} does not apply: {e}"
    return None


def grade_solution(src: RepoSource, spec: EnvSpec, rec: ValidatedRecord, agent_wc: Path, timeout_s: float) -> Grade:
    """Grade the agent's working copy: its screened diff, applied to a fresh task state with the hidden tests."""
    with temp_sealed_copy(src, rec.src_diff, prefix="repogym-grade-") as wc:
        patch = solution_diff(agent_wc, wc)
        kept, dropped = screen(patch, rec, wc, agent_wc)
        error = _apply_solution(wc, rec, kept)
        run = None if error else Workspace(spec, wc).run(timeout_s)
    if run is None:
        return Grade(patch=patch, dropped=dropped, error=error)
    f2p, p2p_failed, resolved = verdict(rec, run.outcomes)
    return Grade(f2p, p2p_failed, resolved, patch, dropped)
