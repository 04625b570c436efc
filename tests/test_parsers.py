"""Every parser on real output formats, edge cases included; the streaming form agrees with parse."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repogym.errors import RepogymError
from repogym.rl.parsers import ALIASES, NAMES, get_parser

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]
DS_B, DS_S, DS_E = "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"
DS_SEC, DS_SEC_E = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"


def args(call: dict) -> dict:
    return json.loads(call["function"]["arguments"])


def names(calls: list[dict]) -> list[str]:
    return [c["function"]["name"] for c in calls]


# (parser, text, content, [(name, args)], errors)
CASES = [
    ("hermes", 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>',
     "Let me check.", [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})], 0),
    ("hermes", '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": '
     '{"x": }\n</tool_call>\n<tool_call>\n{"name": "c", "arguments": {}}\n</tool_call>',
     "", [("a", {"x": 1}), ("c", {})], 1),
    ("qwen", 'Sure.<tool_call>\n{"name": "f", "arguments": {"q": "a{b}"}}', "Sure.", [("f", {"q": "a{b}"})], 0),
    ("qwen3_coder", "I'll look it up.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
     "<parameter=zip>\n75001\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
     "I'll look it up.", [("get_weather", {"city": "Paris", "zip": "75001", "days": 3})], 0),
    ("qwen3_xml", "<tool_call>\n<function=bash>\n<parameter=command>\nls -la\ncat x\n</parameter>\n</function>\n</tool_call>"
     "<tool_call>\n<function=submit>\n</function>\n</tool_call>", "", [("bash", {"command": "ls -la\ncat x"}), ("submit", {})], 0),
    ("llama3_json", 'The set {1, 2} has two elements. {"name": "count", "parameters": {"items": [1, 2]}}',
     "The set {1, 2} has two elements.", [("count", {"items": [1, 2]})], 0),
    ("llama3_json", '<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {"y": '
     '}; {"name": "c", "parameters": {}}', "", [("a", {"x": 1}), ("c", {})], 1),
    ("llama4_json", '{"name": "get_weather", "parameters": {"city": "Oslo"}}', "", [("get_weather", {"city": "Oslo"})], 0),
    ("llama3_json", 'Code: f(x) { return {a: x}; } {"k": "v"} then {"name": "f", "parameters": {"x": "}"}}',
     'Code: f(x) { return {a: x}; } {"k": "v"} then', [("f", {"x": "}"})], 0),
    ("mistral", 'Checking.[TOOL_CALLS] [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}]',
     "Checking.", [("a", {"x": 1}), ("b", {"y": 2})], 0),
    ("mistral", '[TOOL_CALLS]get_weather{"city": "Rome"}[TOOL_CALLS]get_time[ARGS]{"tz": "UTC"}', "",
     [("get_weather", {"city": "Rome"}), ("get_time", {"tz": "UTC"})], 0),
    ("mistral", '[TOOL_CALLS] [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": }}]', "",
     [("a", {"x": 1})], 0),
    ("deepseek_v3", f"Let me see.{DS_SEC}{DS_B}function{DS_S}get_weather\n```json\n{{\n  \"city\": \"Paris\",\n"
     f"  \"days\": 2\n}}\n```{DS_E}{DS_B}function{DS_S}get_time\n```json\n{{\"tz\": \"CET\"}}\n```{DS_E}{DS_SEC_E}",
     "Let me see.", [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"tz": "CET"})], 0),
    ("deepseek_v31", f"{DS_SEC}{DS_B}get_weather{DS_S}{{\"city\": \"Lima\"}}{DS_E}{DS_B}broken{DS_S}{{oops{DS_E}"
     f"{DS_B}get_time{DS_S}{{}}{DS_E}{DS_SEC_E}", "", [("get_weather", {"city": "Lima"}), ("get_time", {})], 1),
    ("kimi_k2", "Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
     '<|tool_call_argument_begin|>{"city": "Tokyo"}<|tool_call_end|><|tool_call_begin|>functions.get_time:1'
     '<|tool_call_argument_begin|>{"tz": "JST"}<|tool_call_end|><|tool_calls_section_end|>',
     "Let me check.", [("get_weather", {"city": "Tokyo"}), ("get_time", {"tz": "JST"})], 0),
    ("glm45", "Checking.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Berlin</arg_value>\n"
     "<arg_key>zip</arg_key>\n<arg_value>10115</arg_value>\n</tool_call>", "Checking.",
     [("get_weather", {"city": "Berlin", "zip": "10115"})], 0),
    ("glm47", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Oslo</arg_value></tool_call>"
     "<tool_call>submit</tool_call>", "", [("get_weather", {"city": "Oslo"}), ("submit", {})], 0),
    ("longcat", 'Ok.<longcat_tool_call>{"name": "f", "arguments": {"a": [1]}}</longcat_tool_call>', "Ok.", [("f", {"a": [1]})], 0),
    ("hermes", "No tools needed: 2 + 2 = 4.", "No tools needed: 2 + 2 = 4.", [], 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "content", "calls", "errors"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_parse(name: str, text: str, content: str, calls: list, errors: int) -> None:
    result = get_parser(name).parse_full(text, WEATHER)
    assert result.content == content
    assert [(c["function"]["name"], args(c)) for c in result.tool_calls] == calls
    assert len(result.errors) == errors, result.errors
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in result.tool_calls)
    assert len({c["id"] for c in result.tool_calls}) == len(result.tool_calls)


def due(name: str, text: str) -> int:
    """Calls a stream must have sent after ``text``: those up to its last closed call."""
    closed = [s for s in get_parser(name).spans(text) if s.closed]
    return len(get_parser(name).parse(text[: closed[-1].end], WEATHER)[1]) if closed else 0


def streamed(name: str, text: str, cuts: list[int]) -> tuple[str, list[dict]]:
    """Content and calls of a stream fed ``text`` cut at ``cuts``; each call is sent as soon as it is closed."""
    stream = get_parser(name).stream(WEATHER)
    bounds = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    events = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        events += stream.feed(text[a:b])
        assert sum(e[0] == "tool_call" for e in events) >= due(name, text[:b]), f"a call closed at {b} was held"
    events += stream.finish()
    return "".join(e[1] for e in events if e[0] == "content"), [e[1] for e in events if e[0] == "tool_call"]


@pytest.mark.parametrize(
    ("name", "text", "content", "calls", "errors"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_streaming_agrees_with_parse(name: str, text: str, content: str, calls: list, errors: int) -> None:
    expected = get_parser(name).parse(text, WEATHER)
    rng = random.Random(len(text))
    for step in (1, 2, 3, 7, 8, len(text)):
        assert streamed(name, text, list(range(0, len(text), step))) == expected
    for _ in range(5):
        assert streamed(name, text, rng.sample(range(len(text) + 1), rng.randint(1, 12))) == expected


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_streaming_agrees_at_any_split(case: tuple, cuts: list[int]) -> None:
    name, text = case[0], case[1]
    assert streamed(name, text, cuts) == get_parser(name).parse(text, WEATHER)


# Pieces of every format (markers, closers, their halves, JSON, prose) for texts no template would write.
FRAGMENTS = sorted(
    {piece for c in CASES for piece in (c[1][: len(c[1]) // 2], c[1][len(c[1]) // 2 :])}
    | {m for n in NAMES for m in (*get_parser(n).markers, *get_parser(n).closers)}
    | {"{", "}", "[", "]", ";", "\n", " ", '"', ":", "prose ", '{"name": "f", "arguments": {}}', '"name": ', "<"}
    | {"<tool_call>", "</tool_call>", "<function=g>", "</function>", "<|python_tag|>", "[TOOL_CALLS]", "[ARGS]"}
)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_streaming_agrees_on_any_text(name: str, pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    assert streamed(name, text, cuts) == get_parser(name).parse(text, WEATHER)


def test_a_stream_keeps_only_the_text_since_its_last_call() -> None:
    """What makes a long stream linear: the text before an emitted call is never parsed again."""
    call = '<tool_call>\n{"name": "bash", "arguments": {"command": "pytest -q"}}\n</tool_call>\n'
    stream = get_parser("hermes").stream()
    sent = 0
    for _ in range(2000):
        for i in range(0, len(call), 8):
            sent += sum(e[0] == "tool_call" for e in stream.feed(call[i : i + 8]))
        assert stream.buffered < 2 * len(call)
    assert sent == 2000 and stream.finish() == []


def test_schema_types_xml_values_and_says_when_guessing() -> None:
    text = "<tool_call>\n<function=get_weather>\n<parameter=zip>\n75001\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
    typed = get_parser("qwen3_coder").parse_full(text, WEATHER)
    assert args(typed.tool_calls[0]) == {"zip": "75001", "days": 3} and typed.notes == []
    guessed = get_parser("qwen3_coder").parse_full(text)
    assert args(guessed.tool_calls[0]) == {"zip": 75001, "days": 3}
    assert guessed.notes == ["argument types guessed (no schema for get_weather)"]


def test_unclosed_final_call_recovered_only_when_complete() -> None:
    ok = get_parser("hermes").parse_full('<tool_call>\n{"name": "f", "arguments": {"x": 1}}')
    assert names(ok.tool_calls) == ["f"] and not ok.errors
    cut = get_parser("hermes").parse_full('<tool_call>\n{"name": "f", "arguments": {"x": ')
    assert cut.tool_calls == [] and len(cut.errors) == 1


def test_streaming_emits_calls_before_the_end() -> None:
    stream = get_parser("hermes").stream()
    first = stream.feed('Hi <tool_call>{"name": "a", "arguments": {}}</tool_call> <tool_call>{"name": "b", ')
    assert ("content", "Hi") in first and [e[1]["function"]["name"] for e in first if e[0] == "tool_call"] == ["a"]
    rest = stream.feed('"arguments": {}}</tool_call>') + stream.finish()
    assert [e[1]["function"]["name"] for e in rest if e[0] == "tool_call"] == ["b"]


def test_names_and_aliases() -> None:
    assert set(NAMES) >= {
        "hermes",
        "qwen",
        "qwen3_coder",
        "qwen3_xml",
        "llama3_json",
        "llama4_json",
        "mistral",
        "deepseek_v3",
        "deepseek_v31",
        "kimi_k2",
        "glm45",
        "glm47",
        "longcat",
    }
    for alias, target in ALIASES.items():
        assert get_parser(alias).name == target
    with pytest.raises(RepogymError, match="choose one of: hermes"):
        get_parser("nope")
