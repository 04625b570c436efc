"""Managed token tracking over real HTTP: three generate formats, one multi-turn tool-using rollout."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from repogym.agents.loop import AgentConfig, Trajectory, run_agent
from repogym.llm import LLMError
from repogym.rl.parsers import get_parser
from repogym.rl.servers import GenerateClient
from repogym.rl.tokens import MASK, ChatTokenizer, ManagedLLM
from repogym.sandbox import open_sandbox
from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import Error, ScriptedGenerateServer

pytest.importorskip("tokenizers")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.content %}{{ m.content }}{% endif %}"
    "{% if m.tool_calls %}{% for tc in m.tool_calls %}"
    '{% if m.content %}{{ "\\n" }}{% endif %}<tool_call>\n'
    '{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments }}}\n</tool_call>'
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOLS = [
    {
        "type": "function",
        "function": {"name": "bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
    }
]


def make_tokenizer() -> ChatTokenizer:
    """A small byte-level BPE tokenizer trained here, with ChatML's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "system user assistant tool <tool_call> </tool_call> bash command python3 -c print 6 * 7 = 42",
        '{"name": "bash", "arguments": {"command": "ls"}} The answer is \\boxed{42}. You are a helpful agent.',
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus * 20, trainer)
    return ChatTokenizer(tok, CHATML, special={"eos_token": "<|im_end|>"})


TURNS = [
    'Let me compute it.\n<tool_call>\n{"name": "bash", "arguments": {"command": "python3 -c \'print(6 * 7)\'"}}'
    "\n</tool_call><|im_end|>",
    "6 * 7 = 42, so the answer is \\boxed{42}.<|im_end|>",
]


def script(tok: ChatTokenizer):
    turn = {"n": 0}

    def reply(prompt_ids: list[int]) -> tuple[list[int], list[float]]:
        ids = tok.encode(TURNS[turn["n"] % 2])
        turn["n"] += 1
        return ids, [round(-0.01 * (k + 1) - 0.5 * turn["n"], 4) for k in range(len(ids))]

    return reply


async def rollout(url: str, fmt: str, tok: ChatTokenizer) -> ManagedLLM:
    llm = ManagedLLM(GenerateClient(url, fmt, model="boa"), tok, get_parser("hermes"))
    messages = [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "user", "content": "What is 6 * 7?"},
    ]
    first = await llm.chat(messages, tools=TOOLS)
    messages.append(first.message)
    call = first.message["tool_calls"][0]
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "42"})
    second = await llm.chat(messages, tools=TOOLS)
    messages.append(second.message)
    await llm.client.close()
    assert json.loads(call["function"]["arguments"]) == {"command": "python3 -c 'print(6 * 7)'"}
    assert second.message["content"] == "6 * 7 = 42, so the answer is \\boxed{42}."
    return llm


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "gateway-wraps-json"])
def test_three_formats_give_identical_sequences(wrap: bool) -> None:
    tok = make_tokenizer()
    seqs = {}
    for fmt in ("vllm", "vllm-completions", "sglang"):
        with ScriptedGenerateServer(script(tok), wrap_json_in_string=wrap and fmt == "sglang") as server:
            seqs[fmt] = asyncio.run(rollout(server.url, fmt, tok)).sequence
        assert {p for p, _ in server.requests} == {
            {"vllm": "/inference/v1/generate", "vllm-completions": "/v1/completions", "sglang": "/generate"}[fmt]
        }
    ref = seqs["vllm"]
    for seq in seqs.values():
        assert (seq.tokens, seq.masks, seq.logprobs) == (ref.tokens, ref.masks, ref.logprobs)
    assert len(ref.tokens) == len(ref.masks) == len(ref.logprobs)
    assert ref.mismatches == []
    # tokens decode back to the rendered conversation
    assert tok.decode(ref.tokens) == tok.render(ref.messages, add_generation_prompt=False, tools=TOOLS)
    # every assistant turn is unmasked, exactly the generated ids, with their logprobs; nothing else is
    trained = [(t, lp) for t, m, lp in zip(ref.tokens, ref.masks, ref.logprobs, strict=True) if m != MASK]
    generated = [tok.encode(t) for t in TURNS]
    assert [t for t, _ in trained] == generated[0] + generated[1]
    assert all(lp < 0 for _, lp in trained)
    assert all(m == MASK for m, t in zip(ref.masks, ref.tokens, strict=True) if m != t)
    assert tok.decode([t for t, m in zip(ref.tokens, ref.masks, strict=True) if m != MASK]) == "".join(TURNS)


