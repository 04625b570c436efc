"""Harbor task export: one task folder per checked task, the exchange format of Harbor, Terminal-Bench 2.0 and the
RL frameworks that read it.

    <instance_id>/instruction.md         the description the agent sees
    <instance_id>/task.toml              name, timeouts, resources, no network, provenance in [metadata]
    <instance_id>/environment/Dockerfile the project's environment with the task state at /repo
    <instance_id>/environment/task.bundle the task state: one parentless commit, no history (git bundle)
    <instance_id>/tests/test.sh          grades: the agent's changes on a clean task state + tests.diff, the suite,
                                          the reward (1/0, or partial credit) in /logs/verifier/reward.txt
    <instance_id>/solution/solve.sh      the oracle: applies the gold patch
"""

from __future__ import annotations

import json
import shlex
import shutil
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from repogym import __version__
from repogym.environment import EnvSpec
from repogym.export.tasks import ExportTask, checked_tasks, seal
from repogym.repo import RUN_ARTIFACTS
from repogym.sandbox.images import BASE_IMAGE
from repogym.scoring import MODES

LIST_PLUGINS = (
    'import importlib.metadata as m; print(" ".join(sorted({"-p " + e.value.split(":")[0] '
    'for e in m.entry_points(group="pytest11")})))'
)
AGENT_DIFF = "/logs/artifacts/agent.diff"  # where the collect hook leaves the agent's changes for the verifier
TIMEOUTS = {"agent": 1800.0, "verifier": 900.0, "build": 1800.0}
RESOURCES = {"cpus": 2, "memory_mb": 4096, "storage_mb": 10240}


def export_harbor(
    state_dir: Path, out: Path, reward: str = "binary", base_image: str | None = None, repo: str | None = None
) -> list[Path]:
    """Write a Harbor task folder under ``out`` for every checked task of ``state_dir``; returns the folders."""
    if reward not in MODES:
        raise ValueError(f"unknown reward mode {reward!r}; choose one of: {', '.join(MODES)}")
    _, tasks = checked_tasks(state_dir, repo)
    return [write_task(t, out / t.id, reward, base_image) for t in tasks]


def write_task(task: ExportTask, dest: Path, reward: str, base_image: str | None) -> Path:
    """One task folder; an existing folder of the same task is replaced."""
    shutil.rmtree(dest, ignore_errors=True)
    commit, gold = seal(task.rec, task.src, bundle=dest / "environment" / "task.bundle")
    files = {
        "instruction.md": task.row.description.strip() + "\n",
        "task.toml": task_toml(task, commit, reward),
        "environment/Dockerfile": dockerfile(task, base_image),
        "tests/test.sh": test_sh(task, commit),
        "tests/tests.diff": task.rec.tests_diff,
        "tests/tests.json": json.dumps(_test_lists(task, reward), indent=1) + "\n",
        "tests/grade.py": _resource("export/harbor_grade.py"),
        "tests/screen.py": _resource("screen.py"),
        "tests/repogym_scoring.py": _resource("scoring.py"),
        "tests/repogym_testresults.py": _resource("testresults.py"),
        "solution/solve.sh": SOLVE_SH,
        "solution/gold.diff": gold,
    }
    for name, text in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text, encoding="utf-8")
    for script in ("tests/test.sh", "solution/solve.sh"):
        (dest / script).chmod(0o755)
    return dest


def _resource(name: str) -> str:
    return resources.files("repogym").joinpath(name).read_text(encoding="utf-8")


def _test_lists(task: ExportTask, reward: str) -> dict[str, Any]:
    return {"FAIL_TO_PASS": task.rec.FAIL_TO_PASS, "PASS_TO_PASS": task.rec.PASS_TO_PASS, "reward": reward}


