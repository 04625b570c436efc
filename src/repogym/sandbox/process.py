"""The `process` backend: plain subprocesses, no isolation. Only used when asked for by name."""

from __future__ import annotations

from pathlib import Path

from repogym.sandbox.base import REPO, ExecResult, Sandbox, run_bounded


class ProcessSandbox(Sandbox):
    """Runs commands directly on the host, in the working copy. The command sees host paths."""

    name = "process"
    isolated = False

    @property
    def tmp_inside(self) -> str:
        return str(self.tmp_dir)

    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout_s: float, max_output_bytes: int
    ) -> ExecResult:
        import os

        host_cwd = self.host_path(cwd) if cwd.startswith((REPO, self.tmp_inside)) else Path(cwd)
        full_env = {**os.environ, **env, "REPO": str(self.repo_dir)}
        return run_bounded(argv, cwd=host_cwd, env=full_env, timeout_s=timeout_s, max_output_bytes=max_output_bytes)
