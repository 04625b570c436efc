"""`repogym doctor`: is an OpenAI-compatible endpoint ready for repogym? The serving runbook's checks in one go.

1. /v1/models answers and lists the model (else: the names it does serve);
2. a chat completion "Reply with OK only." comes back;
3. a request with ``tools=`` comes back as a tool call (else: the server's tool-call parser is probably off).
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
from pydantic import BaseModel

from repogym.llm import LLM, LLMError, ModelConfig, explain_error

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Check(BaseModel):
    name: str
    ok: bool
    seconds: float
    detail: str


async def doctor(cfg: ModelConfig) -> list[Check]:
    """Run the checks in order; a failed models check stops the rest (nothing else could work)."""
    llm = LLM(cfg.model_copy(update={"max_retries": 0}))
    try:
        checks = [await _models(llm)]
        if checks[0].ok:
            checks.append(await _chat(llm))
            checks.append(await _tools(llm))
        return checks
    finally:
        await llm.close()


async def _timed(name: str, coro: Any) -> tuple[Any, float, Exception | None]:
    start = time.monotonic()
    try:
        return await coro, time.monotonic() - start, None
    except (openai.APIError, LLMError) as e:
        return None, time.monotonic() - start, e


async def _models(llm: LLM) -> Check:
    page, secs, err = await _timed("models", llm.client.models.list())
    if err:
        return Check(name="models", ok=False, seconds=secs, detail=_why(err, llm))
    names = [m.id for m in page.data]
    if llm.cfg.name not in names:
        detail = f"{llm.cfg.name!r} is not served; the server serves: {', '.join(names) or 'nothing'}"
        return Check(name="models", ok=False, seconds=secs, detail=detail)
    return Check(name="models", ok=True, seconds=secs, detail=f"serves {', '.join(names)}")


async def _chat(llm: LLM) -> Check:
    msgs = [{"role": "user", "content": "Reply with OK only."}]
    out, secs, err = await _timed("chat", llm.chat(msgs, max_tokens=16))
    if err:
        return Check(name="chat", ok=False, seconds=secs, detail=_why(err, llm))
    text = (out.message.get("content") or "").strip()
    return Check(name="chat", ok=bool(text), seconds=secs, detail=f"answered {text[:40]!r}" if text else "empty answer")


async def _tools(llm: LLM) -> Check:
    msgs = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    out, secs, err = await _timed("tools", llm.chat(msgs, tools=[WEATHER_TOOL], tool_choice="auto", max_tokens=64))
    if err:
        return Check(name="tools", ok=False, seconds=secs, detail=_why(err, llm))
    if _is_call(out.message):
        return Check(name="tools", ok=True, seconds=secs, detail=_call_text(out.message))
    # Small models often prefer prose under "auto"; a named tool choice tells a shy model from a deaf server.
    named = {"type": "function", "function": {"name": "get_weather"}}
    out2, secs2, err2 = await _timed("tools", llm.chat(msgs, tools=[WEATHER_TOOL], tool_choice=named, max_tokens=64))
    if err2 is None and _is_call(out2.message):
        detail = f"{_call_text(out2.message)} (with a named tool_choice; under 'auto' the model answered in text)"
        return Check(name="tools", ok=True, seconds=secs + secs2, detail=detail)
    return Check(
        name="tools",
        ok=False,
        seconds=secs + secs2,
        detail="the answer came back as text, not a tool call: the server's tool-call parser is probably not "
        "enabled (vLLM: --enable-auto-tool-choice --tool-call-parser NAME; SGLang: --tool-call-parser NAME)",
    )


def _is_call(message: dict[str, Any]) -> bool:
    calls = message.get("tool_calls") or []
    if not calls:
        return False
    try:
        json.loads(calls[0]["function"]["arguments"] or "{}")
    except (json.JSONDecodeError, KeyError, TypeError):
        return False
    return True


def _call_text(message: dict[str, Any]) -> str:
    f = message["tool_calls"][0]["function"]
    return f"tool call {f['name']}({f['arguments']})"


def _why(err: Exception, llm: LLM) -> str:
    return str(err) if isinstance(err, LLMError) else explain_error(err, llm.cfg)
