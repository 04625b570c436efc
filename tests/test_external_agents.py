"""External agents run bounded: their JSON log streams to a file and to a callback, and whatever ends the run
(a timeout, an exception in the caller) leaves none of the agent's processes behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from repogym.agents.external import ExternalAgentConfig, external_trajectory, run_external

# A stand-in for codex: one JSON event per message, and a child that would outlive it if nothing killed it.
FAKE_CODEX = """#!/usr/bin/env python3
import json, os, subprocess, sys, time
pids = os.environ["PIDS"]
child = subprocess.Popen(["sleep", "300"])
open(pids, "w").write(f"{os.getpid()} {child.pid}")
for n in range(int(os.environ.get("MESSAGES", "2"))):
    event = {"type": "item.completed", "item": {"type": "agent_message", "text": f"message {n}"}}
    print(json.dumps(event), flush=True)
    time.sleep(0.05)
print("not json", flush=True)
print(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 7}}), flush=True)
if os.environ.get("HANG"):
    time.sleep(300)
print("the end", file=sys.stderr)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture
def fake_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "codex"
    binary.write_text(FAKE_CODEX)
    binary.chmod(0o755)
    monkeypatch.setenv("PIDS", str(tmp_path / "pids"))
    return binary


def _gone(pid: int) -> bool:
    """True once ``pid`` is dead (a zombie waiting for init counts as dead)."""
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def test_messages_stream_to_the_callback_and_the_log(fake_codex: Path, tmp_path: Path) -> None:
    seen: list[str] = []
    cfg = ExternalAgentConfig(agent="codex", binary=str(fake_codex), timeout_s=60)
    run = run_external(cfg, "fix it", tmp_path, tmp_path / "log" / "codex.jsonl", seen.append)
    assert seen == run.messages == ["message 0", "message 1"]
    assert run.exit_code == 0 and not run.timed_out and run.usage == {"input_tokens": 7}
    lines = (tmp_path / "log" / "codex.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["item"]["text"] == "message 0"
    assert all(_gone(pid) for pid in _pids(tmp_path)), "the child the agent left behind was killed"


def test_an_exception_in_the_caller_leaves_no_agent_process(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(message: str) -> None:
        raise RuntimeError(f"the caller failed on {message!r}")

    monkeypatch.setenv("HANG", "1")
    cfg = ExternalAgentConfig(agent="codex", binary=str(fake_codex), timeout_s=600)
    with pytest.raises(RuntimeError, match="the caller failed on 'message 0'"):
        run_external(cfg, "fix it", tmp_path, tmp_path / "codex.jsonl", boom)
    agent, child = _pids(tmp_path)
    assert _gone(agent) and _gone(child), "the agent and its child were killed with their group"


def test_timeout_and_failure_are_recorded_with_the_agents_own_words(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANG", "1")
    cfg = ExternalAgentConfig(agent="codex", binary=str(fake_codex), timeout_s=2)
    traj = external_trajectory(cfg, "fix it", tmp_path, tmp_path / "codex.jsonl")
    assert traj.stop_reason == "max_seconds" and traj.turns == 2
    assert all(_gone(pid) for pid in _pids(tmp_path))
    monkeypatch.delenv("HANG")
    monkeypatch.setenv("EXIT", "3")
    traj = external_trajectory(cfg.model_copy(update={"timeout_s": 60}), "fix it", tmp_path, tmp_path / "c.jsonl")
    assert traj.stop_reason == "agent_error" and traj.error is not None
    assert "codex exited with 3" in traj.error and "stderr: the end" in traj.error
