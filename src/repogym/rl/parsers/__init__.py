"""Tool-call parsers by name: ``get_parser(name).parse(text, tools=None) -> (content, tool_calls)``."""

from __future__ import annotations

from collections.abc import Callable

from repogym.errors import RepogymError
from repogym.rl.parsers.base import Parser, ParseResult, StreamParser
from repogym.rl.parsers.formats import (
    DeepSeekParser,
    GlmParser,
    JsonTagParser,
    KimiK2Parser,
    LlamaJsonParser,
    MistralParser,
    Qwen3XmlParser,
)

_FACTORIES: dict[str, Callable[[], Parser]] = {
    "hermes": lambda: JsonTagParser("hermes"),
    "qwen": lambda: JsonTagParser("qwen"),
    "qwen3_coder": lambda: Qwen3XmlParser("qwen3_coder"),
    "qwen3_xml": lambda: Qwen3XmlParser("qwen3_xml"),
    "llama3_json": lambda: LlamaJsonParser("llama3_json"),
    "llama4_json": lambda: LlamaJsonParser("llama4_json"),
    "mistral": lambda: MistralParser("mistral"),
    "deepseek_v3": lambda: DeepSeekParser("deepseek_v3", v31=False),
    "deepseek_v31": lambda: DeepSeekParser("deepseek_v31", v31=True),
    "kimi_k2": lambda: KimiK2Parser("kimi_k2"),
    "glm45": lambda: GlmParser("glm45"),
    "glm47": lambda: GlmParser("glm47"),
    "longcat": lambda: JsonTagParser("longcat", "<longcat_tool_call>", "</longcat_tool_call>"),
}
ALIASES = {
    "deepseek_v3_1": "deepseek_v31",
    "deepseekv3": "deepseek_v3",
    "deepseekv31": "deepseek_v31",
    "llama3": "llama3_json",
    "qwen25": "qwen",
}
NAMES = tuple(_FACTORIES)

__all__ = ["ALIASES", "NAMES", "ParseResult", "Parser", "StreamParser", "get_parser"]


def get_parser(name: str) -> Parser:
    """The parser for ``name`` (vLLM or SGLang spelling); an unknown name lists the valid ones."""
    key = ALIASES.get(name, name)
    if key not in _FACTORIES:
        raise RepogymError(f"unknown tool-call parser {name!r}; choose one of: {', '.join([*NAMES, *ALIASES])}")
    return _FACTORIES[key]()
