"""Agents against a scripted OpenAI-compatible server over real HTTP, in real bwrap sandboxes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT, agent_binary, make_git_repo, run_cli, run_workflow_with_model
from test_feature_removal import REVERSE_PATCH

from repogym import environment, validate
from repogym.records import TaskRecord, append_record
from repogym.repo import open_repo
from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import ScriptedServer, ToolCall

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")]
ORIGINAL = (EXAMPLE / "scheme" / "builtins.py").read_text()
F2P = "tests.test_builtins::test_reverse"


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repo, validated.jsonl) with one task: re-add the `reverse` primitive."""
    root = tmp_path_factory.mktemp("evaltask")
    repo = make_git_repo(EXAMPLE, root / "scheme_interpreter")
    src = open_repo(repo)
    spec = environment.prepare(src, "bwrap")
    rec = TaskRecord(
        task_id="scheme_interpreter/0",
        repo=str(repo),
        commit_sha=src.commit_sha,
        subject="reverse",
        task_description="Add the `reverse` list primitive: (reverse '(1 2 3)) gives (3 2 1).",
        patches=REVERSE_PATCH,
        strategy="feature_removal",
    )
    validated = validate.validate_auto(rec, src, spec, validate.baseline(src, spec))
    assert validated.FAIL_TO_PASS == [F2P]
    path = root / "validated.jsonl"
    append_record(path, validated)
    return repo, path


def _eval(server: ScriptedServer, validated: Path, out: Path, *extra: str):
    return run_cli(
        "eval",
        "--validated",
        str(validated),
        "--model",
        "openai/boa",
        "--api-base",
        server.url,
        "--output-dir",
        str(out),
        *extra,
    )