def task_toml(task: ExportTask, commit: str, reward: str) -> str:
    """task.toml in Harbor's schema: [task] names it, [metadata] says where it came from."""
    meta = {
        "difficulty": task.row.difficulty,
        "category": "programming",
        "tags": ["repogym", task.row.strategy],
        "repogym_task_id": task.rec.task_id,
        "repogym_version": __version__,
        "source_repo": task.rec.repo,
        "source_commit": task.src.commit_sha,
        "task_state_commit": commit,
        "strategy": task.row.strategy,
        "validator": task.rec.validator,
        "subject": str(task.row.candidate.get("subject", "")),
        "reward": reward,
        "fail_to_pass": len(task.rec.FAIL_TO_PASS or []),
        "pass_to_pass": len(task.rec.PASS_TO_PASS or []),
    }
    sections: list[tuple[str, dict[str, Any]]] = [
        ("task", {"name": f"repogym/{task.id}", "description": meta["subject"], "keywords": meta["tags"]}),
        ("metadata", meta),
        ("verifier", {"timeout_sec": TIMEOUTS["verifier"], "environment_mode": "separate"}),
        ("agent", {"timeout_sec": TIMEOUTS["agent"]}),
        ("environment", {"build_timeout_sec": TIMEOUTS["build"], **RESOURCES, "network_mode": "no-network"}),
    ]
    sections.append(("[verifier.collect]", {"command": collect_command(commit, AGENT_DIFF), "timeout_sec": 300.0}))
    tables = [f"\n[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in t.items()) for name, t in sections]
    return 'schema_version = "1.4"\n' + "".join(tables)


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings (escapes and all) are TOML basic strings, its numbers and lists TOML's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def dockerfile(task: ExportTask, base_image: str | None) -> str:
    """FROM the project's image (or the repogym base image plus the project's test dependencies), the task
    state cloned from the bundle at /repo, the project installed as the environment built it."""
    spec = task.spec
    image = base_image or spec.image or BASE_IMAGE
    lines = [f"# repogym task {task.rec.task_id}: the task state (one commit, no history) at /repo.", f"FROM {image}"]
    lines += ["ENV PYTHONDONTWRITEBYTECODE=1 PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1"]
    lines += ["COPY task.bundle /tmp/task.bundle", f"RUN {_clone()}", "WORKDIR /repo"]
    install = _install(spec)
    return "\n".join([*lines, *([f"RUN {install}"] if install else [])]) + "\n"


def _clone() -> str:
    """Clone the bundle, then drop what points back at it; RUN_ARTIFACTS stay out of the agent's diff."""
    exclude = shlex.join(RUN_ARTIFACTS)
    return " && ".join([
        "git clone -q /tmp/task.bundle /repo", "rm /tmp/task.bundle", "cd /repo", "git remote remove origin",
        "git reflog expire --expire=now --all", "git config user.name repogym",
        "git config user.email repogym@localhost", f"printf '%s\\n' {exclude} > .git/info/exclude",
    ])  # fmt: skip


def _install(spec: EnvSpec) -> str:
    """pip installs of what the environment installed: offline first (the image may have it all), then online."""
    extras = f"[{','.join(spec.project_extras)}]" if spec.project_extras else ""
    args = [*(f"-r {shlex.quote(r)}" for r in spec.requirements), *map(shlex.quote, spec.test_deps)]
    if spec.installable:
        args.append("-e " + shlex.quote("." + extras))
    if not args:
        return ""
    pip = "python3 -m pip install -q --no-build-isolation " + " ".join(args)
    return f"cd /repo && ({pip.replace('install -q', 'install -q --no-index')} || {pip})"


def collect_command(commit: str, out: str) -> str:
    """Write the agent's changes in /repo as a diff against the task state to ``out``, with our ignore rules
    (the agent may have rewritten .git/info/exclude to hide a file from git)."""
    return " && ".join([
        f"mkdir -p {shlex.quote(str(PurePosixPath(out).parent))}", "cd /repo",
        f"printf '%s\\n' {shlex.join(RUN_ARTIFACTS)} > .git/info/exclude",
        "git -c core.excludesFile=/dev/null add -A", f"git diff --cached --binary {commit} > {out}",
    ])  # fmt: skip


def test_sh(task: ExportTask, commit: str) -> str:
    """The verifier: the agent's screened changes on a clean task state, tests.diff, the suite with JUnit XML, then
    grade.py's reward. Anything that goes wrong is a reward of 0, never no reward."""
    spec = task.spec
    artifacts = " ".join(f"-e {shlex.quote(a)}" for a in RUN_ARTIFACTS)
    env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in spec.test_env.items())
    setup = f"{spec.setup_command} && " if spec.setup_command else ""
    return TEST_SH.format(
        task_id=task.rec.task_id, commit=commit, env=env, artifacts=artifacts, plugins=shlex.quote(LIST_PLUGINS),
        collect=collect_command('"$TASK_COMMIT"', "/tmp/agent.diff"),
        command=shlex.quote(setup + spec.test_command), timeout=int(TIMEOUTS["verifier"] - 60),
    )  # fmt: skip


