"""The parser contract: raw model text in, OpenAI-style content and tool calls out.

Every format is described by where its calls are (``spans``) and how one call decodes (``decode``); the base
class turns that into ``parse`` and a streaming form whose result always equals ``parse`` on the whole text.
A malformed call is reported in ``errors`` and never drops the well-formed calls beside it.

Streaming keeps its position: the text before the last emitted call is never looked at again, and a delta is
parsed only when it holds one of the format's ``closers`` (the strings that can end a call), so the total cost
of a stream is linear in its output, a few times one whole parse.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
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
    """Subclasses set ``name``, ``markers`` (strings that may open a call), ``closers`` (strings whose arrival may
    complete a call) and implement spans/decode. ``spans`` must be prefix-stable: the spans up to a closed one
    are the same in any longer text, and the spans after it are those of the text that follows it."""

    name = ""
    markers: tuple[str, ...] = ()
    closers: tuple[str, ...] = ()
    typed_by_schema = False  # XML-style formats carry untyped values

    def scan(self, text: str) -> tuple[list[Span], int]:
        """The spans, and how far the text is decided: no longer text changes or adds a span before that point
        (the start of the first call still open, or of JSON that may still complete), and scanning the text from
        there finds what scanning all of it finds after it. A stream never scans the text before it again."""
        raise NotImplementedError

    def spans(self, text: str) -> list[Span]:
        return self.scan(text)[0]

    def decode(self, span: Span, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        """(name, arguments) of each call in the span; raises ValueError when the span is malformed."""
        raise NotImplementedError

    def content_end(self, text: str, spans: list[Span]) -> int:
        """Where the content (the text before the first call) ends."""
        return spans[0].start if spans else len(text)

    def calls(
        self, spans: list[Span], tools: list[dict[str, Any]] | None, first: int = 0
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The calls of ``spans``, numbered from ``first``, and an error for each malformed span."""
        calls: list[dict[str, Any]] = []
        errors = []
        for span in spans:
            try:
                decoded = self.decode(span, tools)
            except (ValueError, KeyError, TypeError) as e:
                errors.append(f"malformed call at offset {span.start}: {e}")
                continue
            calls += [make_call(first + len(calls) + k, name, args) for k, (name, args) in enumerate(decoded)]
        return calls, errors

    def parse_full(self, text: str, tools: list[dict[str, Any]] | None = None) -> ParseResult:
        spans = self.spans(text)
        calls, errors = self.calls(spans, tools)
        result = ParseResult(content=text[: self.content_end(text, spans)].strip(), tool_calls=calls, errors=errors)
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


