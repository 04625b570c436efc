"""An OpenAI-compatible model client: retries with backoff and jitter, timeouts, usage and cost accounting.

Model strings are ``provider/name``: ``openai/boa`` means model ``boa`` at the configured base URL (vLLM, SGLang,
llama.cpp, a LiteLLM proxy or OpenAI itself). The base URL comes from ``--api-base``, ``OPENAI_API_BASE`` or
``OPENAI_BASE_URL``; the key from ``OPENAI_API_KEY`` (any value for local servers).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import openai
from pydantic import BaseModel, Field

from repogym.errors import RepogymError

# USD per million tokens: (input, cached input, output). Unknown models get cost "unknown", never $0.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "o3": (2.00, 0.50, 8.00),
    "o4-mini": (1.10, 0.275, 4.40),
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
}
REASONING = re.compile(r"^(o\d|gpt-5)")


class LLMError(RepogymError):
    """The model endpoint failed after retries, or cannot be reached; the message says what to check."""

    exit_code = 1


T = TypeVar("T")


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    boundary: tuple[type[Exception], ...],
    transient: Callable[[Exception], bool],
    explain: Callable[[Exception], str],
    retries: int,
    base_delay_s: float = 1.0,
) -> T:
    """``attempt()``, retried with exponential backoff and jitter while it fails transiently (429, 5xx, a
    timeout). A ``boundary`` error that is left becomes one LLMError with ``explain``'s message; any other
    exception is a bug of ours and propagates as it is."""
    delay = base_delay_s
    for k in range(retries + 1):
        try:
            return await attempt()
        except boundary as e:
            if k == retries or not transient(e):
                raise LLMError(explain(e)) from e
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


class ModelConfig(BaseModel):
    """How to reach and call a model; goes into every record the model produced."""

    model: str = Field(description="provider/name, e.g. openai/boa.")
    api_base: str | None = Field(None, description="Base URL ending in /v1 (default from the environment).")
    timeout_s: float = Field(600.0, description="Per-call timeout.")
    max_retries: int = Field(5, description="Retries on 429, 5xx and timeouts.")
    max_tokens: int | None = Field(None, description="Completion token limit.")
    temperature: float | None = Field(None, description="Sampling temperature (dropped for reasoning models).")
    flex_processing: bool = Field(False, description="service_tier='flex' (cheaper, slower; OpenAI).")

    @property
    def name(self) -> str:
        """The model name sent to the server (provider prefix stripped)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model

    def base_url(self) -> str:
        url = self.api_base or os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise LLMError(f"no API base for {self.model}: pass --api-base URL or set OPENAI_API_BASE")
        return url.rstrip("/")

    def public(self) -> dict[str, Any]:
        return {**self.model_dump(), "api_base": self.base_url()}


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    calls: int = 0
    cost_usd: float | None = 0.0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.calls += other.calls
        self.cost_usd = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd

    def record(self) -> dict[str, Any]:
        """As stored in records: cost is a number when known, the string "unknown" otherwise."""
        out: dict[str, Any] = self.model_dump(exclude={"cost_usd"})
        out["cost_usd"] = round(self.cost_usd, 6) if self.cost_usd is not None else "unknown"
        return out


def price(model: str, prompt: int, cached: int, completion: int) -> float | None:
    key = max((k for k in PRICES if model == k or model.startswith(k + "-")), key=len, default=None)
    if key is None:
        return None
    p_in, p_cached, p_out = PRICES[key]
    return ((prompt - cached) * p_in + cached * p_cached + completion * p_out) / 1e6


class Completion(BaseModel):
    message: dict[str, Any]
    usage: Usage
    seconds: float
    finish_reason: str | None = None


class TokenTrace(Protocol):
    """A rollout's token sequence as trainers read it: ids, masks (-100 where not generated), sampling logprobs."""

    @property
    def tokens(self) -> list[int]: ...

    @property
    def masks(self) -> list[int]: ...

    @property
    def logprobs(self) -> list[float]: ...

    @property
    def mismatches(self) -> list[Any]: ...


