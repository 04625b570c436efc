"""Every parser on real output formats, edge cases included; the streaming form agrees with parse."""

from __future__ import annotations

import json
import random

import pytest

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


@pytest.mark.parametrize(
    ("name", "text", "content", "calls", "errors"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_streaming_agrees_with_parse(name: str, text: str, content: str, calls: list, errors: int) -> None:
    parser = get_parser(name)
    expected = parser.parse(text, WEATHER)
    rng = random.Random(len(text))
    for _ in range(5):
        stream = parser.stream(WEATHER)
        events = []
        pos = 0
        while pos < len(text):
            step = rng.randint(1, 7)
            events += stream.feed(text[pos : pos + step])
            pos += step
        events += stream.finish()
        got_content = "".join(e[1] for e in events if e[0] == "content")
        got_calls = [e[1] for e in events if e[0] == "tool_call"]
        assert (got_content, got_calls) == expected


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
