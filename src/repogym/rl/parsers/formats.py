"""The tool-call formats of the main open model families, as their chat templates make them write."""

from __future__ import annotations

import json
import re
from typing import Any

from repogym.rl.parsers.base import Parser, Span, schema_types, typed_value

_DECODER = json.JSONDecoder()
_CALL_START = re.compile(r'\{\s*"name"\s*:')
# A JSON object opens with '{', spaces, then '"' or '}': any other '{' in prose is skipped without decoding (a
# failed decode costs a scan of the text up to it, to number the error's line, which made prose quadratic).
_OBJECT_OPEN = re.compile(r'\{\s*(?:["}]|\Z)')
_NEXT_CALL = re.compile(r'[;\n]\s*\{\s*"name"\s*:')


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


class _Finder:
    """``text.find`` for positions that only grow: each string is searched for past a point once, so finding every
    span stays linear even when an end marker never comes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at: dict[str, int] = {}

    def find(self, s: str, pos: int) -> int:
        at = self.at.get(s, -2)
        if at == -2 or 0 <= at < pos:
            at = self.at[s] = self.text.find(s, pos)
        return at


def _delimited(text: str, *pairs: tuple[str, str]) -> tuple[list[Span], int]:
    """Spans from each start marker to its end marker, or to the next start marker of its kind, or to the end of
    the text (an unclosed call); the earliest start wins when a format has several kinds. Also how far the text
    is decided (see ``Parser.scan``)."""
    spans = []
    finder = _Finder(text)
    pos = 0
    while starts := [(at, k) for k, (s, _) in enumerate(pairs) if (at := finder.find(s, pos)) >= 0]:
        at, k = min(starts)
        start, end = pairs[k]
        body_start = at + len(start)
        close, nxt = finder.find(end, body_start), finder.find(start, body_start)
        if close >= 0 and (nxt < 0 or close < nxt):
            spans.append(Span(at, close + len(end), text[body_start:close], True))
            pos = close + len(end)
        else:
            pos = nxt if nxt >= 0 else len(text)
            spans.append(Span(at, pos, text[body_start:pos], False))
    return spans, _decided(text, spans, pos, max(len(s) for s, _ in pairs))


def _decided(text: str, spans: list[Span], pos: int, longest_start: int) -> int:
    """The start of the first call still open; with none, the end of the text less a marker's possible start."""
    open_at = [s.start for s in spans if not s.closed]
    return open_at[0] if open_at else max(pos, len(text) - longest_start + 1)


def _incomplete(text: str, e: json.JSONDecodeError) -> bool:
    """Whether JSON that failed to decode may still decode once more text comes: it ran out (an open string, or
    a literal, number or escape cut near the end) rather than meeting a character that can never fit."""
    return e.msg.startswith("Unterminated string") or len(text) - e.pos <= len("-Infinity")


def _first(text: str, marker: str, spans: list[Span]) -> int:
    """Content ends at a section marker or at the first call, whichever comes first."""
    at = text.find(marker)
    end = spans[0].start if spans else len(text)
    return min(at, end) if at >= 0 else end


class JsonTagParser(Parser):
    """<tool_call>{"name": ..., "arguments": {...}}</tool_call> (Hermes, Qwen 2.5, LongCat with its own tag)."""

    def __init__(self, name: str, start: str = "<tool_call>", end: str = "</tool_call>") -> None:
        self.name, self.start, self.end = name, start, end
        self.markers, self.closers = (start,), (end,)

    def scan(self, text: str) -> tuple[list[Span], int]:
        return _delimited(text, (self.start, self.end))

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        return [_name_args(_json_object(span.body))]


