"""Managed token tracking: one token sequence per rollout, with masks and sampling logprobs.

Prompt, user and tool tokens are masked with -100; every assistant turn's generated ids stay exactly as the
server produced them (never re-tokenized) and are unmasked with their logprobs. When the conversation goes on,
only the new messages are tokenized: the text the chat template adds after the rendering of the conversation so
far. Where the template renders a past assistant turn differently from what was generated, the generated ids
are kept and the mismatch is recorded.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from repogym.llm import Completion, Usage
from repogym.rl.parsers import Parser
from repogym.rl.servers import GenerateClient

MASK = -100
PROMPT_LOGPROB = 1.0  # Atropos' placeholder for positions that were not sampled


class ChatTokenizer:
    """A `tokenizers` tokenizer plus a jinja2 chat template (the pair every Hugging Face model ships)."""

    def __init__(self, tokenizer: Any, chat_template: str, special: dict[str, str] | None = None) -> None:
        import jinja2

        self.tokenizer = tokenizer
        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        env.filters["tojson"] = _tojson
        self.template = env.from_string(chat_template)
        self.special = special or {}

    @classmethod
    def from_files(
        cls, tokenizer_json: str, chat_template: str, special: dict[str, str] | None = None
    ) -> ChatTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(tokenizer_json), chat_template, special)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def render(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[Any] | None = None
    ) -> str:
        return str(
            self.template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, tools=tools, **self.special
            )
        )


def _tojson(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


class Mismatch(BaseModel):
    turn: int
    generated: str
    template: str


class TokenSequence(BaseModel):
    """The rollout so far: tokens, masks and logprobs line up one to one."""

    tokens: list[int] = Field(default_factory=list)
    masks: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    mismatches: list[Mismatch] = Field(default_factory=list)
    turns: int = 0

    def _add(self, ids: list[int], train: bool, logprobs: list[float] | None = None) -> None:
        self.tokens += ids
        self.masks += list(ids) if train else [MASK] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [PROMPT_LOGPROB] * len(ids)

    def add_messages(self, tok: ChatTokenizer, new: list[dict[str, Any]], tools: list[Any] | None = None) -> list[int]:
        """Append prompt/user/tool messages, masked; returns the prompt ids for the next generation."""
        before = tok.render(self.messages, add_generation_prompt=False, tools=tools) if self.messages else ""
        after = tok.render([*self.messages, *new], add_generation_prompt=True, tools=tools)
        if not after.startswith(before):
            # Not prefix-stable (the template rewrote history): tokenize only what differs, and say so.
            common = _common_prefix(before, after)
            self.mismatches.append(Mismatch(turn=self.turns, generated=before[common:], template=after[common:]))
            before = after[:common]
        self._add(tok.encode(after[len(before) :]), train=False)
        self.messages += new
        return list(self.tokens)

    def add_generation(
        self,
        tok: ChatTokenizer,
        ids: list[int],
        logprobs: list[float],
        message: dict[str, Any],
        tools: list[Any] | None = None,
    ) -> None:
        """Append one assistant turn exactly as generated, then the template's end of turn (masked)."""
        if len(ids) != len(logprobs):
            raise ValueError(f"{len(ids)} token ids but {len(logprobs)} logprobs")
        prompt = tok.render(self.messages, add_generation_prompt=True, tools=tools)
        full = tok.render([*self.messages, message], add_generation_prompt=False, tools=tools)
        rendered = full[len(prompt) :] if full.startswith(prompt) else full
        generated = tok.decode(ids)
        self._add(ids, train=True, logprobs=logprobs)
        if rendered.startswith(generated):
            self._add(tok.encode(rendered[len(generated) :]), train=False)  # e.g. the newline after <|im_end|>
        else:
            self.mismatches.append(Mismatch(turn=self.turns, generated=generated, template=rendered))
            stop = tok.decode(ids[-1:]) if ids else ""
            if stop and stop in rendered:  # still close the turn the way the template does
                self._add(tok.encode(rendered[rendered.rindex(stop) + len(stop) :]), train=False)
        self.messages.append(message)
        self.turns += 1


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class ManagedLLM:
    """The agent loop's model in managed mode (a ``repogym.llm.Model``): token ids in and out of a generate endpoint,
    tool calls parsed from the raw text; the conversation lives in ``sequence``. ``rollout()`` gives each rollout
    its own sequence over the same connection."""

    def __init__(
        self,
        client: GenerateClient,
        tok: ChatTokenizer,
        parser: Parser,
        max_tokens: int = 1024,
        temperature: float = 1.0,
    ) -> None:
        self.client, self.tok, self.parser = client, tok, parser
        self.max_tokens, self.temperature = max_tokens, temperature
        self._seq = TokenSequence()

    @property
    def sequence(self) -> TokenSequence:
        return self._seq

    def rollout(self) -> ManagedLLM:
        return ManagedLLM(self.client, self.tok, self.parser, self.max_tokens, self.temperature)

    async def chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, tool_choice: str = "auto"
    ) -> Completion:
        """One generation; ``tool_choice`` is the template's business in managed mode and is not sent."""
        known = len(self._seq.messages)
        if messages[:known] != self._seq.messages:
            raise ValueError("managed mode: the conversation must only grow (earlier messages changed)")
        prompt = self._seq.add_messages(self.tok, messages[known:], tools)
        gen = await self.client.generate(prompt, self.max_tokens, self.temperature)
        text = self.tok.decode(gen.token_ids)
        stop = self.tok.decode(gen.token_ids[-1:]) if gen.token_ids else ""
        body = text[: -len(stop)] if stop and stop in self.tok.special.values() and text.endswith(stop) else text
        content, calls = self.parser.parse(body, tools)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        self._seq.add_generation(self.tok, gen.token_ids, gen.logprobs, message, tools)
        usage = Usage(prompt_tokens=len(prompt), completion_tokens=len(gen.token_ids), calls=1, cost_usd=None)
        return Completion(message=message, usage=usage, seconds=0.0, finish_reason=gen.finish_reason)

    async def close(self) -> None:
        """Close the connection (shared by every rollout made from this client)."""
        await self.client.close()
