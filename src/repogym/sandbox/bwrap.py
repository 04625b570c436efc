"""The `bwrap` backend: bubblewrap with a read-only system, the working copy at /repo and no network."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from repogym.errors import SandboxError
from repogym.sandbox.base import REPO, ExecResult, Sandbox, run_bounded
from repogym.sandbox.limits import Limits, wrap

# The read-only system a program needs; nothing else of the host (no /home, /root, /run, /var, /work, /opt, ...).
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
# Credentials that /etc may hold, hidden behind an empty file or directory.
ETC_SECRETS = (
    "shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl/private", "security/opasswd",
    "apt/auth.conf", "apt/auth.conf.d", "pip.conf", "netrc", "docker", "containers/auth.json", "credstore",
    "credstore.encrypted", "krb5.keytab", "machine-id",
)  # fmt: skip
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Inside the sandbox the user is nobody; host files keep their owner (the id repogym runs as).
SANDBOX_UID = "65534"


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None


def system_binds(mask_secrets: bool = True) -> list[str]:
    """Bind the system directories read-only, one by one, with the secrets in /etc masked.

    Only an environment build (network on, no agent, the project's own install) keeps /etc whole: pip may need
    the machine's index settings and certificates from it.

    Binding / itself would make / read-only before /repo can be created; binding its children leaves bwrap's own
    root free for the /repo and /tmp mount points, and --remount-ro then seals that root too. The interpreter
    repogym's virtualenvs are made from is bound too when it lives outside them (pyenv under /root, say).
    """
    args: list[str] = []
    for entry in SYSTEM_DIRS:
        path = f"/{entry}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for secret in ETC_SECRETS if mask_secrets else ():
        path = f"/etc/{secret}"
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--tmpfs", path, "--remount-ro", path]
        elif os.path.lexists(path):
            args += ["--ro-bind", "/dev/null", path]
    base = os.path.realpath(sys.base_prefix)
    if not base.startswith(tuple(f"/{d}/" for d in SYSTEM_DIRS)):
        args += ["--ro-bind", base, base]
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
        limits: Limits | None = None,
        session: bool = False,
    ) -> None:
        if not bwrap_available():
            raise SandboxError("bubblewrap is not installed: run `apt-get install bubblewrap` (or pick --backend)")
        super().__init__(repo_dir, env=env, limits=limits, session=session)
        self.network = network
        self.extra_binds = dict(extra_binds or {})
        # Host paths under /tmp (a venv in a test's cache, say) are hidden by the private /tmp unless bound again.
        self.ro_binds = dict(ro_binds or {})
        self._prefix = self._build_prefix()

    def _build_prefix(self) -> list[str]:
        args = ["bwrap", *system_binds(mask_secrets=not self.network), "--dev", "/dev", "--proc", "/proc"]
        args += ["--bind", str(self.tmp_dir), "/tmp", "--bind", str(self.repo_dir), REPO]
        for host, inside in self.extra_binds.items():
            args += ["--bind", host, inside]
        for host, inside in self.ro_binds.items():
            args += ["--ro-bind", host, inside]
        args += ["--remount-ro", "/", "--unshare-all", "--die-with-parent", "--new-session"]
        # No privilege inside, even when repogym runs as root: no capability (mount, mknod, ptrace, raw
        # sockets are refused), an unprivileged uid, and no nested user namespace to win capabilities back.
        args += ["--unshare-user", "--uid", SANDBOX_UID, "--gid", SANDBOX_UID, "--disable-userns", "--cap-drop", "ALL"]
        if self.network:
            args.append("--share-net")
        return args

    def _session_argv(self) -> list[str]:
        # The server runs on the interpreter repogym's environments are made from, which system_binds() binds.
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        argv = [*self._prefix, "--clearenv", "--chdir", "/"]
        if self.pytest_python:  # a warm server starts as a command would: its children inherit how it started
            for k, v in {"PATH": DEFAULT_PATH, **self.command_env()}.items():
                argv += ["--setenv", k, v]
        argv += ["--", *self.session_server(python, "/tmp")]
        return wrap(argv, self.limits, self.cgroup())

    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout_s: float, max_output_bytes: int
    ) -> ExecResult:
        path = env.get("PATH", DEFAULT_PATH)
        if self.session:
            return self._session_exec(argv, cwd, {**env, "PATH": path}, timeout_s, max_output_bytes)
        full = [*self._prefix, "--clearenv", "--chdir", cwd]
        for k, v in {**env, "PATH": path}.items():
            full += ["--setenv", k, v]
        return run_bounded(
            wrap([*full, "--", *argv], self.limits, self.cgroup()),
            cwd=None,
            env=None,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            watch=self.over_disk,
        )