class Qwen3XmlParser(Parser):
    """<tool_call><function=name><parameter=p>value</parameter></function></tool_call> (Qwen3-Coder); a bare
    <function=...>...</function> is a call too."""

    typed_by_schema = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.markers = ("<tool_call>", "<function=")
        self.closers = ("</tool_call>", "</function>")

    def scan(self, text: str) -> tuple[list[Span], int]:
        return _delimited(text, ("<tool_call>", "</tool_call>"), ("<function=", "</function>"))

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
    closers = ("}",)  # a malformed call also closes at the next call's '"name":', but yields no call to send

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, text: str) -> tuple[list[Span], int]:
        spans: list[Span] = []
        pos, pending = 0, len(text)  # pending: the first '{' whose JSON may still complete
        while (at := text.find("{", pos)) >= 0:
            if not _OBJECT_OPEN.match(text, at):
                pos = at + 1
                continue
            try:
                obj, end = _DECODER.raw_decode(text, at)
            except json.JSONDecodeError as e:
                if _CALL_START.match(text, at):
                    close = self._recover_end(text, at)
                    spans.append(Span(at, close, text[at:close], close < len(text)))
                    pos = close
                else:
                    pending = min(pending, at) if _incomplete(text, e) else pending
                    pos = at + 1
                continue
            if isinstance(obj, dict) and "name" in obj and ("parameters" in obj or "arguments" in obj):
                spans.append(Span(at, end, text[at:end], True))
                pos = end
            else:
                pos = at + 1
        return spans, min(pending, _decided(text, spans, pos, 1))

    @staticmethod
    def _recover_end(text: str, at: int) -> int:
        """End of a malformed call: the next call, separator or the end of the text."""
        nxt = _NEXT_CALL.search(text, at + 1)
        return nxt.start() if nxt else len(text)

    def content_end(self, text: str, spans: list[Span]) -> int:
        end = super().content_end(text, spans)
        tag = text.find("<|python_tag|>")
        return min(end, tag) if tag >= 0 else end

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        return [_name_args(_json_object(span.body))]


class MistralParser(Parser):
    """[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...] or, since v11, [TOOL_CALLS]name{...} (also [ARGS])."""

    markers = ("[TOOL_CALLS]",)
    closers = ("]", "}")

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, text: str) -> tuple[list[Span], int]:
        parts, at = [], text.find("[TOOL_CALLS]")
        while at >= 0:
            parts.append(at)
            at = text.find("[TOOL_CALLS]", at + 1)
        out = []
        for k, at in enumerate(parts):
            start, stop = at + len("[TOOL_CALLS]"), parts[k + 1] if k + 1 < len(parts) else len(text)
            end = self._json_end(text[start:stop])
            closed = end >= 0
            out.append(Span(at, start + end if closed else stop, text[start : start + end if closed else stop], closed))
        return out, _decided(text, out, out[-1].end if out else 0, len("[TOOL_CALLS]"))

    @staticmethod
    def _json_end(body: str) -> int:
        """Where the call list (or v11's arguments object) ends in ``body``; -1 while it is incomplete. A closed
        call ends there, not at the end of the text, so that what follows it is parsed on its own."""
        lead = len(body) - len(body.lstrip())
        listed = body.startswith("[", lead)
        at = lead if listed else body.find("{", lead)
        if at < 0 or (listed and "]" not in body):  # a list is not complete before its ']' (a stream's usual case)
            return -1
        try:
            return int(_DECODER.raw_decode(body, at)[1])
        except json.JSONDecodeError:
            return -1

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
        self.markers, self.closers = (self.SECTION, self.BEGIN), (self.END,)

    def scan(self, text: str) -> tuple[list[Span], int]:
        return _delimited(text, (self.BEGIN, self.END))

    def content_end(self, text: str, spans: list[Span]) -> int:
        return _first(text, self.SECTION, spans)

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
    closers = ("<|tool_call_end|>",)

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, text: str) -> tuple[list[Span], int]:
        return _delimited(text, ("<|tool_call_begin|>", "<|tool_call_end|>"))

    def content_end(self, text: str, spans: list[Span]) -> int:
        return _first(text, "<|tool_calls_section_begin|>", spans)

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
    markers, closers = ("<tool_call>",), ("</tool_call>",)

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, text: str) -> tuple[list[Span], int]:
        return _delimited(text, ("<tool_call>", "</tool_call>"))

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
