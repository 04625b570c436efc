"""Token-in, token-out generation against vLLM and SGLang, so that a rollout's ids are the sampled ids.

Formats:
- ``vllm``: POST /inference/v1/generate {"token_ids", "sampling_params"} -> choices[0].token_ids, logprobs;
- ``vllm-completions``: POST /v1/completions with the prompt as token ids and ``return_tokens_as_token_ids``;
- ``sglang``: POST /generate {"input_ids", "sampling_params", "return_logprob"} ->
  meta_info.output_token_logprobs; a gateway that returns the JSON body as a JSON string is unwrapped.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel

from repogym.errors import RepogymError

FORMATS = ("vllm", "vllm-completions", "sglang")


class Generation(BaseModel):
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str | None = None


class GenerateClient:
    """One generate endpoint; ``generate(prompt_ids)`` returns the sampled ids and their logprobs."""

    def __init__(self, base_url: str, fmt: str, model: str = "", timeout_s: float = 600.0) -> None:
        if fmt not in FORMATS:
            raise RepogymError(f"unknown generate format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self.fmt, self.model = fmt, model
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def generate(self, prompt_ids: list[int], max_tokens: int = 1024, temperature: float = 1.0) -> Generation:
        body: dict[str, Any]
        if self.fmt == "vllm":
            body = {
                "token_ids": prompt_ids,
                "sampling_params": {"max_tokens": max_tokens, "temperature": temperature, "logprobs": 0},
            }
            return _vllm(await self._post("/inference/v1/generate", body))
        if self.fmt == "vllm-completions":
            body = {
                "model": self.model,
                "prompt": prompt_ids,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "logprobs": 0,
                "return_tokens_as_token_ids": True,
            }
            return _vllm_completions(await self._post("/v1/completions", body))
        body = {
            "input_ids": prompt_ids,
            "sampling_params": {"max_new_tokens": max_tokens, "temperature": temperature},
            "return_logprob": True,
        }
        return _sglang(await self._post("/generate", body))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            resp = await self.http.post(self.base + path, json=body)
        except httpx.HTTPError as e:
            raise RepogymError(f"{self.base}{path}: cannot reach the generate endpoint ({e})") from e
        if resp.status_code != 200:
            raise RepogymError(f"{self.base}{path}: HTTP {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
        return json.loads(data) if isinstance(data, str) else data  # a gateway that wraps JSON in a string

    async def close(self) -> None:
        await self.http.aclose()


def _logprob_list(raw: Any, n: int) -> list[float]:
    if isinstance(raw, dict) and "content" in raw:
        raw = [c["logprob"] for c in raw["content"]]
    elif isinstance(raw, list) and raw and isinstance(raw[0], dict):
        raw = [next(iter(d.values()))["logprob"] if "logprob" not in d else d["logprob"] for d in raw]
    values = [float(x) for x in raw or []]
    if len(values) != n:
        raise RepogymError(f"the server returned {n} tokens but {len(values)} logprobs: ask it for logprobs")
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