def test_template_mismatch_keeps_generated_ids() -> None:
    """A Qwen3-style template drops past <think> blocks: the generated ids stay, and the mismatch is recorded."""
    base = make_tokenizer()
    strip_think = CHATML.replace(
        "{% if m.content %}{{ m.content }}{% endif %}",
        "{% if m.content %}{{ m.content.split('</think>')[-1].lstrip() }}{% endif %}",
    )
    tok = ChatTokenizer(base.tokenizer, strip_think, special=base.special)
    text = "<think>6 times 7</think> Done.<|im_end|>"
    ids = tok.encode(text)
    with ScriptedGenerateServer([(ids, [-0.1] * len(ids))]) as server:
        llm = ManagedLLM(GenerateClient(server.url, "vllm"), tok, get_parser("hermes"))
        asyncio.run(llm.chat([{"role": "user", "content": "hi"}]))
    seq = llm.sequence
    assert [(m.turn, m.generated, m.template) for m in seq.mismatches] == [(0, text, "Done.<|im_end|>\n")]
    assert seq.tokens[-len(ids) - 1 : -1] == ids and tok.decode(seq.tokens[-1:]) == "\n"
    assert seq.masks[-len(ids) - 1 : -1] == ids and seq.masks[-1] == MASK


def test_growing_conversation_only() -> None:
    tok = make_tokenizer()
    with ScriptedGenerateServer(script(tok)) as server:
        llm = ManagedLLM(GenerateClient(server.url, "sglang"), tok, get_parser("hermes"))
        asyncio.run(llm.chat([{"role": "user", "content": "a"}], tools=TOOLS))
        with pytest.raises(ValueError, match="must only grow"):
            asyncio.run(llm.chat([{"role": "user", "content": "b"}], tools=TOOLS))


def _generate(url: str, fmt: str = "vllm", retries: int = 3) -> tuple[list[int], list[float]]:
    async def go() -> tuple[list[int], list[float]]:
        client = GenerateClient(url, fmt, max_retries=retries, retry_delay_s=0.01)
        try:
            gen = await client.generate([1, 2, 3])
            return gen.token_ids, gen.logprobs
        finally:
            await client.close()

    return asyncio.run(go())


def test_generate_retries_429_and_5xx_then_succeeds() -> None:
    with ScriptedGenerateServer([Error(429, "slow down"), Error(503), ([7, 8], [-0.5, -0.25])]) as server:
        assert _generate(server.url, "sglang") == ([7, 8], [-0.5, -0.25])
    assert len(server.requests) == 3


def test_generate_failures_are_model_errors_that_say_what_to_check() -> None:
    with ScriptedGenerateServer([Error(500, "kv cache full")] * 3) as server:
        with pytest.raises(LLMError, match=r"HTTP 500 after 2 retries: .*kv cache full"):
            _generate(server.url, retries=2)
    assert len(server.requests) == 3
    with ScriptedGenerateServer([Error(400, "prompt too long"), ([1], [0.0])]) as server:
        with pytest.raises(LLMError, match="HTTP 400"):
            _generate(server.url)
    assert len(server.requests) == 1, "a 400 is not retried: it will not change"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMError, match="cannot reach the generate endpoint"):
        _generate(f"http://127.0.0.1:{port}", retries=1)


def test_managed_client_gives_each_rollout_its_own_sequence() -> None:
    tok = make_tokenizer()
    with ScriptedGenerateServer(script(tok)) as server:
        root = ManagedLLM(GenerateClient(server.url, "sglang"), tok, get_parser("hermes"))
        first, second = root.rollout(), root.rollout()

        async def go() -> None:
            await first.chat([{"role": "user", "content": "a"}], tools=TOOLS)
            await second.chat([{"role": "user", "content": "b"}], tools=TOOLS)
            await root.close()

        asyncio.run(go())
    assert [m["content"] for m in first.sequence.messages[:1]] == ["a"]
    assert [m["content"] for m in second.sequence.messages[:1]] == ["b"]
    assert root.sequence.tokens == [] and first.client is root.client


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_a_failing_generate_endpoint_ends_the_rollout_as_a_model_error(tmp_path: Path) -> None:
    tok = make_tokenizer()
    with ScriptedGenerateServer([Error(503, "loading")] * 2) as server:
        client = GenerateClient(server.url, "vllm", max_retries=1, retry_delay_s=0.01)
        llm = ManagedLLM(client, tok, get_parser("hermes"))

        async def go() -> Trajectory:
            with open_sandbox("bwrap", tmp_path) as sb:
                traj = await run_agent(llm, sb, "You are an agent.", "hi", AgentConfig(tools=["bash"]))
            await llm.close()
            return traj

        traj = asyncio.run(go())
    assert traj.stop_reason == "model_error" and traj.turns == 0 and len(server.requests) == 2
    assert traj.error is not None and "HTTP 503 after 1 retries" in traj.error
