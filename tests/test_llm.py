from __future__ import annotations

import asyncio
import socket

import pytest

from repogym.llm import LLM, LLMError, ModelConfig, price
from repogym.scripted_server import Error, Hang, ScriptedServer, ToolCall


def _chat(cfg: ModelConfig, messages: list[dict] | None = None, **kw: object):
    async def go():
        llm = LLM(cfg)
        try:
            return await llm.chat(messages or [{"role": "user", "content": "hi"}], **kw), llm.usage
        finally:
            await llm.close()

    return asyncio.run(go())


def test_model_string_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer(["hello"]) as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        out, usage = _chat(ModelConfig(model="openai/boa"))
        assert out.message["content"] == "hello"
        assert server.requests[0]["model"] == "boa"
        assert usage.calls == 1 and usage.prompt_tokens > 0
        assert usage.record()["cost_usd"] == "unknown", "an unknown price is never $0"


def test_retries_429_then_succeeds() -> None:
    with ScriptedServer([Error(429, "slow down"), Error(503), "ok"]) as server:
        out, _ = _chat(ModelConfig(model="openai/boa", api_base=server.url, max_retries=3))
        assert out.message["content"] == "ok" and len(server.requests) == 3


def test_gives_up_after_retries_with_reason() -> None:
    with ScriptedServer([Error(429)] * 5) as server:
        with pytest.raises(LLMError, match=r"still rate limited \(429\) after 1 retries"):
            _chat(ModelConfig(model="openai/boa", api_base=server.url, max_retries=1))


def test_hanging_server_times_out_clearly() -> None:
    with ScriptedServer([Hang(5), Hang(5)]) as server, pytest.raises(LLMError, match="no answer within 1s"):
        _chat(ModelConfig(model="openai/boa", api_base=server.url, timeout_s=1, max_retries=1))


def test_closed_port_and_bad_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMError, match="cannot connect"):
        _chat(ModelConfig(model="openai/boa", api_base=f"http://127.0.0.1:{port}/v1", max_retries=0))
    with ScriptedServer(["x"], api_key="secret") as server, pytest.raises(LLMError, match="refused the API key"):
        _chat(ModelConfig(model="openai/boa", api_base=server.url))


def test_request_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer(["a", "b", ToolCall("f", {"x": 1})]) as server:
        _chat(ModelConfig(model="openai/o3", api_base=server.url, temperature=0.7, max_tokens=50, flex_processing=True))
        _chat(ModelConfig(model="openai/boa", api_base=server.url, temperature=0.7, max_tokens=50))
        history = [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": []}]
        out, _ = _chat(ModelConfig(model="openai/boa", api_base=server.url), history)
    o3, boa, third = server.requests
    assert "temperature" not in o3 and o3["max_completion_tokens"] == 50 and o3["service_tier"] == "flex"
    assert boa["temperature"] == 0.7 and boa["max_tokens"] == 50
    assert third["messages"][1]["content"] == "", "null assistant content is sent as an empty string"
    assert out.message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}


def test_prices() -> None:
    assert price("gpt-4o-2024-08-06", 1_000_000, 0, 0) == 2.50
    assert price("gpt-4o-mini", 1_000_000, 1_000_000, 1_000_000) == pytest.approx(0.075 + 0.60)
    assert price("my-local-model", 10, 0, 10) is None
