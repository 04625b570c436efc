"""The built-in agent's tools, run against a sandbox: bash, read_file, write_file, str_replace, submit.

A tool failure is a message to the model, never an exception: unknown tools, malformed arguments and bad paths
all come back as text that says what was wrong. Arguments that arrive double-JSON-encoded, or as a bare string
for a tool with one required string parameter, are repaired when that is unambiguous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from repogym.errors import SandboxDied, SandboxError
from repogym.sandbox import Sandbox


def _fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


_S = {"type": "string"}
_I = {"type": "integer"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "bash": _fn(
        "bash", "Run a shell command in the repository root; returns exit code, stdout and stderr.",
        {"command": _S}, ["command"],
    ),
    "read_file": _fn(
        "read_file", "Read a file (path relative to the repository root), optionally lines start..end (1-based).",
        {"path": _S, "start_line": _I, "end_line": _I}, ["path"],
    ),
    "write_file": _fn("write_file", "Create or overwrite a file with content.", {"path": _S, "content": _S},
                      ["path", "content"]),
    "str_replace": _fn(
        "str_replace", "Replace the one exact occurrence of old with new in a file.",
        {"path": _S, "old": _S, "new": _S}, ["path", "old", "new"],
    ),
    "submit": _fn("submit", "Finish: call this when the work is done.", {}, []),
}  # fmt: skip
ALL_TOOLS = tuple(SCHEMAS)
FILE_TOOLS = ("read_file", "write_file", "str_replace", "submit")


@dataclass
class ToolResult:
    content: str
    submitted: bool = False
    error: bool = False


@dataclass
class ToolLimits:
    command_timeout_s: float = 120.0
    max_output_bytes: int = 20_000


def parse_arguments(name: str, raw: Any) -> dict[str, Any]:
    """Decode tool arguments, repairing double encoding and bare strings; raises ValueError with the reason."""
    if isinstance(raw, dict):
        return raw
    text = raw if isinstance(raw, str) else ""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(value, str):
        try:
            value = json.loads(value)  # double-encoded: "{\"command\": \"ls\"}"
        except json.JSONDecodeError:
            required = SCHEMAS[name]["function"]["parameters"]["required"]
            if len(required) == 1:
                return {required[0]: value}  # a bare string for the one required parameter
            raise ValueError(f"arguments are not a JSON object: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


def _validate(name: str, args: dict[str, Any]) -> str | None:
    params = SCHEMAS[name]["function"]["parameters"]
    missing = [p for p in params["required"] if p not in args]
    if missing:
        return f"missing argument(s): {', '.join(missing)}"
    unknown = [a for a in args if a not in params["properties"]]
    if unknown:
        return f"unknown argument(s): {', '.join(unknown)}; this tool takes {', '.join(params['properties'])}"
    for key, value in args.items():
        want = params["properties"][key]["type"]
        if want == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
            args[key] = int(value)
        elif (want == "string" and not isinstance(value, str)) or (
            want == "integer" and not isinstance(args[key], int)
        ):
            return f"argument {key!r} must be a {want}"
    return None


def run_tool(sandbox: Sandbox, name: str, raw_args: Any, allowed: tuple[str, ...], limits: ToolLimits) -> ToolResult:
    """Run one tool call; every problem becomes an error message for the model."""
    if name not in allowed:
        return ToolResult(f"error: unknown tool {name!r}; available tools: {', '.join(allowed)}", error=True)
    try:
        args = parse_arguments(name, raw_args)
    except ValueError as e:
        return ToolResult(f"error: {name}: {e}", error=True)
    problem = _validate(name, args)
    if problem:
        return ToolResult(f"error: {name}: {problem}", error=True)
    try:
        return _dispatch(sandbox, name, args, limits)
    except SandboxDied:
        raise  # not the model's fault: the rollout ends as an infrastructure failure
    except (SandboxError, OSError, UnicodeError) as e:
        return ToolResult(f"error: {name}: {e}", error=True)


def _path(path: str) -> str:
    """Paths are relative to the repository root; /repo/... is accepted too."""
    p = path[2:] if path.startswith("./") else path
    return p if p.startswith("/") else f"/repo/{p}"


def _dispatch(sandbox: Sandbox, name: str, args: dict[str, Any], limits: ToolLimits) -> ToolResult:
    if name == "submit":
        return ToolResult("submitted", submitted=True)
    if name == "bash":
        r = sandbox.exec(args["command"], timeout_s=limits.command_timeout_s, max_output_bytes=limits.max_output_bytes)
        head = f"timed out after {limits.command_timeout_s:.0f}s" if r.timed_out else f"exit code: {r.exit_code}"
        head += f" (stopped by the sandbox: {r.limit})" if r.limit else ""
        return ToolResult(f"{head}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    path = _path(args["path"])
    if name == "read_file":
        try:
            lines = sandbox.read_file(path).splitlines()
        except FileNotFoundError:
            return ToolResult(f"error: read_file: {args['path']}: no such file", error=True)
        start, end = args.get("start_line", 1), args.get("end_line", len(lines))
        shown = lines[max(start, 1) - 1 : end]
        text = "\n".join(f"{i:6}\t{line}" for i, line in enumerate(shown, max(start, 1)))
        return ToolResult(text[: limits.max_output_bytes] or "(empty file)")
    if name == "write_file":
        sandbox.write_file(path, args["content"])
        return ToolResult(f"wrote {len(args['content'])} characters to {args['path']}")
    try:
        text = sandbox.read_file(path)
    except FileNotFoundError:
        return ToolResult(f"error: str_replace: {args['path']}: no such file", error=True)
    count = text.count(args["old"])
    if count != 1:
        why = "not found" if count == 0 else f"found {count} times; include more context to make it unique"
        return ToolResult(f"error: str_replace: old text {why} in {args['path']}", error=True)
    sandbox.write_file(path, text.replace(args["old"], args["new"]))
    return ToolResult(f"replaced 1 occurrence in {args['path']}")
