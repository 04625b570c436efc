"""The tool-call formats of the main open model families, as their chat templates make them write."""

from __future__ import annotations

import json
import re
from typing import Any

from repogym.rl.parsers.base import Parser, Span, schema_types, typed_value

_DECODER = json.JSONDecoder()


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object at the start of ``text`` (trailing text allowed); ValueError otherwise."""
    value, _ = _DECODER.raw_decode(text.strip())
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _name_args(obj: dict[str, Any]) -> tuple[str, Any]:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("call without a name")
    args = obj.get("arguments", obj.get("parameters", {}))
    return name, json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args


def _between(text: str, start: str, end: str) -> list[Span]:
    """Spans from each ``start`` marker to its ``end`` marker (or the end of the text: an unclosed final call)."""
    spans = []
    pos = 0
    while (at := text.find(start, pos)) >= 0:
        body_start = at + len(start)
        close = text.find(end, body_start)
        nxt = text.find(start, body_start)
        if close >= 0 and (nxt < 0 or close < nxt):
            spans.append(Span(at, close + len(end), text[body_start:close], True))
            pos = close + len(end)
        else:
            stop = nxt if nxt >= 0 else len(text)
            spans.append(Span(at, stop, text[body_start:stop], False))
            pos = stop
    return spans


class JsonTagParser(Parser):
    """<tool_call>{"name": ..., "arguments": {...}}</tool_call> (Hermes, Qwen 2.5, LongCat with its own tag)."""

    def __init__(self, name: str, start: str = "<tool_call>", end: str = "</tool_call>") -> None:
        self.name, self.start, self.end = name, start, end
        self.markers = (start,)

    def spans(self, text: str) -> list[Span]:
        return _between(text, self.start, self.end)

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        return [_name_args(_json_object(span.body))]


class Qwen3XmlParser(Parser):
    """<tool_call><function=name><parameter=p>value</parameter></function></tool_call> (Qwen3-Coder)."""

    typed_by_schema = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.markers = ("<tool_call>", "<function=")

    def spans(self, text: str) -> list[Span]:
        wrapped = _between(text, "<tool_call>", "</tool_call>")
        if wrapped:
            return wrapped
        return _between(text, "<function=", "</function>")

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        body = span.body if span.body.lstrip().startswith("<function=") else "<function=" + span.body
        m = re.search(r"<function=([^>\n]+)>(.*?)(?:</function>|$)", body, re.S)
        if not m:
            raise ValueError("no <function=...> in the call")
        name = m.group(1).strip()
        types = schema_types(tools, name)
        args = {}
        for p in re.finditer(r"<parameter=([^>\n]+)>(.*?)(?:</parameter>|(?=<parameter=)|$)", m.group(2), re.S):
            key = p.group(1).strip()
            args[key] = typed_value(p.group(2), types.get(key, "string") if types is not None else None)
        return [(name, args)]


class LlamaJsonParser(Parser):
    """{"name": ..., "parameters": {...}} anywhere in the text, after an optional <|python_tag|>, ';'-separated.

    Prose may contain braces: only an object with a name and parameters/arguments is a call.
    """

    markers = ("<|python_tag|>", "{")

    def __init__(self, name: str) -> None:
        self.name = name

    def spans(self, text: str) -> list[Span]:
        spans = []
        pos = 0
        while (at := text.find("{", pos)) >= 0:
            try:
                obj, end = _DECODER.raw_decode(text, at)
            except json.JSONDecodeError:
                if re.match(r'\{\s*"name"\s*:', text[at:]):
                    close = self._recover_end(text, at)
                    spans.append(Span(at, close, text[at:close], close < len(text)))
                    pos = close
                else:
                    pos = at + 1
                continue
            if isinstance(obj, dict) and "name" in obj and ("parameters" in obj or "arguments" in obj):
                spans.append(Span(at, end, text[at:end], True))
                pos = end
            else:
                pos = at + 1
        return spans

    @staticmethod
    def _recover_end(text: str, at: int) -> int:
        """End of a malformed call: the next call, separator or the end of the text."""
        nxt = re.search(r'[;\n]\s*\{\s*"name"\s*:', text[at + 1 :])
        return at + 1 + nxt.start() if nxt else len(text)

    def content_end(self, text: str, spans: list[Span]) -> int:
        end = super().content_end(text, spans)
        tag = text.find("<|python_tag|>")
        return min(end, tag) if tag >= 0 else end

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        return [_name_args(_json_object(span.body))]


class MistralParser(Parser):
    """[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...] or, since v11, [TOOL_CALLS]name{...} (also [ARGS])."""

    markers = ("[TOOL_CALLS]",)

    def __init__(self, name: str) -> None:
        self.name = name

    def spans(self, text: str) -> list[Span]:
        parts = [m.start() for m in re.finditer(re.escape("[TOOL_CALLS]"), text)]
        out = []
        for k, at in enumerate(parts):
            stop = parts[k + 1] if k + 1 < len(parts) else len(text)
            body = text[at + len("[TOOL_CALLS]") : stop]
            out.append(Span(at, stop, body, self._complete(body)))
        return out

    @staticmethod
    def _complete(body: str) -> bool:
        s = body.strip()
        start = s.find("[") if s.startswith("[") else s.find("{")
        if start < 0:
            return False
        try:
            _DECODER.raw_decode(s, start)
            return True
        except json.JSONDecodeError:
            return False

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        body = span.body.strip()
        if body.startswith("["):
            try:
                items, _ = _DECODER.raw_decode(body)
                return [_name_args(i) for i in items]
            except json.JSONDecodeError:
                return self._salvage(body)
        name, _, rest = body.partition("{")
        name = name.replace("[ARGS]", "").strip()
        if not name:
            raise ValueError("no function name after [TOOL_CALLS]")
        return [(name, _json_object("{" + rest))]

    @staticmethod
    def _salvage(body: str) -> list[tuple[str, Any]]:
        """A list with a malformed item: keep the well-formed objects."""
        calls = []
        for m in re.finditer(r'\{\s*"name"\s*:', body):
            try:
                calls.append(_name_args(_DECODER.raw_decode(body, m.start())[0]))
            except (json.JSONDecodeError, ValueError):
                continue
        if not calls:
            raise ValueError("the [TOOL_CALLS] list is not valid JSON")
        return calls


class DeepSeekParser(Parser):
    """<｜tool▁call▁begin｜>function<｜tool▁sep｜>name\\n```json\\n{...}\\n```<｜tool▁call▁end｜> (V3), or
    <｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}<｜tool▁call▁end｜> (V3.1)."""

    BEGIN, SEP, END, SECTION = (
        "<｜tool▁call▁begin｜>",
        "<｜tool▁sep｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁calls▁begin｜>",
    )

    def __init__(self, name: str, v31: bool) -> None:
        self.name, self.v31 = name, v31
        self.markers = (self.SECTION, self.BEGIN)

    def spans(self, text: str) -> list[Span]:
        return _between(text, self.BEGIN, self.END)

    def content_end(self, text: str, spans: list[Span]) -> int:
        at = text.find(self.SECTION)
        return at if at >= 0 else super().content_end(text, spans)

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        head, sep, rest = span.body.partition(self.SEP)
        if not sep:
            raise ValueError("no <｜tool▁sep｜> in the call")
        if self.v31:
            return [(head.strip(), _json_object(rest))]
        name, _, args = rest.partition("\n")
        m = re.search(r"```(?:json)?\s*(.*?)\s*```", args, re.S)
        return [(name.strip(), _json_object(m.group(1) if m else args))]


class KimiK2Parser(Parser):
    """<|tool_call_begin|>functions.name:0<|tool_call_argument_begin|>{...}<|tool_call_end|>."""

    markers = ("<|tool_calls_section_begin|>", "<|tool_call_begin|>")

    def __init__(self, name: str) -> None:
        self.name = name

    def spans(self, text: str) -> list[Span]:
        return _between(text, "<|tool_call_begin|>", "<|tool_call_end|>")

    def content_end(self, text: str, spans: list[Span]) -> int:
        at = text.find("<|tool_calls_section_begin|>")
        return at if at >= 0 else super().content_end(text, spans)

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        ident, sep, args = span.body.partition("<|tool_call_argument_begin|>")
        if not sep:
            raise ValueError("no <|tool_call_argument_begin|> in the call")
        name = ident.strip().split(".", 1)[-1].rsplit(":", 1)[0]
        return [(name, _json_object(args))]


class GlmParser(Parser):
    """<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>, with or without a newline
    after the name (GLM-4.5 writes one, GLM-4.7 does not), and with no arguments at all."""

    typed_by_schema = True
    markers = ("<tool_call>",)

    def __init__(self, name: str) -> None:
        self.name = name

    def spans(self, text: str) -> list[Span]:
        return _between(text, "<tool_call>", "</tool_call>")

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        name = re.split(r"<arg_key>|\n", span.body, maxsplit=1)[0].strip()
        if not name or not re.fullmatch(r"[\w.\-]+", name):
            raise ValueError(f"bad function name {name!r}")
        types = schema_types(tools, name)
        args = {}
        for m in re.finditer(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", span.body, re.S):
            key = m.group(1).strip()
            args[key] = typed_value(m.group(2), types.get(key, "string") if types is not None else None)
        return [(name, args)]
