"""The sandbox contract: run commands against a working copy, bounded in time and output.

A failing command is data (an ExecResult), not an exception. Methods raise SandboxError only when the sandbox
itself is unusable (its binary is missing, its image does not exist, it was closed).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from repogym.errors import SandboxDied, SandboxError
from repogym.sandbox.limits import Cgroup, Limits, human
from repogym.sandbox.session import Session
from repogym.sandbox.session_server import disk_usage

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_OUTPUT = 1_000_000
_CHUNK = 65536
REPO = "/repo"
WATCH_INTERVAL_S = 0.25


@dataclass
class ExecResult:
    """The outcome of one command. ``exit_code`` is None when the command was killed at its timeout."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    truncated: bool = False
    limit: str = ""  # the resource limit that stopped the command, in words; empty when none did

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _CappedReader(threading.Thread):
    """Drain a pipe to the end, keeping at most ``cap`` bytes: memory stays flat whatever the command prints."""

    def __init__(self, pipe: object, cap: int) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    def run(self) -> None:
        read = self.pipe.read1 if hasattr(self.pipe, "read1") else self.pipe.read  # type: ignore[attr-defined]
        while chunk := read(_CHUNK):
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.kept.decode(errors="replace")
        if self.dropped:
            out += f"\n[repogym: output truncated at {self.cap} bytes; {self.dropped} more bytes dropped]\n"
        return out


def run_bounded(
    argv: list[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None,
    timeout_s: float,
    max_output_bytes: int,
    on_timeout: Callable[[], None] | None = None,
    watch: Callable[[], str] | None = None,
) -> ExecResult:
    """Run ``argv`` in its own process group; on timeout kill the whole group (and call ``on_timeout``).

    ``watch`` is polled while the command runs; when it returns a reason (a limit passed) the group is killed
    the same way and the result carries that reason in ``limit``.
    """
    start = time.monotonic()
    proc = _start(argv, cwd, env)
    readers = [_CappedReader(proc.stdout, max_output_bytes), _CappedReader(proc.stderr, max_output_bytes)]
    for r in readers:
        r.start()
    timed_out, limit = False, ""
    try:
        limit = _wait(proc, start + timeout_s, watch)
        timed_out = proc.returncode is None and not limit
        if proc.returncode is None:
            kill_group(proc.pid)
            if on_timeout:
                on_timeout()
            proc.wait()
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise
    for r in readers:
        # A grandchild that escaped the group may hold the pipe open; do not wait on it forever.
        r.join(timeout=5)
    return ExecResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=readers[0].text(),
        stderr=readers[1].text(),
        timed_out=timed_out,
        seconds=time.monotonic() - start,
        truncated=any(r.dropped for r in readers),
        limit=limit,
    )


