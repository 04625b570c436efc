from __future__ import annotations

from pathlib import Path

import pytest

from repogym.agents.tools import ALL_TOOLS, FILE_TOOLS, ToolLimits, parse_arguments, run_tool
from repogym.sandbox import open_sandbox
from repogym.sandbox.bwrap import bwrap_available


@pytest.fixture
def sb(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\nx = 1\n")
    if not bwrap_available():
        pytest.skip("bubblewrap is not installed")
    with open_sandbox("bwrap", tmp_path) as box:
        yield box


def call(sb, name: str, args, allowed=ALL_TOOLS):
    return run_tool(sb, name, args, allowed, ToolLimits(command_timeout_s=5))


def test_argument_repair() -> None:
    assert parse_arguments("bash", '{"command": "ls"}') == {"command": "ls"}
    assert parse_arguments("bash", '"{\\"command\\": \\"ls\\"}"') == {"command": "ls"}, "double-encoded"
    assert parse_arguments("bash", "ls -la") == {"command": "ls -la"}, "a bare string for the one parameter"
    assert parse_arguments("submit", "") == {}
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_arguments("write_file", "just text")
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_arguments("write_file", "[1, 2]")


def test_bash_shows_exit_code_and_streams(sb) -> None:
    r = call(sb, "bash", {"command": "echo out; echo err >&2; exit 4"})
    assert r.content == "exit code: 4\nstdout:\nout\n\nstderr:\nerr\n" and not r.error
    assert call(sb, "bash", {"command": "sleep 30"}).content.startswith("timed out after 5s")


def test_file_tools(sb) -> None:
    assert (
        call(sb, "read_file", {"path": "a.py", "start_line": 2, "end_line": "3"}).content
        == "     2\ty = 2\n     3\tx = 1"
    )
    assert "wrote 6 characters" in call(sb, "write_file", {"path": "/repo/new/b.py", "content": "z = 3\n"}).content
    assert (sb.repo_dir / "new" / "b.py").read_text() == "z = 3\n"
    assert "found 2 times" in call(sb, "str_replace", {"path": "a.py", "old": "x = 1", "new": "x = 9"}).content
    assert "not found" in call(sb, "str_replace", {"path": "a.py", "old": "q", "new": "r"}).content
    ok = call(sb, "str_replace", {"path": "./a.py", "old": "y = 2", "new": "y = 5"})
    assert ok.content == "replaced 1 occurrence in ./a.py" and "y = 5" in (sb.repo_dir / "a.py").read_text()
    assert "no such file" in call(sb, "read_file", {"path": "missing.py"}).content
    assert call(sb, "read_file", {"path": "/etc/passwd"}).error


def test_bad_calls_become_messages(sb) -> None:
    r = call(sb, "rm_rf", {})
    assert r.error and "unknown tool 'rm_rf'; available tools: bash, read_file" in r.content
    assert "missing argument(s): content" in call(sb, "write_file", {"path": "x"}).content
    assert "unknown argument(s): mode" in call(sb, "read_file", {"path": "a.py", "mode": "r"}).content
    assert "must be a string" in call(sb, "bash", {"command": 3}).content
    assert "unknown tool 'bash'" in call(sb, "bash", {"command": "ls"}, allowed=FILE_TOOLS).content
    assert call(sb, "submit", "{}").submitted
