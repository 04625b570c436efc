"""The `podman` and `docker` backends, in the Build-A-Bench convention.

``podman run --rm --network none -v REPO:/repo:rw IMAGE`` runs the image's default command (the test suite);
exec adds a working directory, the private /tmp and the command.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from repogym.errors import SandboxError
from repogym.sandbox.base import REPO, ExecResult, Sandbox, run_bounded
from repogym.sandbox.limits import Limits

INSTALL_HINT = {
    "podman": "run `apt-get install podman` (see the README for the two host settings podman needs)",
    "docker": "install Docker Engine and start its daemon",
}


def default_image_name(repo_name: str) -> str:
    """Build-A-Bench's image name: env_agent__<repo name>, lower-cased, '#' replaced by '__'."""
    return f"env_agent__{repo_name}".lower().replace("#", "__")


ENGINE_TIMEOUT_S = 60.0  # an engine command that is no container run (inspect, rm)


def engine_command(engine: str, *args: str) -> ExecResult:
    """One engine command (not a container run), bounded like every command; raises SandboxError when the engine
    cannot start."""
    return run_bounded([engine, *args], cwd=None, env=None, timeout_s=ENGINE_TIMEOUT_S, max_output_bytes=100_000)


def remove_container(engine: str, name: str) -> None:
    """Kill and remove a container at once (killing its client does not stop it). `rm -f` waits for the stop
    timeout unless podman is told -t 0, which docker's rm does not take: there, kill (SIGKILL) first."""
    if engine == "podman":
        engine_command(engine, "rm", "-f", "-t", "0", name)
    else:
        engine_command(engine, "kill", name)
        engine_command(engine, "rm", "-f", name)


def image_exists(engine: str, image: str) -> bool:
    """Whether the engine has ``image``; False also when the engine is missing or does not answer."""
    try:
        return engine_command(engine, "image", "exists" if engine == "podman" else "inspect", image).ok
    except SandboxError:
        return False


class ContainerSandbox(Sandbox):
    """Each command runs in a fresh container of ``image`` with the working copy mounted at /repo."""

    name = "podman"

    def __init__(
        self,
        repo_dir: Path,
        *,
        image: str,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        session: bool = False,
    ) -> None:
        if shutil.which(self.name) is None:
            raise SandboxError(f"{self.name} is not installed: {INSTALL_HINT[self.name]}")
        if not image_exists(self.name, image):
            raise SandboxError(
                f"image {image!r} not found in {self.name}: build it with `repogym env build REPO --backend "
                f"{self.name} --dockerfile FILE`"
            )
        super().__init__(repo_dir, env=env, limits=limits, session=session)
        self.image = image
        self._session_name = f"repogym-session-{uuid.uuid4().hex[:12]}"

    def run_argv(self, extra: list[str] | None = None) -> list[str]:
        """The Build-A-Bench command line, sealed: no capability, no privilege gain, bounded processes and memory
        (disk is watched from the host: a --ulimit here makes crun reset RLIMIT_NOFILE, which some hosts refuse);
        with optional extra options before the image."""
        lim = self.limits
        sealed = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", f"--pids-limit={lim.max_processes}"]
        sealed += [f"--memory={lim.memory_bytes}", f"--memory-swap={lim.memory_bytes}"]
        mount = ["-v", f"{self.repo_dir}:{REPO}:rw"]
        return [self.name, "run", "--rm", "--network", "none", *sealed, *mount, *(extra or [])]

    def _session_argv(self) -> list[str]:
        """One container for the whole session: the image's python3 runs the command server (stdin attached)."""
        extra = ["-i", "--name", self._session_name, "-v", f"{self.tmp_dir}:/tmp:rw"]
        if self.pytest_python:  # a warm server starts as a command would: its children inherit how it started
            for k, v in self.command_env().items():
                extra += ["-e", f"{k}={v}"]
        return [*self.run_argv(extra), self.image, *self.session_server("python3", "/tmp")]

    def close(self) -> None:
        if self._session is not None:
            # Killing the client does not stop the container: remove it by name.
            remove_container(self.name, self._session_name)
        super().close()

    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout_s: float, max_output_bytes: int
    ) -> ExecResult:
        if self.session:
            return self._session_exec(argv, cwd, env, timeout_s, max_output_bytes)
        name = f"repogym-{uuid.uuid4().hex[:12]}"
        extra = ["--name", name, "-v", f"{self.tmp_dir}:/tmp:rw", "-w", cwd]
        for k, v in env.items():
            extra += ["-e", f"{k}={v}"]

        def kill() -> None:
            # Killing the client does not stop the container: remove it by name.
            remove_container(self.name, name)

        return run_bounded(
            [*self.run_argv(extra), self.image, *argv],
            cwd=None,
            env=None,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            on_timeout=kill,
            watch=self.over_disk,
        )


class PodmanSandbox(ContainerSandbox):
    name = "podman"


class DockerSandbox(ContainerSandbox):
    name = "docker"