def _result(out: Path) -> dict:
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_agent_that_writes_the_fix_is_graded_resolved(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    script = [
        ToolCall("read_file", {"path": "scheme/builtins.py", "start_line": 1, "end_line": 20}),
        ToolCall("bash", {"command": "python3 -m pytest -q -p no:cacheprovider tests/test_builtins.py | tail -1"}),
        ToolCall("write_file", {"path": "/repo/scheme/builtins.py", "content": ORIGINAL}),
        "I restored reverse.",
        ToolCall("submit"),
    ]
    with ScriptedServer(script) as server:
        r = _eval(server, validated, tmp_path)
    assert r.returncode == 0, r.stderr
    res = _result(tmp_path)
    assert res["resolved"] is True and res["stop_reason"] == "submitted" and res["turns"] == 5
    assert res["fail_to_pass"] == {F2P: "passed"} and res["pass_to_pass_failed"] == []
    assert "+    for item in lst:" in res["patch"]
    traj = json.loads(Path(res["trajectory"]).read_text())
    tool_msgs = [m for m in traj["messages"] if m["role"] == "tool"]
    assert tool_msgs[1]["content"].startswith("exit code: 0") and "passed" in tool_msgs[1]["content"]
    assert "1\tdef" in tool_msgs[0]["content"] or "\t" in tool_msgs[0]["content"]
    assert server.requests[0]["tools"][0]["function"]["name"] == "bash"
    assert "Add the `reverse` list primitive" in server.requests[0]["messages"][1]["content"]
    assert "pass@1 100.0%" in r.stdout

    again = _eval(server, validated, tmp_path)
    assert again.returncode == 0 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 1


def test_wrong_fix_fails(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    wrong = ORIGINAL.replace("result = Pair(item, result)", "result = result")
    with ScriptedServer(
        [ToolCall("write_file", {"path": "scheme/builtins.py", "content": wrong}), ToolCall("submit")]
    ) as s:
        r = _eval(s, validated, tmp_path)
    res = _result(tmp_path)
    assert res["resolved"] is False and res["stop_reason"] == "submitted"
    assert res["fail_to_pass"] == {F2P: "failed"}
    assert "pass@1 0.0%" in r.stdout


def test_endless_agent_is_stopped_by_the_turn_limit(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    with ScriptedServer(lambda _req: ToolCall("bash", {"command": "ls"})) as server:
        _eval(server, validated, tmp_path, "--max-turns", "3")
    res = _result(tmp_path)
    assert res["stop_reason"] == "max_turns" and res["turns"] == 3 and not res["resolved"]
    assert len(server.requests) == 3


def test_no_exec_agent_gets_no_shell(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    script = [
        ToolCall("bash", {"command": "ls"}),
        ToolCall("write_file", {"path": "scheme/builtins.py", "content": ORIGINAL}),
        ToolCall("submit"),
    ]
    with ScriptedServer(script) as server:
        _eval(server, validated, tmp_path, "--no-exec")
    res = _result(tmp_path)
    assert res["resolved"] is True
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == [
        "read_file",
        "write_file",
        "str_replace",
        "submit",
    ]
    assert "unknown tool 'bash'" in server.requests[1]["messages"][3]["content"]


NEW_TEST = (
    "from scheme.evaluator import run\nfrom scheme.printer import to_string\n\n\n"
    'def test_reverse_nested():\n    assert to_string(run("(reverse (quote (1 (2 3))))")) == "((2 3) 1)"\n'
)
TEST_REVERSE = 'def test_reverse():\n    assert ev("(reverse \'(1 2 3))") == "(3 2 1)"\n\n\n'


def test_validate_with_builtin_agent_then_check(task: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = task
    rec = TaskRecord(
        task_id="scheme_interpreter/7",
        repo=str(repo),
        commit_sha=open_repo(repo).commit_sha,
        subject="reverse",
        task_description="Add the `reverse` primitive.",
        patches=REVERSE_PATCH,
    )
    script = [
        ToolCall("write_file", {"path": "tests/test_feature.py", "content": NEW_TEST}),
        ToolCall("bash", {"command": "python3 -m pytest -q -p no:cacheprovider | tail -1"}),
        ToolCall("bash", {"command": "git add -A && git commit -q -m 'tests for the feature'"}),
        ToolCall("str_replace", {"path": "scheme/builtins.py", "old": '        "reverse": reverse,\n', "new": ""}),
        ToolCall("bash", {"command": "python3 -m pytest -q -p no:cacheprovider | tail -1"}),
        ToolCall("str_replace", {"path": "tests/test_builtins.py", "old": TEST_REVERSE, "new": ""}),
        ToolCall("bash", {"command": "rm tests/test_feature.py && python3 -m pytest -q -p no:cacheprovider | tail -1"}),
        ToolCall("submit"),
    ]
    out = tmp_path / "validated.jsonl"
    with ScriptedServer(script) as server:
        r = run_cli(
            "validate",
            "--agent",
            "builtin",
            "--model",
            "openai/boa",
            "--api-base",
            server.url,
            "--input-json",
            rec.model_dump_json(),
            "--output",
            str(out),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "at most 6 suite runs" in server.requests[0]["messages"][1]["content"].lower().replace(
        "do at most", "at most"
    )
    v = json.loads(out.read_text())
    assert v["validator"] == "agent:openai/boa" and "tests/test_feature.py" in v["tests.diff"]
    assert '-        "reverse": reverse,' in v["src.diff"] and "test_feature" not in v["src.diff"]
    checks = tmp_path / "checks.jsonl"
    c = run_cli("check", str(out), "--output", str(checks))
    assert c.returncode == 0, c.stdout
    result = json.loads(checks.read_text())
    assert result["ok"] and set(result["FAIL_TO_PASS"]) == {F2P, "tests.test_feature::test_reverse_nested"}


def test_export_swebench(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    git_dir = tmp_path / "export.git"
    out = tmp_path / "instances.jsonl"
    r = run_cli("export", "swebench", "--validated", str(validated), "--output", str(out), "--git-dir", str(git_dir))
    assert r.returncode == 0, r.stderr
    inst = json.loads(out.read_text())
    assert inst["instance_id"] == "scheme_interpreter__0" and inst["FAIL_TO_PASS"] == [F2P]
    assert set(inst) >= {"repo", "base_commit", "patch", "test_patch", "problem_statement", "PASS_TO_PASS"}
    wc = tmp_path / "wc"
    bare = git_dir / "scheme_interpreter__0.git"  # one sealed repository per instance
    subprocess.run(["git", "clone", "-q", "-b", "repogym/scheme_interpreter__0", str(bare), str(wc)], check=True)
    assert (
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=wc, capture_output=True, text=True).stdout.strip()
        == inst["base_commit"]
    )
    assert '"reverse": reverse' not in (wc / "scheme/builtins.py").read_text()
    for patch in (inst["patch"], inst["test_patch"]):
        subprocess.run(["git", "apply", "-"], cwd=wc, input=patch, text=True, check=True)
    assert (wc / "scheme/builtins.py").read_text() == ORIGINAL
    assert "tests/" not in inst["patch"], "the gold patch leaves the tests to test_patch"


def _codex() -> str | None:
    return agent_binary("REPOGYM_CODEX", "codex")


@pytest.mark.skipif(_codex() is None, reason="codex is not installed (npm install -g @openai/codex)")
def test_codex_agent_against_the_scripted_server(task: tuple[Path, Path], tmp_path: Path) -> None:
    """The real codex CLI, with a private CODEX_HOME pointing it at the scripted server's Responses API."""
    _, validated = task
    had_home = (Path.home() / ".codex").exists()
    write = f"cat > scheme/builtins.py <<'EOF_REPOGYM'\n{ORIGINAL}EOF_REPOGYM"
    script = [ToolCall("exec_command", {"cmd": write}), "I restored the reverse primitive."]
    with ScriptedServer(script) as server:
        r = run_cli(
            "eval",
            "--validated",
            str(validated),
            "--agent",
            "codex",
            "--agent-binary",
            str(_codex()),
            "--model",
            "openai/boa",
            "--api-base",
            server.url,
            "--output-dir",
            str(tmp_path),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    res = _result(tmp_path)
    assert res["resolved"] is True and res["stop_reason"] == "submitted", res
    assert server.requests[0]["stream"] is True and "input" in server.requests[0], "the Responses API"
    assert "Add the `reverse` list primitive" in json.dumps(server.requests[0]["input"])
    log = Path(res["trajectory"]).with_suffix(".log.jsonl").read_text()
    assert '"type":"command_execution"' in log and "I restored the reverse primitive." in log
    assert (Path.home() / ".codex").exists() == had_home, "codex wrote only in its private CODEX_HOME"


def _mini() -> str | None:
    return agent_binary("REPOGYM_MINI", "mini", ROOT / ".venv-mini" / "bin" / "mini")


@pytest.mark.skipif(_mini() is None, reason="mini-swe-agent is not installed (make agent-deps)")
def test_mini_swe_agent_against_the_scripted_server(task: tuple[Path, Path], tmp_path: Path) -> None:
    """The real mini-swe-agent (litellm underneath) pointed at the scripted server's chat completions."""
    _, validated = task
    write = f"cat > scheme/builtins.py <<'EOF_REPOGYM'\n{ORIGINAL}EOF_REPOGYM"
    script = [
        ToolCall("bash", {"command": write}),
        ToolCall("bash", {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}),
    ]
    with ScriptedServer(script) as server:
        r = run_cli(
            "eval",
            "--validated",
            str(validated),
            "--agent",
            "mini-swe-agent",
            "--agent-binary",
            str(_mini()),
            "--model",
            "openai/boa",
            "--api-base",
            server.url,
            "--output-dir",
            str(tmp_path),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    res = _result(tmp_path)
    assert res["resolved"] is True and res["stop_reason"] == "submitted", res
    assert "Add the `reverse` list primitive" in json.dumps(server.requests[0]["messages"])
    log = json.loads(Path(res["trajectory"]).with_suffix(".log.jsonl").read_text())
    assert log["info"]["exit_status"] and any(m["role"] == "tool" for m in log["messages"])


def test_missing_external_agent_is_explained(task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    r = run_cli(
        "eval",
        "--validated",
        str(validated),
        "--agent",
        "codex",
        "--agent-binary",
        "/nonexistent/codex",
        "--model",
        "openai/boa",
        "--api-base",
        "http://127.0.0.1:9/v1",
        "--output-dir",
        str(tmp_path),
    )
    assert r.returncode == 2 and "codex is not installed: npm install -g @openai/codex" in r.stderr


@pytest.mark.skipif(_codex() is None, reason="codex is not installed (npm install -g @openai/codex)")
def test_validate_with_codex_then_check(task: tuple[Path, Path], tmp_path: Path) -> None:
    """codex follows the protocol through shell commands; the suite runs in repogym's sandbox (--in-place)."""
    repo, _ = task
    rec = TaskRecord(
        task_id="scheme_interpreter/8",
        repo=str(repo),
        commit_sha=open_repo(repo).commit_sha,
        subject="reverse",
        task_description="Add the `reverse` primitive.",
        patches=REVERSE_PATCH,
    )
    seen: list[str] = []

    def script(req: dict):
        prompt = json.dumps(req["input"])
        seen.append(prompt)
        step = sum(1 for item in req["input"] if item.get("type") == "function_call")
        test_cmd = prompt.split("Run the test suite only with exactly this command:")[1].split("\\n\\n")[1].strip()
        cmds = [
            f"cat > tests/test_feature.py <<'EOF_T'\n{NEW_TEST}EOF_T\n"
            "git add -A && git commit -q -m 'tests for the feature'",
            "python3 - <<'EOF_P'\nimport pathlib\nb = pathlib.Path('scheme/builtins.py')\n"
            "b.write_text(b.read_text().replace('        \"reverse\": reverse,\\n', ''))\n"
            "t = pathlib.Path('tests/test_builtins.py')\n"
            f"t.write_text(t.read_text().replace({TEST_REVERSE!r}, ''))\nEOF_P\n"
            "rm tests/test_feature.py",
            test_cmd,
        ]
        return ToolCall("exec_command", {"cmd": cmds[step]}) if step < len(cmds) else "Validated."

    out = tmp_path / "validated.jsonl"
    with ScriptedServer(script) as server:
        r = run_cli(
            "validate",
            "--agent",
            "codex",
            "--agent-binary",
            str(_codex()),
            "--model",
            "openai/boa",
            "--api-base",
            server.url,
            "--input-json",
            rec.model_dump_json(),
            "--output",
            str(out),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-m repogym env test" in seen[0] and "--in-place" in seen[0]
    v = json.loads(out.read_text())
    assert v["validator"] == "codex:boa" and "tests/test_feature.py" in v["tests.diff"]
    checks = tmp_path / "checks.jsonl"
    assert run_cli("check", str(out), "--output", str(checks)).returncode == 0
    assert json.loads(checks.read_text())["ok"]


@pytest.mark.podman
@pytest.mark.skipif(_codex() is None, reason="codex is not installed (npm install -g @openai/codex)")
def test_env_agent_writes_a_dockerfile(task: tuple[Path, Path], tmp_path: Path, base_image: str) -> None:
    repo, _ = task
    dockerfile_text = (
        f"FROM {base_image}\nWORKDIR /repo\nENV PYTHONDONTWRITEBYTECODE=1 PIP_BREAK_SYSTEM_PACKAGES=1\n"
        'CMD ["sh", "-c", "pip install -q --no-deps --no-build-isolation -e /repo && python3 -m pytest -q"]\n'
    )
    tips = tmp_path / "tips.md"

    def script(req: dict):
        prompt = json.dumps(req["input"])
        step = sum(1 for item in req["input"] if item.get("type") == "function_call")
        dockerfile = prompt.split("Save the Dockerfile as ")[1].split(",")[0]
        build = prompt.split("Build it with exactly: ")[1].split("\\n")[0]
        tips_file = prompt.split("to\\n  ")[1].split(".\\n")[0] if "to\\n  " in prompt else None
        cmds = [
            f"cat > {dockerfile} <<'EOF_D'\n{dockerfile_text}EOF_D",
            build,
            f"echo 'Mount the source; never COPY it.' > {tips_file}",
        ]
        return ToolCall("exec_command", {"cmd": cmds[step]}) if step < len(cmds) else "The image works."

    with ScriptedServer(script) as server:
        r = run_cli(
            "env",
            "build",
            str(repo),
            "--backend",
            "podman",
            "--agent",
            "codex",
            "--agent-binary",
            str(_codex()),
            "--model",
            "openai/boa",
            "--api-base",
            server.url,
            "--image",
            "localhost/repogym-envagent-test",
            "--env-tips-path",
            str(tips),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "environment ready: localhost/repogym-envagent-test" in r.stdout and "FROM localhost/repogym-base" in r.stdout
    )
    assert tips.read_text().strip() == "Mount the source; never COPY it."
    subprocess.run(["podman", "rmi", "-f", "localhost/repogym-envagent-test"], capture_output=True)


def _claude() -> str | None:
    return agent_binary("REPOGYM_CLAUDE", "claude")


@pytest.mark.skipif(_claude() is None, reason="Claude Code is not installed (npm install -g @anthropic-ai/claude-code)")
def test_claude_code_against_the_scripted_server(task: tuple[Path, Path], tmp_path: Path) -> None:
    """The real Claude Code CLI against the scripted server's Anthropic Messages API, with a private config dir."""
    _, validated = task
    had_home = (Path.home() / ".claude").exists()

    def script(req: dict):
        if not any(t.get("name") == "Write" for t in req.get("tools", [])):
            return "ok"  # a side request (a title, a summary): not the agent's turn
        done = sum(
            1
            for m in req["messages"]
            for b in (m["content"] if isinstance(m["content"], list) else [])
            if b.get("type") == "tool_result"
        )
        first = json.dumps(req["messages"][0]["content"])
        path = first.split("The repository is at ")[1].split(" ")[0] + "/scheme/builtins.py"
        if done == 0:
            return ToolCall("Read", {"file_path": path})  # Claude Code writes only files it has read
        if done == 1:
            return ToolCall("Write", {"file_path": path, "content": ORIGINAL})
        return "I restored the reverse primitive."

    with ScriptedServer(script) as server:
        r = run_cli(
            "eval",
            "--validated",
            str(validated),
            "--agent",
            "claude",
            "--agent-binary",
            str(_claude()),
            "--model",
            "anthropic/boa",
            "--api-base",
            server.url,
            "--output-dir",
            str(tmp_path),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    res = _result(tmp_path)
    assert res["resolved"] is True and res["stop_reason"] == "submitted", res
    log = Path(res["trajectory"]).with_suffix(".log.jsonl").read_text()
    assert '"type":"result"' in log and "I restored the reverse primitive." in log
    assert (Path.home() / ".claude").exists() == had_home, "Claude Code wrote only in its private config dir"


def test_workflow_with_the_builtin_validation_agent(task: tuple[Path, Path], tmp_path: Path) -> None:
    """`workflow --agent builtin`: a model synthesizes, an agent validates, the checks verify."""
    repo, _ = task
    from test_feature_removal import answer

    protocol = [
        ToolCall("write_file", {"path": "tests/test_feature.py", "content": NEW_TEST}),
        ToolCall("bash", {"command": "git add -A && git commit -q -m 'tests for the feature'"}),
        ToolCall("str_replace", {"path": "scheme/builtins.py", "old": '        "reverse": reverse,\n', "new": ""}),
        ToolCall("str_replace", {"path": "tests/test_builtins.py", "old": TEST_REVERSE, "new": ""}),
        ToolCall("bash", {"command": "rm tests/test_feature.py"}),
        ToolCall("submit"),
    ]
    tips = tmp_path / "validate_tips.md"
    tips.write_text("Commit the tests before removing the feature.")
    with ScriptedServer([answer("reverse", REVERSE_PATCH), *protocol]) as server:
        r = run_workflow_with_model(
            repo, tmp_path / "s", server.url, 1, "--agent", "builtin", "--validate-tips-path", str(tips)
        )
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads((tmp_path / "s" / "validated_tasks.jsonl").read_text())
    assert v["validator"] == "agent:openai/boa" and v["tips"] == "Commit the tests before removing the feature."
    assert "Commit the tests before removing the feature." in server.requests[1]["messages"][1]["content"]
    checks = json.loads((tmp_path / "s" / "check_results.jsonl").read_text())
    assert checks["ok"], checks
