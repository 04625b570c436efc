"""Resource limits of one sandbox: processes, memory and disk, each enforced and each reported when hit.

The kernel enforces processes and memory through a cgroup of the sandbox's own (v1 or v2, where repogym may
create one: as root, or in a delegated subtree); elsewhere rlimits stand in (RLIMIT_NPROC, RLIMIT_AS), which are
weaker: RLIMIT_NPROC does not bind root and counts every process of the user. Disk is what the sandbox may write
to its working copy and its /tmp: no single file may pass the limit (RLIMIT_FSIZE), and a watchdog sums both
trees while a command runs and kills it when the sum does.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from pydantic import BaseModel, Field

GIB = 1 << 30
_V1 = Path("/sys/fs/cgroup")


class Limits(BaseModel):
    """Per-sandbox ceilings; wall time and output are per command (see Sandbox.exec)."""

    max_processes: int = Field(512, description="Processes and threads alive at once (a fork bomb stops here).")
    memory_bytes: int = Field(4 * GIB, description="Memory of every process of the sandbox together.")
    disk_bytes: int = Field(2 * GIB, description="Bytes the working copy and /tmp may hold together.")


def human(n: float) -> str:
    """1073741824 -> '1 GiB' (for messages)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


class Cgroup:
    """A cgroup (v1 pids + memory hierarchies, or one v2 directory) made for one sandbox and removed with it."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        """None when no cgroup can be made here (no permission, no controller): rlimits stand in."""
        name = f"repogym-{uuid.uuid4().hex[:12]}"
        v2 = _V1 / "cgroup.controllers"
        plan = {"v2": _V1 / name} if v2.exists() else {"pids": _V1 / "pids" / name, "memory": _V1 / "memory" / name}
        made: dict[str, Path] = {}
        try:
            for key, d in plan.items():
                d.mkdir()
                made[key] = d
            group = cls(made)
            group._set(limits)
            return group
        except OSError:
            cls(made).remove()
            return None

    def _set(self, limits: Limits) -> None:
        if "v2" in self.dirs:
            d = self.dirs["v2"]
            (d / "pids.max").write_text(str(limits.max_processes))
            (d / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            return
        (self.dirs["pids"] / "pids.max").write_text(str(limits.max_processes))
        mem = self.dirs["memory"]
        (mem / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        with contextlib.suppress(OSError):
            (mem / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def counters(self) -> tuple[int, int]:
        """(fork attempts refused at the process limit, processes killed for memory), so far."""
        pids = self.dirs.get("v2") or self.dirs["pids"]
        mem = self.dirs.get("v2") or self.dirs["memory"]
        refused = _field(pids / "pids.events", "max")
        oom = _field(mem / ("memory.events" if "v2" in self.dirs else "memory.oom_control"), "oom_kill")
        return refused, oom

    def remove(self) -> None:
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                d.rmdir()


def _field(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


def wrap(argv: list[str], limits: Limits, cgroup: Cgroup | None) -> list[str]:
    """``argv`` started inside the cgroup (when there is one) under the rlimits that stand in or add to it."""
    rl = [f"--fsize={limits.disk_bytes + 1}"]  # one byte past the limit: the watchdog then sees it passed
    if cgroup is None:
        rl += [f"--nproc={limits.max_processes}", f"--as={limits.memory_bytes}"]
    out = ["prlimit", *rl, "--", *argv]
    if cgroup is not None:
        joins = "; ".join(f'echo $$ > "{f}"' for f in cgroup.procs_files)
        out = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *out]
    return out
