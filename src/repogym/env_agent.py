"""The environment agent: a coding agent writes a Dockerfile for a repository and proves it runs the suite.

The agent works in a copy of the repository on the host with podman. It writes a Dockerfile that installs the
runtime and test dependencies without copying the source in, builds it with ``podman build -t NAME``, and runs
the suite with the exact Build-A-Bench command ``podman run --rm --network none -v REPO:/repo:rw NAME``; it
gives up after five failed runs or ten failed builds. repogym then builds the Dockerfile itself and runs the
suite the same way: the image is kept only if the suite passes there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from repogym.agents.external import ExternalAgentConfig, external_trajectory
from repogym.environment import EnvSpec, build, detect, open_env_sandbox, run_tests
from repogym.errors import RepogymError
from repogym.repo import RepoSource, temp_working_copy
from repogym.sandbox.images import BASE_IMAGE
from repogym.sandbox.podman import engine_command

PROMPT = """\
Write a Dockerfile for the Python repository in {workdir} so that its test suite runs in a container.

- Start FROM {base} (Debian with python3, pip, venv, setuptools, pytest and git; no registry is reachable).
- Install the runtime and test dependencies; do NOT copy the source in: it is mounted at /repo at run time.
- The image's default command (CMD) must install the project from /repo if needed and run the test suite.
- Build it with exactly: podman build -t {image} -f {dockerfile} {context}
- Run the suite with exactly: podman run --rm --network none -v {workdir}:/repo:rw {image}
- Give up after five failed runs or ten failed builds.
- Save the Dockerfile as {dockerfile}, and write tips for next time (generic, not about this repository) to
  {tips}.
{tips_text}"""


class EnvAgentResult(BaseModel):
    dockerfile: str
    image: str
    image_id: str
    tips: str
    log: str
    spec: EnvSpec


def build_with_agent(
    src: RepoSource, cfg: ExternalAgentConfig, image: str, tips_path: Path | None, log_path: Path
) -> EnvAgentResult:
    """Let the agent write and test the Dockerfile, then verify it; raises RepogymError with the reason."""
    work = Path(tempfile.mkdtemp(prefix="repogym-envagent-"))
    dockerfile, context, tips_file = work / "Dockerfile", work / "context", work / "tips.md"
    context.mkdir()
    tips_file.write_text(tips_path.read_text() if tips_path and tips_path.exists() else "")
    with temp_working_copy(src, prefix="repogym-envagent-wc-") as wc:
        prompt = PROMPT.format(
            workdir=wc, base=BASE_IMAGE, image=image, dockerfile=dockerfile, context=context, tips=tips_file,
            tips_text=f"\nTips from earlier repositories:\n{tips_file.read_text()}\n" if tips_file.read_text() else "",
        )  # fmt: skip
        agent_cfg = cfg.model_copy(update={"extra_dirs": [work], "writable_file": tips_file})
        traj = external_trajectory(agent_cfg, prompt, wc, log_path)
        if traj.stop_reason != "submitted":
            raise RepogymError(f"the environment agent stopped without finishing ({traj.stop_reason}: {traj.error})")
        if not dockerfile.exists():
            raise RepogymError(f"the environment agent wrote no Dockerfile at {dockerfile}; see {log_path}")
        spec = detect(wc, src.name, "podman")
        spec = build(spec.model_copy(update={"image": image}), wc, dockerfile)
        with open_env_sandbox(spec, wc) as sb:
            run = run_tests(spec, sb)
        if not run.all_passed:
            raise RepogymError(f"the agent's image {image} does not pass the suite ({run.summary()}, {run.note})")
    image_id = engine_command("podman", "image", "inspect", "-f", "{{.Id}}", image)
    if tips_path:
        tips_path.write_text(tips_file.read_text())
    return EnvAgentResult(
        dockerfile=dockerfile.read_text(), image=image, image_id=image_id.stdout.strip(), tips=tips_file.read_text(),
        log=str(log_path), spec=spec,
    )  # fmt: skip
