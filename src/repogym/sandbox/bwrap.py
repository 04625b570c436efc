"""The `bwrap` backend: bubblewrap with a read-only system, the working copy at /repo and no network."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from repogym.errors import SandboxError
from repogym.sandbox.base import REPO, ExecResult, Sandbox, run_bounded

_SKIP = {"proc", "dev", "tmp", "repo"}


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None


def system_binds() -> list[str]:
    """Bind each top-level host directory read-only, one by one.

    Binding / itself would make / read-only before /repo can be created; binding its children leaves bwrap's own
    root free for the /repo and /tmp mount points, and --remount-ro then seals that root too.
    """
    args: list[str] = []
    for entry in sorted(os.listdir("/")):
        path = f"/{entry}"
        if entry in _SKIP:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


class BwrapSandbox(Sandbox):
    """Each command runs in a new bubblewrap: own PID, network, IPC and UTS namespaces, killed as a group."""

    name = "bwrap"

    def __init__(
        self,
        repo_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        extra_binds: Mapping[str, str] | None = None,
        ro_binds: Mapping[str, str] | None = None,
    ) -> None:
        if not bwrap_available():
            raise SandboxError("bubblewrap is not installed: run `apt-get install bubblewrap` (or pick --backend)")
        super().__init__(repo_dir, env=env)
        self.network = network
        self.extra_binds = dict(extra_binds or {})
        # Host paths under /tmp (a venv in a test's cache, say) are hidden by the private /tmp unless bound again.
        self.ro_binds = dict(ro_binds or {})
        self._prefix = self._build_prefix()

    def _build_prefix(self) -> list[str]:
        args = ["bwrap", *system_binds(), "--dev", "/dev", "--proc", "/proc"]
        args += ["--bind", str(self.tmp_dir), "/tmp", "--bind", str(self.repo_dir), REPO]
        for host, inside in self.extra_binds.items():
            args += ["--bind", host, inside]
        for host, inside in self.ro_binds.items():
            args += ["--ro-bind", host, inside]
        args += ["--remount-ro", "/", "--unshare-all", "--die-with-parent", "--new-session"]
        if self.network:
            args.append("--share-net")
        return args

    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout_s: float, max_output_bytes: int
    ) -> ExecResult:
        path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        full = [*self._prefix, "--clearenv", "--chdir", cwd]
        for k, v in {**env, "PATH": path}.items():
            full += ["--setenv", k, v]
        return run_bounded(
            [*full, "--", *argv], cwd=None, env=None, timeout_s=timeout_s, max_output_bytes=max_output_bytes
        )
