"""The command server of a sandbox session: runs inside the sandbox, one command at a time, stdlib only.

Read by ``session.py`` and passed to the sandbox's Python with ``-c``; it imports nothing of repogym (and repogym
imports its ``disk_usage``, so the limit is measured one way inside and outside a sandbox). Protocol:
one JSON line in (argv, cwd, env, timeout_s, max_output_bytes), one JSON line out (exit_code, stdout, stderr,
timed_out, seconds, truncated, limit). Each command runs in its own session; when it ends, times out or the
sandbox's disk passes its limit, every other process of the sandbox's PID namespace is killed, so no command
leaves anything running for the next one (the same contract as one sandbox per command).

Warm pytest (``--pytest``, run by the environment's own interpreter): the server imports pytest once, and a
request with ``pytest`` (its arguments) instead of ``argv`` forks a child that calls ``pytest.main`` with the
request's working directory, environment and output files, as ``python -m pytest ARGS`` would, without paying
for the interpreter's start and pytest's import on every run (most of a small suite's run). The server refuses
to be warm ("ready" alone) when importing pytest imported any file of the working copy (the project is pytest,
pluggy or a library pytest uses): a child would then test the modules as they were, not as changed.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.25


def disk_usage(*roots: str | Path) -> int:
    """Bytes allocated under ``roots``, links not followed (a hard-linked file counts once)."""
    total, seen, stack = 0, set[tuple[int, int]](), [str(r) for r in roots]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def kill_others() -> None:
    """Kill every process of this PID namespace but its init and this server (what the command left behind)."""
    keep = {1, os.getpid()}
    for _ in range(3):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def read_capped(f: Any, cap: int) -> tuple[str, bool]:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    text = f.read(cap).decode(errors="replace")
    if size > cap:
        text += f"\n[repogym: output truncated at {cap} bytes; {size - cap} more bytes dropped]\n"
    return text, size > cap


def run(req: dict[str, Any], out_dir: str, disk_limit: int, roots: list[str]) -> dict[str, Any]:
    start = time.monotonic()
    with tempfile.TemporaryFile(dir=out_dir) as out, tempfile.TemporaryFile(dir=out_dir) as err:
        if "pytest" in req:
            wait = fork_pytest(req, out, err)
        else:
            try:
                proc = subprocess.Popen(
                    req["argv"],
                    cwd=req["cwd"],
                    env=req["env"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as e:
                return {"exit_code": 127, "stdout": "", "stderr": f"{req['argv'][0]}: {e.strerror}\n", "seconds": 0.0}
            wait = popen_wait(proc)
        deadline, limit = start + req["timeout_s"], ""
        code: int | None = None
        while code is None:
            code = wait(max(0.0, min(POLL_S, deadline - time.monotonic())))
            if code is None:
                if time.monotonic() >= deadline:
                    break
                if disk_usage(*roots) > disk_limit:
                    limit = "disk"
                    break
        timed_out = code is None and not limit
        kill_others()
        while code is None:
            code = wait(None)
        cap = req["max_output_bytes"]
        stdout, t1 = read_capped(out, cap)
        stderr, t2 = read_capped(err, cap)
    return {
        "exit_code": None if timed_out else code,
        "stdout": stdout,
        "stderr": stderr,
        "timed_out": timed_out,
        "seconds": time.monotonic() - start,
        "truncated": t1 or t2,
        "limit": limit,
    }


def popen_wait(proc: subprocess.Popen[bytes]) -> Callable[[float | None], int | None]:
    """Wait up to a time (None: until it ends) for the command; its exit code, or None while it runs."""

    def wait(timeout_s: float | None) -> int | None:
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    return wait


def fork_pytest(req: dict[str, Any], out: Any, err: Any) -> Callable[[float | None], int | None]:
    """Start ``pytest.main(req["pytest"])`` in a forked child; the same waiting function as ``popen_wait``."""
    pid = os.fork()
    if pid == 0:
        pytest_child(req, out.fileno(), err.fileno())
    try:
        pidfd = os.pidfd_open(pid)  # wakes the wait the moment the child ends
    except (AttributeError, OSError):  # an old kernel, or a seccomp profile that refuses it: poll
        pidfd = -1

    def wait(timeout_s: float | None) -> int | None:
        if pidfd >= 0:
            if timeout_s is not None and not select.select([pidfd], [], [], timeout_s)[0]:
                return None
            os.close(pidfd)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    return wait


def pytest_child(req: dict[str, Any], out: int, err: int) -> None:
    """In the forked child: become ``cd CWD && env -i ENV python -m pytest ARGS`` and exit with its code."""
    code = 1
    try:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - the process ends with os._exit
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
        sys.path[0] = req["cwd"]  # what `python -m` puts first
        sys.argv = ["pytest", *req["pytest"]]
        import pytest

        code = int(pytest.main(req["pytest"]))
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# Standard-library modules a pytest run imports on the way (the debugging plugin, the ini reader, faulthandler):
# imported once here instead of in every child (about 10 ms a run).
RUN_IMPORTS = ("pdb", "code", "codeop", "cmd", "readline", "faulthandler", "tomllib", "email.parser")


def warm_pytest(repo: str) -> bool:
    """Import pytest and its built-in plugins for every child to inherit; False when that imported a file of the
    working copy. What is imported is then frozen out of the garbage collector's reach: pytest collects at the
    end of every run, and a collection that walks the whole of pytest costs a run about 15 ms."""
    try:
        import _pytest.config
        import pytest  # noqa: F401
    except ImportError:
        return False
    for name in [*(f"_pytest.{n}" for n in getattr(_pytest.config, "default_plugins", ())), *RUN_IMPORTS]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    gc.collect()
    if hasattr(gc, "freeze"):  # Python 3.7+
        gc.freeze()
    inside = repo.rstrip("/") + "/"
    return not any(str(getattr(m, "__file__", None) or "").startswith(inside) for m in list(sys.modules.values()))


def main() -> None:
    """argv: [--pytest], the disk limit in bytes, then the directories it bounds (the working copy and /tmp)."""
    args = sys.argv[1:]
    pytest_mode = args[0] == "--pytest"
    disk_limit, roots = int(args[pytest_mode]), args[pytest_mode + 1 :]
    warm = pytest_mode and warm_pytest(roots[0])
    out_dir = tempfile.mkdtemp(prefix="repogym-session-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    sys.stdout.write("ready pytest\n" if warm else "ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line), out_dir, disk_limit, roots)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":  # run with `python -c` inside the sandbox; imported by repogym for disk_usage
    main()
