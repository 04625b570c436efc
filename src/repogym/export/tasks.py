"""What the state-dir exports share: the tasks that passed their checks, each with its repository opened, and
the sealed task state (one parentless commit) with the gold patch taken against it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from repogym.environment import EnvSpec
from repogym.errors import RepogymError
from repogym.grading import gold_patch
from repogym.records import ValidatedRecord
from repogym.repo import RepoSource, git, open_repo, temp_sealed_copy
from repogym.taskset import StateDir, TaskRow, load_state


def instance_id(task_id: str) -> str:
    """The id every export uses for a task: ``repo/7`` becomes ``repo__7`` (a file, folder and branch name)."""
    return task_id.replace("/", "__").replace("#", "__")


@dataclass
class ExportTask:
    """One checked task, ready to write in any format."""

    row: TaskRow
    rec: ValidatedRecord
    src: RepoSource
    spec: EnvSpec

    @property
    def id(self) -> str:
        return instance_id(self.rec.task_id)


def checked_tasks(state_dir: Path, repo: str | None = None) -> tuple[StateDir, list[ExportTask]]:
    """The tasks of ``state_dir`` that passed all three checks, with FAIL_TO_PASS / PASS_TO_PASS from the checks."""
    state = load_state(state_dir)
    env = state_dir / "env.json"
    if not env.exists():
        raise RepogymError(f"{env}: no such file; the exports need the environment the workflow recorded")
    spec = EnvSpec.model_validate(json.loads(env.read_text()))
    sources: dict[tuple[str, str | None], RepoSource] = {}
    out = []
    for row in state.checked_ok():
        f2p, p2p = row.test_lists()
        rec = ValidatedRecord.model_validate({**(row.validated or {}), "FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p})
        rec.task_description = row.description
        key = (repo or rec.repo, rec.commit_sha or row.candidate.get("commit_sha"))
        if key not in sources:
            sources[key] = open_repo(key[0], key[1])
        out.append(ExportTask(row, rec, sources[key], spec))
    return state, out


def seal(
    rec: ValidatedRecord, src: RepoSource, bundle: Path | None = None, bare: Path | None = None
) -> tuple[str, str]:
    """Seal the task state of ``rec``: (its one commit, the gold patch against it). With ``bundle``, write it as a
    git bundle (HEAD and main); with ``bare``, push it as branch ``repogym/<id>`` (and HEAD) of a fresh bare repo."""
    with temp_sealed_copy(src, rec.src_diff, prefix="repogym-export-", message=f"{rec.task_id}: task state") as wc:
        commit = git(["rev-parse", "HEAD"], cwd=wc).strip()
        if bundle is not None:
            bundle.parent.mkdir(parents=True, exist_ok=True)
            git(["bundle", "create", "-q", str(bundle.resolve()), "HEAD", "main"], cwd=wc)
        if bare is not None:
            _push(wc, commit, bare, f"repogym/{instance_id(rec.task_id)}")
        return commit, gold_patch(src, rec)


def _push(wc: Path, commit: str, bare: Path, branch: str) -> None:
    shutil.rmtree(bare, ignore_errors=True)  # a task exported again replaces its repository
    git(["init", "-q", "--bare", str(bare)])
    git(["push", "-q", str(bare.resolve()), f"{commit}:refs/heads/{branch}"], cwd=wc)
    git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=bare)
