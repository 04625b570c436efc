"""SWE-bench instance export: other harnesses (the SWE-bench harness, mini-swe-agent) can run our tasks.

SWE-bench needs a real commit where the problem exists. The task state (base + src.diff) is committed into a
bare repository and kept on a branch named after the instance; ``base_commit`` is that commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repogym.check import gold_patch_args
from repogym.environment import EnvSpec
from repogym.evaluate import with_test_lists
from repogym.records import ValidatedRecord
from repogym.repo import RepoSource, apply_diff, commit_all, diff, git, temp_working_copy


def export_swebench(
    rec: ValidatedRecord, description: str, src: RepoSource, spec: EnvSpec, git_dir: Path
) -> dict[str, Any]:
    """One SWE-bench instance; the task-state commit is pushed to ``git_dir`` as branch ``repogym/<id>``."""
    rec = with_test_lists(rec, src, spec, 900.0)
    instance_id = rec.task_id.replace("/", "__")
    if not git_dir.exists():
        git(["init", "-q", "--bare", str(git_dir)])
    with temp_working_copy(src, prefix="repogym-export-") as wc:
        apply_diff(wc, rec.src_diff)
        base = commit_all(wc, f"{rec.task_id}: task state")
        git(["push", "-q", "-f", str(git_dir.resolve()), f"{base}:refs/heads/repogym/{instance_id}"], cwd=wc)
        apply_diff(wc, rec.src_diff, reverse=True, extra=gold_patch_args(rec))
        gold = diff(wc, base)
    return {
        "instance_id": instance_id,
        "repo": rec.repo,
        "base_commit": base,
        "patch": gold,
        "test_patch": rec.tests_diff,
        "problem_statement": description,
        "FAIL_TO_PASS": rec.FAIL_TO_PASS,
        "PASS_TO_PASS": rec.PASS_TO_PASS,
        "version": "repogym",
        "environment_setup_commit": src.commit_sha,
        "created_at": "",
        "hints_text": "",
    }