def _start(argv: list[str], cwd: Path | None, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    """The process in a session (and group) of its own, its output piped; SandboxError when it cannot start."""
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except OSError as e:
        raise SandboxError(f"cannot start {argv[0]}: {e.strerror}") from e


def _wait(proc: subprocess.Popen[bytes], deadline: float, watch: Callable[[], str] | None) -> str:
    """Wait until the process ends, the deadline passes, or ``watch`` names a passed limit (returned).

    On Linux a pidfd wakes the wait the moment the process exits (``Popen.wait`` with a timeout polls, up to
    50 ms late, on every command of every run)."""
    try:
        fd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ""
            step = min(left, WATCH_INTERVAL_S) if watch else left
            if _exited(proc, fd, step):
                return ""
            reason = watch() if watch else ""
            if reason:
                return reason
    finally:
        if fd is not None:
            os.close(fd)


def _exited(proc: subprocess.Popen[bytes], fd: int | None, seconds: float) -> bool:
    if fd is None:
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    select.select([fd], [], [], seconds)
    return proc.poll() is not None


def kill_group(pid: int) -> None:
    """SIGKILL a whole process group (a timeout must leave no grandchild behind)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class Sandbox(ABC):
    """A working copy mounted at /repo, plus a private /tmp, in which commands run.

    Used as a context manager; ``close`` removes the private /tmp. Subclasses define how a command is wrapped.
    """

    name: str = ""
    isolated: bool = True

    def __init__(
        self,
        repo_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        session: bool = False,
    ) -> None:
        self.repo_dir = Path(repo_dir).resolve()
        if not self.repo_dir.is_dir():
            raise SandboxError(f"{repo_dir}: the working copy does not exist")
        self.base_env = dict(env or {})
        self.limits = limits or Limits()
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"repogym-{self.name}-tmp-"))
        self.closed = False
        self._cgroup: Cgroup | None = None
        # One long-lived sandbox serving every command (see session.py), where the backend offers one.
        self.session = session
        self._session: Session | None = None
        # The interpreter of a warm pytest session (set by warm_pytest()); None: sessions run commands only.
        self.pytest_python: str | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._session is not None:
                self._session.close()
            if self._cgroup is not None:
                self._cgroup.remove()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def cgroup(self) -> Cgroup | None:
        """The sandbox's own cgroup, made on first use (None where none can be made: rlimits stand in)."""
        if self._cgroup is None:
            self._cgroup = Cgroup.create(self.limits)
        return self._cgroup

    def _session_argv(self) -> list[str]:
        """The command that starts this backend's session server (backends with sessions override it)."""
        raise SandboxError(f"the {self.name} backend has no sessions")

    def _session_exec(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        timeout_s: float,
        max_output_bytes: int,
        pytest_args: list[str] | None = None,
    ) -> ExecResult:
        """Run a command through the session, starting (or restarting) the session when it is not running."""
        session = self._live_session()
        result = ExecResult(**session.run(argv, cwd, env, timeout_s, max_output_bytes, pytest_args))
        if result.limit == "disk":
            result.limit = self.over_disk() or f"disk limit ({human(self.limits.disk_bytes)}) passed"
        return result

    def start(self) -> None:
        """Start the session's server now instead of at the first command (a sandbox opened ahead of need)."""
        if self.session and not self.closed:
            self._live_session()

    def _live_session(self) -> Session:
        if self._session is None or not self._session.alive:
            self._session = Session(self._session_argv())
        return self._session

    def session_server(self, python: str, tmp: str) -> list[str]:
        if self.pytest_python:
            return Session.server_args(self.pytest_python, self.limits.disk_bytes, [REPO, tmp], pytest=True)
        return Session.server_args(python, self.limits.disk_bytes, [REPO, tmp])

    def warm_pytest(self, python: str) -> None:
        """Serve this sandbox's commands from a session whose server, run by ``python`` (the environment's), has
        imported pytest: ``run_pytest`` then costs a fork instead of an interpreter's start and pytest's import."""
        if self._session is not None:
            raise SandboxError("warm_pytest() must come before the sandbox's first command")
        self.session, self.pytest_python = True, python

    def run_pytest(
        self,
        args: list[str],
        cwd: str = REPO,
        env: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult | None:
        """``python -m pytest ARGS`` in a forked child of the warm server, under ``exec``'s contract; None when
        this sandbox has no warm server (the caller runs the command instead)."""
        if self.pytest_python is None or self.closed:
            return None
        if not self._live_session().warm_pytest:
            return None
        full_env = self.command_env(env)
        before = self._cgroup.counters() if self._cgroup else (0, 0)
        result = self._session_exec([], cwd, full_env, timeout_s, max_output_bytes, pytest_args=args)
        result.limit = result.limit or self._limit_after(before, result)
        return result

    def command_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a command sees: HOME and TMPDIR in the private /tmp, the sandbox's environment, then ``env``."""
        full = {"HOME": self.tmp_inside, "TMPDIR": self.tmp_inside, "LANG": "C.UTF-8"}
        return {**full, **self.base_env, **(env or {})}

    def over_disk(self) -> str:
        """The disk limit's reason when the working copy and /tmp hold more than it allows, else ''."""
        used = disk_usage(self.repo_dir, self.tmp_dir)
        if used <= self.limits.disk_bytes:
            return ""
        return f"disk limit ({human(self.limits.disk_bytes)}) passed: /repo and /tmp hold {human(used)}"

    def _limit_after(self, before: tuple[int, int], result: ExecResult) -> str:
        refused, oom = self._cgroup.counters() if self._cgroup else (0, 0)
        if oom > before[1]:
            return f"memory limit ({human(self.limits.memory_bytes)}) reached: the kernel killed a process"
        if refused > before[0]:
            return f"process limit ({self.limits.max_processes}) reached: new processes were refused"
        if result.exit_code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return f"disk limit ({human(self.limits.disk_bytes)}) passed by one file: the writer was killed"
        return self.over_disk()

    @property
    def tmp_inside(self) -> str:
        """Where the private temporary directory is, as commands inside the sandbox see it."""
        return "/tmp"

    def exec(
        self,
        cmd: str | list[str],
        cwd: str = REPO,
        env: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run ``cmd`` (a shell string or an argv list) in ``cwd`` inside the sandbox.

        A resource limit that stopped the command is named in the result's ``limit``. Raises SandboxError only
        if the sandbox is closed or cannot start.
        """
        if self.closed or not self.repo_dir.is_dir():
            raise SandboxDied(f"the {self.name} sandbox for {self.repo_dir} is closed or its working copy is gone")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = self.command_env(env)
        before = self._cgroup.counters() if self._cgroup else (0, 0)
        result = self._run(argv, cwd, full_env, timeout_s, max_output_bytes)
        result.limit = result.limit or self._limit_after(before, result)
        return result

    @abstractmethod
    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout_s: float, max_output_bytes: int
    ) -> ExecResult: ...

    def host_path(self, path: str) -> Path:
        """The host path of a sandbox path under /repo or /tmp (relative paths are under /repo).

        Symlinks are resolved on the host and a path that leads out of the working copy or /tmp is refused, so
        a link the agent planted (``ln -s /etc/passwd /repo/x``) can never make the file tools reach the host.
        """
        p = PurePosixPath(path if path.startswith("/") else f"{REPO}/{path}")
        for inside, host in ((PurePosixPath(REPO), self.repo_dir), (PurePosixPath(self.tmp_inside), self.tmp_dir)):
            if p == inside or inside in p.parents:
                rel = p.relative_to(inside)
                if ".." in rel.parts:
                    break
                root = Path(os.path.realpath(host))
                target = Path(os.path.realpath(root / rel))
                if target != root and root not in target.parents:
                    raise SandboxError(f"{path}: a symlink leads out of {inside}; the file tools refuse it")
                return target
        raise SandboxError(f"{path}: only paths under {REPO} or {self.tmp_inside} can be read or written")

    def read_file(self, path: str) -> str:
        """Read a text file; raises FileNotFoundError like open() when it is missing."""
        target = self.host_path(path)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_nlink > 1 and not os.path.isdir(target):
                raise SandboxError(f"{path}: the file has {st.st_nlink} hard links; the file tools refuse them")
            return f.read().decode(errors="replace")

    def write_file(self, path: str, content: str) -> None:
        """Write through a new file renamed into place: a hard link or a symlink at ``path`` is replaced,
        never followed, so no write can land outside the working copy."""
        target = self.host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.host_path(path)  # the parents just made may not lead out either
        fd, tmp = tempfile.mkstemp(prefix=".repogym-", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(content)
            os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
