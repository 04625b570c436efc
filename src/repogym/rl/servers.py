"""Token-in, token-out generation against vLLM and SGLang, so that a rollout's ids are the sampled ids.

Formats:
- ``vllm``: POST /inference/v1/generate {"token_ids", "sampling_params"} -> choices[0].token_ids, logprobs;
- ``vllm-completions``: POST /v1/completions with the prompt as token ids and ``return_tokens_as_token_ids``;
- ``sglang``: POST /generate {"input_ids", "sampling_params", "return_logprob"} ->
  meta_info.output_token_logprobs; a gateway that returns the JSON body as a JSON string is unwrapped.

Like the OpenAI client, a call is retried with backoff on connection errors, timeouts, 429 and 5xx; whatever
failure is left is an ``LLMError`` (the model boundary), which ends a rollout as a model error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel

from repogym.errors import RepogymError
from repogym.llm import LLMError, with_retries

FORMATS = ("vllm", "vllm-completions", "sglang")


class Generation(BaseModel):
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str | None = None


class GenerateClient:
    """One generate endpoint; ``generate(prompt_ids)`` returns the sampled ids and their logprobs."""

    def __init__(
        self,
        base_url: str,
        fmt: str,
        model: str = "",
        timeout_s: float = 600.0,
        max_retries: int = 5,
        retry_delay_s: float = 1.0,
    ) -> None:
        if fmt not in FORMATS:
            raise RepogymError(f"unknown generate format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self.fmt, self.model = fmt, model
        self.timeout_s, self.max_retries, self.retry_delay_s = timeout_s, max_retries, retry_delay_s
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def generate(self, prompt_ids: list[int], max_tokens: int = 1024, temperature: float = 1.0) -> Generation:
        """The sampled ids and their logprobs; raises LLMError when the endpoint fails or answers in another shape."""
        path, body, read = self._request(prompt_ids, max_tokens, temperature)
        data = await self._post(path, body)
        try:
            return read(data)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise LLMError(f"{self.base}{path}: not a {self.fmt} generate answer ({e!r}): {str(data)[:200]}") from e

    def _request(
        self, prompt_ids: list[int], max_tokens: int, temperature: float
    ) -> tuple[str, dict[str, Any], Callable[[Any], Generation]]:
        """(path, body, reader of the answer) in this client's format."""
        if self.fmt == "vllm":
            params = {"max_tokens": max_tokens, "temperature": temperature, "logprobs": 0}
            return "/inference/v1/generate", {"token_ids": prompt_ids, "sampling_params": params}, _vllm
        if self.fmt == "vllm-completions":
            body = {
                "model": self.model,
                "prompt": prompt_ids,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "logprobs": 0,
                "return_tokens_as_token_ids": True,
            }
            return "/v1/completions", body, _vllm_completions
        params = {"max_new_tokens": max_tokens, "temperature": temperature}
        return "/generate", {"input_ids": prompt_ids, "sampling_params": params, "return_logprob": True}, _sglang

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base + path

        async def attempt() -> httpx.Response:
            return (await self.http.post(url, json=body)).raise_for_status()

        resp = await with_retries(
            attempt,
            (httpx.HTTPError,),
            _transient,
            lambda e: self._explain(url, e),
            self.max_retries,
            self.retry_delay_s,
        )
        try:
            data = resp.json()
            return json.loads(data) if isinstance(data, str) else data  # a gateway that wraps JSON in a string
        except ValueError as e:
            raise LLMError(f"{url}: the answer is not JSON ({e}): {resp.text[:200]}") from e

    def _explain(self, url: str, e: Exception) -> str:
        """What a generate failure means, and what to check."""
        if isinstance(e, httpx.TimeoutException):
            return f"{url}: no answer within {self.timeout_s:.0f}s (server overloaded or still loading the model?)"
        if isinstance(e, httpx.HTTPStatusError):
            status = e.response.status_code
            return f"{url}: HTTP {status} after {self.max_retries} retries: {e.response.text[:300]}"
        return f"{url}: cannot reach the generate endpoint ({e}); is the server running? check --api-base"

    async def close(self) -> None:
        await self.http.aclose()


def _transient(e: Exception) -> bool:
    """Connection errors, timeouts, 429 and 5xx pass; any other answer will not change on a retry."""
    if isinstance(e, httpx.HTTPStatusError):
        return e.response.status_code == 429 or e.response.status_code >= 500
    return isinstance(e, httpx.TransportError)


def _logprob_list(raw: Any, n: int) -> list[float]:
    if isinstance(raw, dict) and "content" in raw:
        raw = [c["logprob"] for c in raw["content"]]
    elif isinstance(raw, list) and raw and isinstance(raw[0], dict):
        raw = [next(iter(d.values()))["logprob"] if "logprob" not in d else d["logprob"] for d in raw]
    values = [float(x) for x in raw or []]
    if len(values) != n:
        raise LLMError(f"the server returned {n} tokens but {len(values)} logprobs: ask it for logprobs")
    return values


def _vllm(data: dict[str, Any]) -> Generation:
    choice = data["choices"][0]
    ids = [int(t) for t in choice["token_ids"]]
    return Generation(
        token_ids=ids,
        logprobs=_logprob_list(choice.get("logprobs"), len(ids)),
        finish_reason=choice.get("finish_reason"),
    )


def _vllm_completions(data: dict[str, Any]) -> Generation:
    choice = data["choices"][0]
    lp = choice["logprobs"]
    ids = [int(str(t).removeprefix("token_id:")) for t in lp["tokens"]]
    return Generation(
        token_ids=ids, logprobs=_logprob_list(lp["token_logprobs"], len(ids)), finish_reason=choice.get("finish_reason")
    )


def _sglang(data: dict[str, Any]) -> Generation:
    out = data["meta_info"]["output_token_logprobs"]
    ids = [int(x[1]) for x in out]
    finish = data["meta_info"].get("finish_reason")
    return Generation(
        token_ids=ids,
        logprobs=[float(x[0]) for x in out],
        finish_reason=finish.get("type") if isinstance(finish, dict) else finish,
    )
