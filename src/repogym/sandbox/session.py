"""Sandbox sessions: one long-lived sandbox per rollout serves every command, at near a plain subprocess's cost.

Starting bubblewrap (or a container) for each command costs 10 ms (or 300 ms); a session starts it once, with a
small command server inside (``session_server.py``, run by the interpreter the sandbox already binds), and
sends it one JSON line per command. The contract is the one of ``Sandbox.exec``: bounded time and output, the
command's whole process tree (and anything else it started) killed when it ends or times out, the same seal.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from repogym.errors import SandboxDied

SERVER = (Path(__file__).with_name("session_server.py")).read_text()
START_TIMEOUT_S = 60.0
GRACE_S = 30.0  # beyond a command's own timeout, before the host gives up on the server


# Every server is started by this one thread, which lives as long as the process: a sandbox that dies with its
# parent (bwrap --die-with-parent, the kernel's parent-death signal) dies with the *thread* that started it, and a
# kept server outlives the worker thread of the stage that first ran a command in it (the workflow's checks reuse
# validation's; servers opened ahead are started by threads that end at once).
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repogym-session-start")


class Session:
    """The command server's process and its two pipes; ``run`` is called by one thread at a time."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = _STARTER.submit(
            subprocess.Popen,
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ).result()
        self._buf = b""
        ready = self._line(START_TIMEOUT_S)
        if ready not in (b"ready", b"ready pytest"):
            self.close()
            raise SandboxDied("the sandbox session did not start (no Python inside, or the sandbox failed)")
        self.warm_pytest = ready == b"ready pytest"  # the server forks pytest runs (see session_server.py)

    @staticmethod
    def server_args(python: str, disk_bytes: int, roots: list[str], pytest: bool = False) -> list[str]:
        """The server's command line: isolated (-I -S) on any Python; with ``pytest``, on the environment's own
        interpreter with its site-packages, to import pytest once."""
        head = [python, "-c", SERVER, "--pytest"] if pytest else [python, "-I", "-S", "-c", SERVER]
        return [*head, str(disk_bytes), *roots]

    def run(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        timeout_s: float,
        max_output_bytes: int,
        pytest_args: list[str] | None = None,
    ) -> dict[str, Any]:
        """Run one command (with ``pytest_args``: ``pytest.main`` of them in a forked child of a warm server): the
        server's reply (ExecResult's fields), or a timed-out reply when the server stays silent past the
        command's timeout (the session is then closed). Raises SandboxDied when it is gone."""
        req: dict[str, Any] = {"cwd": cwd, "env": env, "timeout_s": timeout_s, "max_output_bytes": max_output_bytes}
        req.update({"pytest": pytest_args} if pytest_args is not None else {"argv": argv})
        start = time.monotonic()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(req).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise SandboxDied(f"the sandbox session is gone ({e})") from e
        line = self._line(timeout_s + GRACE_S)
        if line is None:
            self.close()
            return {
                "exit_code": None,
                "stdout": "",
                "stderr": "",
                "timed_out": True,
                "seconds": time.monotonic() - start,
            }
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _line(self, timeout_s: float) -> bytes | None:
        """The next line the server writes, or None when it ends or stays silent past ``timeout_s``."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SandboxDied("the sandbox session ended unexpectedly")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
