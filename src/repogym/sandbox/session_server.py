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
import shutil
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
        pytest_child(req, out.fileno(), err.fileno(), PRECONFIGS.get(excluded_plugins(req["pytest"])))
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


def pytest_child(req: dict[str, Any], out: int, err: int, preconfig: Any = None) -> None:
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
        code = int(preconfigured_main(preconfig, req["pytest"]) if preconfig is not None else main_of(req["pytest"]))
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


def main_of(args: list[str]) -> int:
    import pytest

    return int(pytest.main(args))


# pytest.main's first step, get_config (a plugin manager with pytest's own plugins imported, registered and their
# options added: about 10 ms a run), depends on nothing of the working copy but the plugins the arguments exclude
# (-p no:NAME). The server makes one for each such set it has run, after that run, and its later children start from
# it, then go on as pytest.main does (_prepareconfig's parse, then the main hook). pytest 7 to 9 take the same steps;
# other versions run pytest.main; a failed parse is reported as preconfigured_main says.
PRECONFIGS: dict[tuple[str, ...], Any] = {}


def excluded_plugins(args: list[str]) -> tuple[str, ...]:
    """The ``-p no:NAME`` arguments, read as get_config reads them (``-p NAME`` or ``-pNAME``)."""
    out, i = [], 0
    while i < len(args):
        arg, i = args[i], i + 1
        if arg == "-p" and i < len(args):
            arg, i = "-p" + args[i], i + 1
        if arg.startswith("-p") and arg[2:].strip().startswith("no:"):
            out.append(arg[2:].strip())
    return tuple(out)


def preconfigure(args: list[str]) -> None:
    """Make the config that children running ``args`` start from, once per set of excluded plugins."""
    key = excluded_plugins(args)
    if key in PRECONFIGS:
        return
    PRECONFIGS[key] = None  # tried: a failure is not tried again
    with contextlib.suppress(Exception):
        import pytest
        from _pytest.config import Config, get_config

        if int(pytest.__version__.split(".")[0]) in (7, 8, 9) and hasattr(Config, "InvocationParams"):
            PRECONFIGS[key] = get_config([arg for name in key for arg in ("-p", name)])
            if hasattr(gc, "freeze"):  # out of the children's collections, as what warm_pytest imported
                gc.collect()
                gc.freeze()


def preconfigured_main(config: Any, args: list[str]) -> int:
    """pytest.main(args) from a config made by ``preconfigure``: what _pytest.config._main does after get_config.
    A failed parse is reported with pytest's own printers where it has them (pytest 9); otherwise pytest.main runs
    from scratch and reports it."""
    import _pytest.config as pc
    import pytest

    config.invocation_params = pc.Config.InvocationParams(args=args, plugins=None, dir=Path.cwd())
    if tuple(int(n) for n in pytest.__version__.split(".")[:2] if n.isdigit()) >= (8, 2):
        os.environ["PYTEST_VERSION"] = pytest.__version__
    try:
        config = config.pluginmanager.hook.pytest_cmdline_parse(pluginmanager=config.pluginmanager, args=args)
    except BaseException as e:
        config._ensure_unconfigure()  # as _prepareconfig does
        failure = {"ConftestImportFailure": ("print_conftest_import_error", 4),
                   "PluginImportFailure": ("print_plugin_import_error", 3),
                   "UsageError": ("print_usage_error", 4)}.get(type(e).__name__)  # fmt: skip
        printer = getattr(pc, failure[0], None) if failure else None
        if failure is None or printer is None:
            return main_of(args)  # pytest.main says what failed, in its own words
        printer(e, file=sys.stderr)
        return failure[1]
    try:
        return int(config.hook.pytest_cmdline_main(config=config))
    except pc.UsageError as e:
        if hasattr(pc, "print_usage_error"):
            pc.print_usage_error(e, file=sys.stderr)
        else:
            for msg in e.args:
                sys.stderr.write(f"ERROR: {msg}\n\n")
        return 4
    finally:
        config._ensure_unconfigure()


# Standard-library modules a pytest run imports on the way (the debugging plugin, the ini reader, faulthandler):
# imported once here instead of in every child (about 10 ms a run).
RUN_IMPORTS = ("pdb", "code", "codeop", "cmd", "readline", "faulthandler", "tomllib", "email.parser")


# What a run leaves in the process for the next (regular expressions compiled, lazy imports, pytest's own caches)
# is lost with each child: a rehearsal in the server, one pytest run of a passing and a failing test of its own,
# leaves it for every child to inherit (about 6 ms of a 35 ms run; the rehearsal costs about 40 ms once).
REHEARSAL = """
def test_passes():
    assert [1, 2] == [1, 2]


def test_fails():
    assert {"a": 1} == {"a": 2}, "differs"
"""
REHEARSAL_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": "", "PYTEST_PLUGINS": ""}


def rehearse() -> None:
    """Run pytest once, in a folder of /tmp, with no conftest, no plugin outside pytest and no output; the
    process is then as it was (working folder, import path, environment, standard streams, the temporary folder
    not yet chosen, no last exception), pytest's warmth aside. A rehearsal that fails leaves the server cold-ish,
    never dead."""
    path, cwd, environ, tempdir = sys.path[:], os.getcwd(), dict(os.environ), tempfile.tempdir
    streams = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    folder = ""
    try:
        import pytest

        folder = tempfile.mkdtemp(prefix="repogym-rehearsal-")
        Path(folder, "test_repogym_rehearsal.py").write_text(REHEARSAL)
        Path(folder, "pytest.ini").write_text("[pytest]\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.chdir(folder)
        os.environ.update(REHEARSAL_ENV)
        pytest.main(["-rA", "-p", "no:cacheprovider", "--noconftest", "-c", f"{folder}/pytest.ini",
                     f"--junitxml={folder}/junit.xml", "--tb=native", folder])  # fmt: skip
    except BaseException:  # noqa: BLE001, S110 - a rehearsal is an optimisation
        pass
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        for fd, saved in enumerate(streams, 1):
            os.dup2(saved, fd)
            os.close(saved)
        os.close(null)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
        tempfile.tempdir = tempdir  # each run's own TMPDIR decides
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):  # the failing test's, with its frames
            if hasattr(sys, name):
                delattr(sys, name)
        sys.modules.pop("test_repogym_rehearsal", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


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
    rehearse()
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
        req = json.loads(line)
        sys.stdout.write(json.dumps(run(req, out_dir, disk_limit, roots)) + "\n")
        sys.stdout.flush()
        if warm and "pytest" in req:
            preconfigure(req["pytest"])


if __name__ == "__main__":  # run with `python -c` inside the sandbox; imported by repogym for disk_usage
    main()
