from __future__ import annotations

import socket

from conftest import run_cli

from repogym.scripted_server import ScriptedServer, ToolCall


def test_doctor_passes_against_a_tool_calling_server() -> None:
    with ScriptedServer(["OK", ToolCall("get_weather", {"city": "Paris"})]) as server:
        r = run_cli("doctor", "--api-base", server.url, "--model", "openai/boa")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].startswith("ok   models") and "serves boa" in lines[1]
    assert lines[2].startswith("ok   chat") and "'OK'" in lines[2]
    assert lines[3].startswith("ok   tools") and 'get_weather({"city": "Paris"})' in lines[3]
    assert " ms " in lines[3]


def test_doctor_names_the_missing_tool_parser() -> None:
    with ScriptedServer(["OK", "It is sunny in Paris.", "Sunny."]) as server:
        r = run_cli("doctor", "--api-base", server.url)
    assert r.returncode == 1
    assert "FAIL tools" in r.stdout and "--enable-auto-tool-choice --tool-call-parser" in r.stdout
    assert len(server.requests) == 3, "auto, then a named tool_choice"


def test_doctor_lists_served_models_when_the_model_is_missing() -> None:
    with ScriptedServer([], models=["qwen", "llama"]) as server:
        r = run_cli("doctor", "--api-base", server.url, "--model", "openai/boa")
    assert r.returncode == 1 and "'boa' is not served; the server serves: qwen, llama" in r.stdout


def test_doctor_explains_a_closed_port_and_a_bad_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("doctor", "--api-base", f"http://127.0.0.1:{port}/v1", "--timeout", "5")
    assert r.returncode == 1 and "cannot connect (is the server running? check --api-base)" in r.stdout
    with ScriptedServer([], api_key="right") as server:
        r = run_cli("doctor", "--api-base", server.url)
    assert r.returncode == 1 and "refused the API key (401): set OPENAI_API_KEY" in r.stdout
