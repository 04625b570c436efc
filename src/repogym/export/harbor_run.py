"""Run one trial of an exported Harbor task folder on repogym's podman backend, as Harbor would: build the
environment image; in one container run the oracle (solution/solve.sh) or nothing, then task.toml's collect hook;
in a fresh container of the same image, with the collected /logs/artifacts, run the verifier (tests/test.sh); read
the reward. This proves an export before anyone else runs it: the gold
solution must earn 1, doing nothing must earn 0.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repogym.errors import SandboxError
from repogym.sandbox.base import ExecResult, run_bounded
from repogym.sandbox.podman import ContainerSandbox, engine_command, remove_container

BUILD_TIMEOUT_S = 1800
TRIAL_TIMEOUT_S = 900.0


@dataclass
class Trial:
    """The verifier's reward (None when it wrote none) and what the trial printed."""

    reward: float | None
    output: str


def build_image(task_dir: Path, engine: str = "podman") -> str:
    """Build ``environment/Dockerfile`` as ``localhost/repogym-harbor-<task>``; raises SandboxError on failure."""
    tag = f"localhost/repogym-harbor-{task_dir.name.lower()}"
    cmd = [engine, "build", "-q", "-t", tag, str(task_dir / "environment")]
    p = run_bounded(cmd, cwd=None, env=None, timeout_s=BUILD_TIMEOUT_S, max_output_bytes=200_000)
    if not p.ok:
        why = "timed out" if p.timed_out else (p.stderr or p.stdout).strip()[-2000:]
        raise SandboxError(f"{engine} build of {task_dir.name} failed: {why}")
    return tag


def run_trial(task_dir: Path, solve: bool, engine: str = "podman") -> Trial:
    """One trial as Harbor runs it in separate-verifier mode: the agent's container (the oracle when ``solve``,
    else no agent at all) and task.toml's collect hook, then the verifier in a fresh container of the same image
    with only the collected artifacts (the agent's diff) carried over."""
    image = build_image(task_dir, engine)
    collect = [hook["command"] for hook in _config(task_dir).get("verifier", {}).get("collect", [])]
    with tempfile.TemporaryDirectory(prefix="repogym-harbor-") as tmp:
        root = Path(tmp)
        agent_logs, logs = root / "agent-logs", root / "logs"
        agent = (["bash /solution/solve.sh"] if solve else []) + collect
        agent_mounts = {task_dir / "solution": "/solution:ro", agent_logs: "/logs:rw"}
        first = _phase(engine, image, root / "agent", agent_mounts, agent)
        if (agent_logs / "artifacts").is_dir():  # Harbor re-materializes /logs/artifacts in the verifier
            shutil.copytree(agent_logs / "artifacts", logs / "artifacts")
        verifier_mounts = {task_dir / "tests": "/tests:ro", logs: "/logs:rw"}
        res = _phase(engine, image, root / "verifier", verifier_mounts, ["bash /tests/test.sh"])
        reward = logs / "verifier" / "reward.txt"
        text = reward.read_text().strip() if reward.exists() else ""
        output = (first.stdout + first.stderr)[-3000:] + (res.stdout + res.stderr)[-5000:]
        return Trial(float(text) if text else None, output)


def _config(task_dir: Path) -> dict[str, Any]:
    return tomllib.loads((task_dir / "task.toml").read_text())


def _phase(engine: str, image: str, repo: Path, mounts: dict[Path, str], steps: list[str]) -> ExecResult:
    """Run ``steps`` in a fresh container of ``image`` (its own copy of /repo) in repogym's podman sandbox."""
    _copy_repo(engine, image, repo)
    for host in mounts:
        host.mkdir(parents=True, exist_ok=True)
    sb = ContainerSandbox(repo, image=image)
    with sb:
        extra = [a for host, inside in mounts.items() for a in ("-v", f"{host.resolve()}:{inside}")]
        name = f"repogym-harbor-{uuid.uuid4().hex[:12]}"
        argv = sb.run_argv([*extra, "--name", name, "-v", f"{sb.tmp_dir}:/tmp:rw", "-w", "/repo"])
        return run_bounded(
            [*argv, image, "bash", "-c", "; ".join(steps) or "true"], cwd=None, env=None, timeout_s=TRIAL_TIMEOUT_S,
            max_output_bytes=200_000, on_timeout=lambda: _remove(engine, name),
        )  # fmt: skip


def _remove(engine: str, name: str) -> None:
    """Killing the client leaves the container running: remove it by name."""
    remove_container(engine, name)


def _copy_repo(engine: str, image: str, dest: Path) -> None:
    """The image's /repo on the host, mounted back at /repo (repogym's container sandbox mounts the task there)."""
    made = engine_command(engine, "create", image, "true")
    if not made.ok:
        raise SandboxError(f"{engine} create {image} failed: {made.stderr.strip()[-500:]}")
    cid = made.stdout.strip()
    try:
        copied = engine_command(engine, "cp", f"{cid}:/repo", str(dest))
        if not copied.ok:
            raise SandboxError(f"{engine} cp from {image} failed: {copied.stderr.strip()[-500:]}")
    finally:
        engine_command(engine, "rm", "-f", cid)
    if not (dest / ".git").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        raise SandboxError(f"{image} has no git repository at /repo")