TEST_SH = r"""#!/bin/bash
# Verifier of repogym task {task_id}: writes /logs/verifier/reward.txt.
set -u
TASK_COMMIT={commit}
LOGS=/logs/verifier
mkdir -p "$LOGS"
fail() {{ echo "$1" | tee "$LOGS/error.txt" >&2; echo 0 > "$LOGS/reward.txt"; exit 0; }}
cd /repo 2>/dev/null || fail "no /repo"
git cat-file -e "$TASK_COMMIT^{{commit}}" 2>/dev/null || fail "the task-state commit is gone from /repo"
# The agent's changes as a diff against the task state. Harbor runs this verifier in a fresh container (separate
# mode): task.toml's collect hook took the diff in the agent's container when the agent stopped. Run in the agent's
# container instead (shared mode), it is taken here, with our own ignore rules, so no file hidden from git is lost.
if [ -f /logs/artifacts/agent.diff ]; then
  cp /logs/artifacts/agent.diff /tmp/agent.diff
else
  {collect} || fail "cannot read the agent's changes"
fi
# Screened: the hidden tests' files, test files and test infrastructure are left out (listed in dropped.txt).
python3 -I /tests/screen.py /tmp/agent.diff "$TASK_COMMIT" /tests/tests.diff > /tmp/kept.diff 2> "$LOGS/dropped.txt" \
  || fail "screening the agent's changes failed"
# A clean copy of the task files: the task-state commit, then only the kept changes, then the hidden tests.
git checkout -q --force --detach "$TASK_COMMIT" || fail "cannot reset /repo to the task state"
git clean -q -fdx {artifacts} || fail "cannot clean /repo"
if [ -s /tmp/kept.diff ]; then
  git apply --whitespace=nowarn /tmp/kept.diff || fail "the agent's changes do not apply to the task state"
fi
git apply --whitespace=nowarn /tests/tests.diff || fail "tests.diff does not apply"
# Only the pytest plugins the environment installed load (listed from /tmp, outside the working copy).
PLUGINS=$(cd /tmp && python3 -I -c {plugins}) || PLUGINS=""
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTEST_ADDOPTS="$PLUGINS"
export REPOGYM_JUNIT="$LOGS/junit.xml"
rm -f "$REPOGYM_JUNIT"
timeout {timeout} bash -c {command} > "$LOGS/test-output.txt" 2>&1
echo "suite exit code $?" >> "$LOGS/test-output.txt"
python3 /tests/grade.py "$REPOGYM_JUNIT" /tests/tests.json > "$LOGS/reward.txt" 2> "$LOGS/grade.json" \
  || fail "grading failed"
cat "$LOGS/reward.txt"
"""

SOLVE_SH = """#!/bin/bash
# The oracle: restore the behaviour the task removed (the gold patch; it touches no test file).
set -euo pipefail
cd /repo
git apply --whitespace=nowarn "$(dirname "$0")/gold.diff"
"""
