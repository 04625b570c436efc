"""Per-sandbox resource limits: the host survives, and the result names the limit that stopped the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from repogym.sandbox import Limits, open_sandbox
from repogym.sandbox.bwrap import bwrap_available
from repogym.sandbox.limits import Cgroup
from repogym.sandbox.session_server import disk_usage

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
MIB = 1 << 20
SMALL = Limits(max_processes=48, memory_bytes=256 * MIB, disk_bytes=64 * MIB)


def cgroups_here() -> bool:
    group = Cgroup.create(SMALL)
    if group is None:
        return False
    group.remove()
    return True


needs_cgroup = pytest.mark.skipif(not cgroups_here(), reason="no cgroup can be made here (not root, no delegation)")


@needs_cgroup
def test_a_fork_bomb_hits_the_process_limit_and_the_host_survives(tmp_path: Path) -> None:
    with open_sandbox("bwrap", tmp_path, limits=SMALL) as sb:
        r = sb.exec("f(){ f|f & }; f; sleep 2; echo survived", timeout_s=30)
        after = sb.exec("echo still here")
    assert r.limit == "process limit (48) reached: new processes were refused"
    assert after.ok and after.stdout == "still here\n" and not after.limit


@needs_cgroup
def test_memory_over_the_limit_is_killed_and_named(tmp_path: Path) -> None:
    with open_sandbox("bwrap", tmp_path, limits=SMALL) as sb:
        r = sb.exec(["python3", "-c", "x = bytearray(1 << 30); print('allocated')"], timeout_s=60)
    assert "allocated" not in r.stdout and r.exit_code != 0
    assert r.limit.startswith("memory limit (256 MiB) reached")


@pytest.mark.parametrize("where", ["/tmp", "/repo"])
def test_writing_past_the_disk_limit_is_stopped(tmp_path: Path, where: str) -> None:
    wc = tmp_path / "wc"
    wc.mkdir()
    with open_sandbox("bwrap", wc, limits=SMALL) as sb:
        one_file = sb.exec(f"dd if=/dev/zero of={where}/big bs=1M count=200 2>&1 | tail -1", timeout_s=60)
        sb.exec(f"rm -f {where}/big")
        many = sb.exec(
            f"for i in $(seq 1 40); do dd if=/dev/zero of={where}/f$i bs=1M count=4 2>/dev/null; done", timeout_s=60
        )
        held = disk_usage(wc, sb.tmp_dir)
    assert "disk limit (64 MiB) passed" in one_file.limit
    assert "disk limit (64 MiB) passed" in many.limit
    assert held < 200 * MIB, "the sandbox wrote far past its disk limit"


def test_limits_that_were_not_reached_say_nothing(tmp_path: Path) -> None:
    with open_sandbox("bwrap", tmp_path, limits=SMALL) as sb:
        r = sb.exec("seq 1 10 | wc -l")
    assert r.ok and r.stdout == "10\n" and r.limit == ""


def test_the_sandbox_sees_no_host_home_no_capability_and_no_network(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with open_sandbox("bwrap", tmp_path) as sb:
        r = sb.exec(
            "ls / | tr '\\n' ' '; echo; grep CapEff /proc/self/status; id -u; "
            "ls /root /home /var /run /work 2>&1 | grep -c 'No such'; cat /etc/shadow 2>&1 | head -c 30; "
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', 22), timeout=2)\" 2>&1 | tail -1"
        )
    lines = r.stdout.splitlines()
    assert set(lines[0].split()) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "repo", "root",
                                     "sbin", "tmp", "usr"}  # fmt: skip
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert lines[2] == "65534"
    assert "root:" not in r.stdout  # /etc/shadow is masked
    assert "Network is unreachable" in r.stdout or "Connection refused" in r.stdout
