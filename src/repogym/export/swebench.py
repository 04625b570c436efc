"""SWE-bench instance export: other harnesses (the SWE-bench harness, mini-swe-agent) can run our tasks.

SWE-bench needs a real commit where the problem exists. That commit is the sealed task state (base + src.diff as
one parentless commit, see ``repo.sealed_copy``), pushed into a bare repository of its own per instance,
``GIT_DIR/<instance_id>.git``, as branch ``repogym/<instance_id>`` and HEAD: one repository per task, because a
shared one would hold, in one task's state, the base version of a file that another task changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repogym.environment import EnvSpec
from repogym.evaluate import with_test_lists
from repogym.export.tasks import instance_id, seal
from repogym.records import ValidatedRecord
from repogym.repo import RepoSource


def export_swebench(
    rec: ValidatedRecord, description: str, src: RepoSource, spec: EnvSpec, git_dir: Path
) -> dict[str, Any]:
    """One SWE-bench instance; the sealed task-state commit goes to ``git_dir/<instance_id>.git``."""
    rec = with_test_lists(rec, src, spec, 900.0)
    iid = instance_id(rec.task_id)
    git_dir.mkdir(parents=True, exist_ok=True)
    base, gold = seal(rec, src, bare=git_dir / f"{iid}.git")
    return swebench_instance(rec, description, base, gold)


def swebench_instance(rec: ValidatedRecord, description: str, base: str, gold: str) -> dict[str, Any]:
    """The SWE-bench columns of one task whose sealed task state is commit ``base``."""
    return {
        "instance_id": instance_id(rec.task_id),
        "repo": rec.repo,
        "base_commit": base,
        "patch": gold,
        "test_patch": rec.tests_diff,
        "problem_statement": description,
        "FAIL_TO_PASS": rec.FAIL_TO_PASS,
        "PASS_TO_PASS": rec.PASS_TO_PASS,
        "version": "repogym",
        "environment_setup_commit": base,
        "created_at": "",
        "hints_text": "",
    }
