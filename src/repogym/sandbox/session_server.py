"""The command server of a sandbox session: runs inside the sandbox, one command at a time, stdlib only.

Read by ``session.py`` and passed to the sandbox's Python with ``-c``; it imports nothing of repogym (and repogym
imports its ``disk_usage``, so the limit is measured one way inside and outside a sandbox). Protocol:
one JSON line in (argv, cwd, env, timeout_s, max_output_bytes), one JSON line out (exit_code, stdout, stderr,
timed_out, seconds, truncated, limit). Each command runs in its own session; when it ends, times out or the
sandbox's disk passes its limit, every other process of the sandbox's PID namespace is killed, so no command
leaves anything running for the next one (the same contract as one sandbox per command).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
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
        deadline, limit = start + req["timeout_s"], ""
        code: int | None = None
        while code is None:
            try:
                code = proc.wait(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    break
                if disk_usage(*roots) > disk_limit:
                    limit = "disk"
                    break
        timed_out = code is None and not limit
        kill_others()
        if code is None:
            proc.wait()
        cap = req["max_output_bytes"]
        stdout, t1 = read_capped(out, cap)
        stderr, t2 = read_capped(err, cap)
    return {
        "exit_code": None if timed_out else proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "timed_out": timed_out,
        "seconds": time.monotonic() - start,
        "truncated": t1 or t2,
        "limit": limit,
    }


def main() -> None:
    """argv: the disk limit in bytes, then the directories it bounds (the working copy and /tmp)."""
    disk_limit, roots = int(sys.argv[1]), sys.argv[2:]
    out_dir = tempfile.mkdtemp(prefix="repogym-session-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line), out_dir, disk_limit, roots)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":  # run with `python -c` inside the sandbox; imported by repogym for disk_usage
    main()