class Model(Protocol):
    """What the agent loop and the RL runner need of a model: ``LLM`` (an OpenAI-compatible server parses tool
    calls) and ``rl.tokens.ManagedLLM`` (token ids from a generate endpoint, tool calls parsed here)."""

    async def chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, tool_choice: str = "auto"
    ) -> Completion:
        """One assistant turn; raises LLMError when the endpoint fails after its retries."""
        ...

    def rollout(self) -> Model:
        """The client for one new rollout: itself when it keeps no per-rollout state."""
        ...

    @property
    def sequence(self) -> TokenTrace | None:
        """The rollout's tokens, masks and logprobs when the client tracks them (managed mode), else None."""
        ...

    async def close(self) -> None: ...


class LLM:
    """One async client per model config; ``chat`` retries transient failures and accounts usage."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.usage = Usage()
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url(),
            api_key=os.environ.get("OPENAI_API_KEY") or "none",
            timeout=cfg.timeout_s,
            max_retries=0,  # retried here, with jitter, so that every attempt is visible and bounded
        )

    def request(self, messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        """The request body: temperature and token limits follow the rules of reasoning models."""
        body: dict[str, Any] = {"model": self.cfg.name, "messages": [_clean(m) for m in messages], **kw}
        reasoning = bool(REASONING.match(self.cfg.name))
        if self.cfg.temperature is not None and not reasoning:
            body.setdefault("temperature", self.cfg.temperature)
        if self.cfg.max_tokens:
            body.setdefault("max_completion_tokens" if reasoning else "max_tokens", self.cfg.max_tokens)
        if self.cfg.flex_processing:
            body["service_tier"] = "flex"
        return body

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> Completion:
        """One chat completion; raises LLMError (with what to check) once retries are exhausted."""
        body = self.request(messages, **kw)

        async def attempt() -> Completion:
            start = time.monotonic()
            resp = await self.client.chat.completions.create(**body)
            return self._completion(resp, time.monotonic() - start)

        def transient(e: Exception) -> bool:
            return isinstance(e, openai.RateLimitError | openai.InternalServerError | openai.APITimeoutError)

        return await with_retries(
            attempt, (openai.APIError,), transient, lambda e: explain_error(e, self.cfg), self.cfg.max_retries
        )

    def rollout(self) -> LLM:
        """One client serves every rollout: a conversation lives in the messages sent, not here."""
        return self

    @property
    def sequence(self) -> None:
        """No token ids: the server tokenizes and parses (use managed mode for training)."""
        return None

    def _completion(self, resp: Any, seconds: float) -> Completion:
        u = resp.usage
        cached = getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", 0) or 0
        prompt, completion = (u.prompt_tokens, u.completion_tokens) if u else (0, 0)
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            calls=1,
            cost_usd=price(self.cfg.name, prompt, cached, completion),
        )
        self.usage.add(usage)
        choice = resp.choices[0]
        message = choice.message.model_dump(exclude_none=True)
        return Completion(message=message, usage=usage, seconds=seconds, finish_reason=choice.finish_reason)

    async def close(self) -> None:
        await self.client.close()


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    """Servers such as llama.cpp reject an assistant turn whose content is null; "" means the same."""
    if message.get("role") == "assistant" and message.get("content") is None:
        return {**message, "content": ""}
    return message


def explain_error(e: Exception, cfg: ModelConfig) -> str:
    """What an API failure means for the user, and what to check."""
    url = cfg.base_url()
    if isinstance(e, openai.APITimeoutError):
        return f"{url}: no answer within {cfg.timeout_s:.0f}s (server overloaded or still loading the model?)"
    if isinstance(e, openai.APIConnectionError):
        return f"{url}: cannot connect (is the server running? check --api-base)"
    if isinstance(e, openai.AuthenticationError):
        return f"{url}: the server refused the API key (401): set OPENAI_API_KEY"
    if isinstance(e, openai.NotFoundError):
        return f"{url}: 404 for model {cfg.name!r} (does the base URL end in /v1? is the model served?)"
    if isinstance(e, openai.RateLimitError):
        return f"{url}: still rate limited (429) after {cfg.max_retries} retries"
    if isinstance(e, openai.APIStatusError):
        return f"{url}: HTTP {e.status_code} after {cfg.max_retries} retries: {str(e.message)[:200]}"
    return f"{url}: {e}"