def marker_prefix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that begins ``marker`` without being all of it (0 when none)."""
    start = max(0, len(text) - len(marker) + 1)
    while (at := text.find(marker[0], start)) >= 0:
        if marker.startswith(text[at:]):
            return len(text) - at
        start = at + 1
    return 0


Event = tuple[str, Any]


class StreamParser:
    """Incremental parsing: ``feed(delta)`` returns events as soon as they are certain; ``finish()`` the rest.

    Events are ("content", text) and ("tool_call", call). Concatenated content and the calls in order equal
    ``parse`` on the whole text. Only the text after the last emitted call is kept (``_tail``, joined from
    ``_pending`` when a closer arrives), and content is sent from a short held-back end (``_held``).
    """

    def __init__(self, parser: Parser, tools: list[dict[str, Any]] | None) -> None:
        self.parser, self.tools = parser, tools
        self._tail = ""  # the text not yet decided (see Parser.scan), less the deltas in _pending
        self._head: list[str] = []  # decided text with no call in it, kept until the content is decided
        self._pending: list[str] = []
        self._closers = [(c, c[-1]) for c in parser.closers]  # a closer that arrived ends in the newest delta
        self._longest_marker = max((len(m) for m in parser.markers), default=1)
        self._marker_starts = {m[0] for m in parser.markers}
        self._held = ""  # content not sent yet: trailing whitespace and a possible marker prefix
        self._sent = 0  # characters of content sent
        self._content_open = True  # until a marker: content may still be sent
        self._decided = False  # a call span was taken: content is final, _tail starts after that span
        self._calls = 0

    @property
    def buffered(self) -> int:
        """Characters kept for parsing: the text since the last emitted call (all of it before the first)."""
        return sum(map(len, self._head)) + len(self._tail) + sum(map(len, self._pending))

    def feed(self, delta: str) -> list[Event]:
        self._pending.append(delta)
        events = self._content(delta) if self._content_open else []
        for closer, last in self._closers:
            if last in delta and self._arrived(closer, last, delta):
                events += self._advance()
                break
        return events

    def finish(self) -> list[Event]:
        tail = self._joined()
        spans = self.parser.scan(tail)[0]
        events = [] if self._decided else self._final_content(tail, spans)
        return events + self._emit(spans)

    def _arrived(self, closer: str, last: str, delta: str) -> bool:
        """Whether ``closer`` ends in ``delta``: where its last character is, the delta must end like the closer
        (a cheap test that passes over other markers ending in the same character), then the text before it."""
        at = delta.find(last)
        while at >= 0:
            seen = delta[max(0, at + 1 - len(closer)) : at + 1]
            if closer.endswith(seen) and (len(seen) == len(closer) or closer in self._before(len(closer) - 1) + delta):
                return True
            at = delta.find(last, at + 1)
        return False

    def _before(self, n: int) -> str:
        """The last ``n`` characters before the newest delta, where a closer split across deltas began."""
        text, k = "", len(self._pending) - 2
        while len(text) < n and k >= 0:
            text, k = self._pending[k] + text, k - 1
        if len(text) < n:
            text = self._tail[max(0, len(self._tail) - (n - len(text))) :] + text
        return text[len(text) - n :] if len(text) > n else text

    def _joined(self) -> str:
        if self._pending:
            self._tail += "".join(self._pending)
            self._pending.clear()
        return self._tail

    def _content(self, delta: str) -> list[Event]:
        """Send content up to the first possible call start; whitespace before it is held back (content is
        stripped), and so is an end that may begin a marker."""
        held = self._held + delta if self._sent else (self._held + delta).lstrip()
        lo = max(0, len(held) - len(delta) - self._longest_marker)
        end = len(held)
        if any(c in held[lo:] for c in self._marker_starts):  # else neither a marker nor its start is here
            hits = [at for m in self.parser.markers if (at := held.find(m, lo)) >= 0]
            if hits:
                end, self._content_open = min(hits), False
            else:
                end -= max(marker_prefix(held, m) for m in self.parser.markers)
        out = held[:end].rstrip()
        self._held = held[len(out) :]
        self._sent += len(out)
        return [("content", out)] if out else []

    def _advance(self) -> list[Event]:
        """A closer arrived: emit the calls up to the last closed span and forget the text before its end."""
        tail = self._joined()
        spans, decided = self.parser.scan(tail)
        last = len(spans) - 1
        while last >= 0 and not spans[last].closed:
            last -= 1
        if last < 0:  # nothing to send: set the decided text aside, so that no scan or copy sees it again
            if not self._decided:
                self._head.append(tail[:decided])
            self._tail = tail[decided:]
            return []
        events = [] if self._decided else self._final_content(tail, spans)
        events += self._emit(spans[: last + 1])
        self._tail = tail[spans[last].end :]
        return events

    def _final_content(self, tail: str, spans: list[Span]) -> list[Event]:
        """The content is decided once a call is: send what the whole parse has beyond what was sent."""
        self._decided, self._content_open = True, False
        head = "".join(self._head)
        self._head.clear()
        text, spans = head + tail, [replace(s, start=s.start + len(head), end=s.end + len(head)) for s in spans]
        rest = text[: self.parser.content_end(text, spans)].strip()[self._sent :]
        return [("content", rest)] if rest else []

    def _emit(self, spans: list[Span]) -> list[Event]:
        calls, _ = self.parser.calls(spans, self.tools, self._calls)
        self._calls += len(calls)
        return [("tool_call", c) for c in calls]
