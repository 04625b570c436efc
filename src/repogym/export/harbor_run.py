"""Run one trial of an exported Harbor task folder on repogym's podman backend, as Harbor would: build the
environment image, optionally run the oracle (solution/solve.sh), then the verifier (tests/test.sh) with /tests,
/solution and /logs mounted, and read the reward. This proves an export before anyone else runs it: the gold
solution must earn 1, doing nothing must earn 0.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from repogym.errors import SandboxError
from repogym.sandbox.base import run_bounded
from repogym.sandbox.podman import ContainerSandbox

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
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if p.returncode != 0:
        raise SandboxError(f"{engine} build of {task_dir.name} failed: {(p.stderr or p.stdout).strip()[-2000:]}")
    return tag


def run_trial(task_dir: Path, solve: bool, engine: str = "podman") -> Trial:
    """One trial in a fresh container: the oracle when ``solve``, else no agent at all; then the verifier."""
    image = build_image(task_dir, engine)
    with tempfile.TemporaryDirectory(prefix="repogym-harbor-") as tmp:
        root = Path(tmp)
        _copy_repo(engine, image, root / "repo")
        (root / "logs").mkdir()
        steps = (["bash /solution/solve.sh"] if solve else []) + ["bash /tests/test.sh"]
        sb = ContainerSandbox(root / "repo", image=image)
        with sb:
            mounts = {task_dir / "tests": "/tests:ro", task_dir / "solution": "/solution:ro", root / "logs": "/logs:rw"}
            extra = [a for host, inside in mounts.items() for a in ("-v", f"{host.resolve()}:{inside}")]
            name = f"repogym-harbor-{uuid.uuid4().hex[:12]}"
            argv = sb.run_argv([*extra, "--name", name, "-v", f"{sb.tmp_dir}:/tmp:rw", "-w", "/repo"])
            res = run_bounded(
                [*argv, image, "bash", "-c", " && ".join(steps)], cwd=None, env=None, timeout_s=TRIAL_TIMEOUT_S,
                max_output_bytes=200_000, on_timeout=lambda: _remove(engine, name),
            )  # fmt: skip
        reward = root / "logs" / "verifier" / "reward.txt"
        text = reward.read_text().strip() if reward.exists() else ""
        return Trial(float(text) if text else None, res.stdout[-4000:] + res.stderr[-4000:])


def _remove(engine: str, name: str) -> None:
    """Killing the client leaves the container running: remove it by name."""
    subprocess.run([engine, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)


def _copy_repo(engine: str, image: str, dest: Path) -> None:
    """The image's /repo on the host, mounted back at /repo (repogym's container sandbox mounts the task there)."""
    cid = subprocess.run([engine, "create", image, "true"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run([engine, "cp", f"{cid}:/repo", str(dest)], capture_output=True, text=True, check=True)
    finally:
        subprocess.run([engine, "rm", "-f", cid], capture_output=True)
    if not (dest / ".git").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        raise SandboxError(f"{image} has no git repository at /repo")
