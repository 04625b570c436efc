"""A scripted OpenAI-compatible server on 127.0.0.1 whose answers the caller defines.

Like httpx's MockTransport, it is part of the library so that users can test their own environments and
pipelines over real HTTP without a model. Replies are consumed in order (or computed by a function of the
request); every request body is recorded in ``requests``.

    with ScriptedServer(["Hello", ToolCall("bash", {"command": "ls"}), Error(429), "OK"]) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x")
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ToolCall:
    """An assistant tool call; ``arguments`` may be a dict (encoded for you) or a raw string (sent as is)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)


@dataclass
class Error:
    """An HTTP error answer."""

    status: int
    message: str = "scripted error"


@dataclass
class Hang:
    """Wait ``seconds`` before answering with ``then`` (a client with a shorter timeout gives up)."""

    seconds: float
    then: Any = "late answer"


Reply = str | ToolCall | list[ToolCall] | dict[str, Any] | Error | Hang
Script = Iterable[Reply] | Callable[[dict[str, Any]], Reply]


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # many concurrent rollouts connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) closes the socket mid-answer: not worth a traceback."""


class ScriptedServer:
    """Serves /v1/models and /v1/chat/completions from a script, on a free port of 127.0.0.1."""

    def __init__(self, script: Script, models: Iterable[str] = ("boa",), api_key: str | None = None) -> None:
        self._next: Callable[[dict[str, Any]], Reply]
        if callable(script):
            self._next = script
        else:
            replies: Iterator[Reply] = iter(script)
            self._next = lambda _req: next(replies, Error(500, "the script has no more replies"))
        self.models = list(models)
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients use (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reply_for(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            try:
                return self._next(body)
            except Exception as e:  # a broken script answers 500 with the reason instead of dropping the line
                return Error(500, f"the script raised {type(e).__name__}: {e}")

    def completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A chat.completion object for ``reply``."""
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(reply, str):
            message["content"] = reply
        elif isinstance(reply, ToolCall | list):
            calls = reply if isinstance(reply, list) else [reply]
            message["tool_calls"] = [self._tool_call(c) for c in calls]
        elif isinstance(reply, dict):
            message.update(reply)
        prompt = len(json.dumps(body.get("messages", []))) // 4
        completion = len(json.dumps(message)) // 4
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def response(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A Responses API object (POST /v1/responses) for ``reply``."""
        output: list[dict[str, Any]] = []
        if isinstance(reply, str):
            content = [{"type": "output_text", "text": reply, "annotations": []}]
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{next(self._ids)}",
                    "role": "assistant",
                    "status": "completed",
                    "content": content,
                }
            )
        elif isinstance(reply, ToolCall | list):
            for call in reply if isinstance(reply, list) else [reply]:
                tc = self._tool_call(call)
                output.append(
                    {
                        "type": "function_call",
                        "id": f"fc_{next(self._ids)}",
                        "call_id": tc["id"],
                        "name": call.name,
                        "arguments": tc["function"]["arguments"],
                        "status": "completed",
                    }
                )
        prompt = len(json.dumps(body.get("input", ""))) // 4
        completion = len(json.dumps(output)) // 4
        return {
            "id": f"resp_{next(self._ids)}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body.get("model", self.models[0]),
            "output": output,
            "usage": {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def anthropic_message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """An Anthropic Messages API message (POST /v1/messages) for ``reply``."""
        content: list[dict[str, Any]] = []
        if isinstance(reply, str):
            content.append({"type": "text", "text": reply})
        elif isinstance(reply, ToolCall | list):
            for call in reply if isinstance(reply, list) else [reply]:
                args = json.loads(call.arguments) if isinstance(call.arguments, str) else call.arguments
                content.append({"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": call.name, "input": args})
        stop = "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn"
        usage = {
            "input_tokens": len(json.dumps(body.get("messages", []))) // 4,
            "output_tokens": len(json.dumps(content)) // 4,
        }
        return {
            "id": f"msg_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    @staticmethod
    def anthropic_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The Messages API's streamed events for a whole message."""
        start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
        for i, block in enumerate(message["content"]):
            if block["type"] == "text":
                events.append(("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}}))
                events.append(
                    ("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": block["text"]}})
                )
            else:
                empty = {**block, "input": {}}
                events.append(("content_block_start", {"index": i, "content_block": empty}))
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                events.append(("content_block_delta", {"index": i, "delta": delta}))
            events.append(("content_block_stop", {"index": i}))
        events.append(
            (
                "message_delta",
                {
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": message["usage"]["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {}))
        return events

    def _tool_call(self, call: ToolCall) -> dict[str, Any]:
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        return {"id": f"call_{next(self._ids)}", "type": "function", "function": {"name": call.name, "arguments": args}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"server_obj": self})


class _Handler(BaseHTTPRequestHandler):
    """The HTTP side of a ScriptedServer (``server``, set on each server's own subclass)."""

    server_obj: ScriptedServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.server_obj.api_key and self.headers.get("Authorization") != f"Bearer {self.server_obj.api_key}":
            self._send(401, {"error": {"message": "invalid api key", "type": "authentication_error"}})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "repogym"} for m in self.server_obj.models]
            self._send(200, {"object": "list", "data": data})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        route = self.path.split("?")[0].rstrip("/")
        if route == "/v1/messages/count_tokens":
            self._send(200, {"input_tokens": len(json.dumps(body)) // 4})
            return
        if route not in ("/v1/chat/completions", "/v1/responses", "/v1/messages"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._answer(route, body)

    def _answer(self, route: str, body: dict[str, Any]) -> None:
        """The script's next reply, in the shape of the route's API (Chat Completions, Messages or Responses)."""
        reply = self.server_obj.reply_for(body)
        while isinstance(reply, Hang):
            time.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, Error):
            self._send(reply.status, {"error": {"message": reply.message, "code": reply.status}})
            return
        if route == "/v1/chat/completions":
            self._send(200, self.server_obj.completion(body, reply))
            return
        if route == "/v1/messages":
            message = self.server_obj.anthropic_message(body, reply)
            if body.get("stream"):
                self._sse(self.server_obj.anthropic_events(message))
            else:
                self._send(200, message)
            return
        response = self.server_obj.response(body, reply)
        if body.get("stream"):
            self._stream(response)
        else:
            self._send(200, response)

    def _sse(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        data = "".join(f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n" for name, payload in events)
        raw = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _stream(self, response: dict[str, Any]) -> None:
        """The Responses API's server-sent events, as codex and the openai SDK read them."""
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": {**response, "status": "in_progress", "output": []}})
        ]
        for i, item in enumerate(response["output"]):
            events.append(("response.output_item.added", {"output_index": i, "item": item}))
            if item["type"] == "message":
                text = item["content"][0]["text"]
                delta = {"item_id": item["id"], "output_index": i, "content_index": 0, "delta": text}
                events.append(("response.output_text.delta", delta))
            events.append(("response.output_item.done", {"output_index": i, "item": item}))
        events.append(("response.completed", {"response": response}))
        data = "".join(
            f"event: {name}\ndata: {json.dumps({'type': name, 'sequence_number': k, **payload})}\n\n"
            for k, (name, payload) in enumerate(events)
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


GenerateScript = Callable[[list[int]], "tuple[list[int], list[float]] | Error"]


class ScriptedGenerateServer:
    """Token-in, token-out generate endpoints on 127.0.0.1, answering from a script of (ids, logprobs) or Error.

    Speaks vLLM's /inference/v1/generate and /v1/completions (token ids in, ``token_id:N`` out) and SGLang's
    /generate; ``wrap_json_in_string`` answers like a gateway that returns the JSON body as a JSON string.
    """

    def __init__(
        self,
        script: GenerateScript | Iterable[tuple[list[int], list[float]] | Error],
        wrap_json_in_string: bool = False,
    ):
        if callable(script):
            self._next: GenerateScript = script
        else:
            replies = iter(script)
            self._next = lambda _ids: next(replies)
        self.wrap = wrap_json_in_string
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ScriptedGenerateServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> Any:
        self.requests.append((path, body))
        key = {"/inference/v1/generate": "token_ids", "/v1/completions": "prompt"}.get(path, "input_ids")
        reply = self._next(list(body[key]))
        if isinstance(reply, Error):
            return reply
        ids, lps = reply
        if path == "/inference/v1/generate":
            content = [{"token": f"token_id:{i}", "logprob": lp} for i, lp in zip(ids, lps, strict=True)]
            return {
                "choices": [{"index": 0, "token_ids": ids, "logprobs": {"content": content}, "finish_reason": "stop"}]
            }
        if path == "/v1/completions":
            lp = {"tokens": [f"token_id:{i}" for i in ids], "token_logprobs": lps}
            return {
                "object": "text_completion",
                "choices": [{"index": 0, "text": "", "logprobs": lp, "finish_reason": "stop"}],
            }
        meta = {
            "output_token_logprobs": [[lp, i, None] for i, lp in zip(ids, lps, strict=True)],
            "finish_reason": {"type": "stop"},
        }
        return {"text": "", "output_ids": ids, "meta_info": meta}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                path = self.path.split("?")[0].rstrip("/")
                out: Any
                if path not in ("/inference/v1/generate", "/v1/completions", "/generate"):
                    status, out = 404, {"error": f"no route {path}"}
                else:
                    status, out = 200, server.answer(path, body)
                    if isinstance(out, Error):
                        status, out = out.status, {"error": {"message": out.message, "code": out.status}}
                    elif server.wrap:
                        out = json.dumps(out)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
