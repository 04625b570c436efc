"""The parser contract: raw model text in, OpenAI-style content and tool calls out.

Every format is described by where its calls are (``spans``) and how one call decodes (``decode``); the base
class turns that into ``parse`` and a streaming form whose result always equals ``parse`` on the whole text.
A malformed call is reported in ``errors`` and never drops the well-formed calls beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """Where one call (or a list of calls) sits in the text; ``closed`` when its end marker was seen."""

    start: int
    end: int
    body: str
    closed: bool


@dataclass
class ParseResult:
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def make_call(index: int, name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI-style tool call; the id is derived from the call, so streaming and parsing agree."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    digest = hashlib.sha1(f"{index}\0{name}\0{args}".encode()).hexdigest()[:16]
    return {"id": f"call_{digest}", "type": "function", "function": {"name": name, "arguments": args}}


def schema_types(tools: list[dict[str, Any]] | None, name: str) -> dict[str, str] | None:
    """Parameter name -> JSON-schema type of tool ``name``, or None when no schema is known."""
    for tool in tools or []:
        fn = tool.get("function", tool)
        if fn.get("name") == name:
            props = (fn.get("parameters") or {}).get("properties") or {}
            return {k: str(v.get("type", "string")) for k, v in props.items()}
    return None


def typed_value(raw: str, kind: str | None) -> Any:
    """An XML-style argument value, typed by its schema type; guessed (JSON if it parses) when unknown."""
    text = raw.strip("\n")
    if kind == "string":
        return text
    if kind in ("integer", "number", "boolean", "object", "array", "null") or kind is None:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            if kind == "boolean" and text.lower() in ("true", "false"):
                return text.lower() == "true"
            return text
    return text


class Parser:
    """Subclasses set ``name``, ``markers`` (strings that may open a call) and implement spans/decode."""

    name = ""
    markers: tuple[str, ...] = ()
    typed_by_schema = False  # XML-style formats carry untyped values

    def spans(self, text: str) -> list[Span]:
        raise NotImplementedError

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        """(name, arguments) of each call in the span; raises ValueError when the span is malformed."""
        raise NotImplementedError

    def content_end(self, text: str, spans: list[Span]) -> int:
        """Where the content (the text before the first call) ends."""
        return spans[0].start if spans else len(text)

    def parse_full(self, text: str, tools: list[dict[str, Any]] | None = None) -> ParseResult:
        spans = self.spans(text)
        result = ParseResult(content=text[: self.content_end(text, spans)].strip())
        for span in spans:
            try:
                decoded = self.decode(span, tools)
            except (ValueError, KeyError, TypeError) as e:
                result.errors.append(f"malformed call at offset {span.start}: {e}")
                continue
            for name, args in decoded:
                result.tool_calls.append(make_call(len(result.tool_calls), name, args))
        if self.typed_by_schema and result.tool_calls:
            missing = [
                c["function"]["name"] for c in result.tool_calls if schema_types(tools, c["function"]["name"]) is None
            ]
            if missing:
                result.notes.append(f"argument types guessed (no schema for {', '.join(sorted(set(missing)))})")
        return result

    def parse(self, text: str, tools: list[dict[str, Any]] | None = None) -> tuple[str, list[dict[str, Any]]]:
        r = self.parse_full(text, tools)
        return r.content, r.tool_calls

    def stream(self, tools: list[dict[str, Any]] | None = None) -> StreamParser:
        return StreamParser(self, tools)


class StreamParser:
    """Incremental parsing: ``feed(delta)`` returns events as soon as they are certain; ``finish()`` the rest.

    Events are ("content", text) and ("tool_call", call). Concatenated content and the calls in order equal
    ``parse`` on the whole text.
    """

    def __init__(self, parser: Parser, tools: list[dict[str, Any]] | None) -> None:
        self.parser = parser
        self.tools = tools
        self.buffer = ""
        self.content_start = 0
        self.content_sent = 0
        self.calls_sent = 0
        self.content_done = False

    def _safe_content_end(self) -> int:
        """Content may be sent up to the first possible call start (a marker, or a marker's prefix at the end)."""
        text = self.buffer
        end = len(text)
        for m in self.parser.markers:
            at = text.find(m)
            if at >= 0:
                end = min(end, at)
            for k in range(len(m) - 1, 0, -1):
                if text.endswith(m[:k]):
                    end = min(end, len(text) - k)
                    break
        return end

    def feed(self, delta: str) -> list[tuple[str, Any]]:
        self.buffer += delta
        events: list[tuple[str, Any]] = []
        if self.content_sent == 0:
            self.content_start = len(self.buffer) - len(self.buffer.lstrip())  # content is stripped
            self.content_sent = self.content_start
        if not self.content_done:
            # Trailing whitespace may belong before a call: hold it back, content is stripped.
            end = len(self.buffer[: self._safe_content_end()].rstrip())
            if end > self.content_sent:
                events.append(("content", self.buffer[self.content_sent : end]))
                self.content_sent = end
        spans = [s for s in self.parser.spans(self.buffer) if s.closed]
        done = self.parser.parse_full(self.buffer[: spans[-1].end], self.tools).tool_calls if spans else []
        for call in done[self.calls_sent :]:
            events.append(("tool_call", call))
        self.calls_sent = max(self.calls_sent, len(done))
        if spans:
            self.content_done = True
        return events

    def finish(self) -> list[tuple[str, Any]]:
        final = self.parser.parse_full(self.buffer, self.tools)
        events: list[tuple[str, Any]] = []
        sent = self.buffer[self.content_start : self.content_sent]
        if final.content != sent and final.content.startswith(sent):
            events.append(("content", final.content[len(sent) :]))
        for call in final.tool_calls[self.calls_sent :]:
            events.append(("tool_call", call))
        return events
