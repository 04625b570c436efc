"""External coding agents behind one interface: the prompt, the working directory, extra directories, the
commands the agent may run (as prefixes), one extra writable file (a tips file) and web search.

The agent's JSON event log streams to a file while its assistant messages are handed to a callback. Each agent
has a registry entry; an agent whose binary is missing gets an error saying how to install it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from repogym.agents.loop import Trajectory
from repogym.errors import RepogymError
from repogym.sandbox.base import run_bounded


class ExternalAgentConfig(BaseModel):
    agent: str = Field(description="Registry name: codex, claude or mini-swe-agent.")
    model: str | None = Field(None, description="Model name the agent asks for (provider prefix stripped).")
    api_base: str | None = Field(None, description="OpenAI-compatible base URL (a custom provider for codex).")
    extra_dirs: list[Path] = Field(default_factory=list, description="Directories the agent may also write.")
    allowed_commands: list[str] = Field(default_factory=list, description="Command prefixes the agent may run.")
    writable_file: Path | None = Field(None, description="One extra file the agent may edit (the tips file).")
    web_search: bool = Field(False, description="Let the agent search the web.")
    sandboxed: bool = Field(
        False, description="Use the agent's own sandbox; off when repogym's sandbox or a container already isolates."
    )
    timeout_s: float = Field(3600.0, description="Wall time of the run.")
    binary: str | None = Field(None, description="Path of the agent's executable (default: found on PATH).")


class AgentRun(BaseModel):
    exit_code: int | None
    timed_out: bool
    seconds: float
    log_path: str
    messages: list[str]
    usage: dict[str, Any] = Field(default_factory=dict)
    limit: str = Field("", description="The limit that stopped the agent (its log grew too large), if any.")
    stderr: str = Field("", description="The end of what the agent wrote to stderr.")


INSTALL = {
    "codex": "npm install -g @openai/codex (or pass --agent-binary PATH)",
    "claude": "npm install -g @anthropic-ai/claude-code (or pass --agent-binary PATH)",
    "mini-swe-agent": "pip install mini-swe-agent (or pass --agent-binary PATH to its `mini`)",
}


def _codex(cfg: ExternalAgentConfig, prompt: str, workdir: Path, home: Path) -> tuple[list[str], dict[str, str]]:
    """codex exec --json, with a private CODEX_HOME: a config for the custom provider, and the allowed
    commands as execpolicy prefix rules. Codex never writes outside that home and the given directories."""
    binary = cfg.binary or shutil.which("codex") or ""
    lines = []
    if cfg.model:
        lines.append(f"model = {json.dumps(cfg.model)}")
    if cfg.api_base:
        lines += [
            'model_provider = "repogym"',
            "[model_providers.repogym]",
            'name = "repogym"',
            f"base_url = {json.dumps(cfg.api_base)}",
            'env_key = "REPOGYM_AGENT_API_KEY"',
            'wire_api = "responses"',  # codex accepts only the Responses API for custom providers
        ]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    if cfg.allowed_commands:
        rules = "".join(
            f'prefix_rule(pattern = {json.dumps(shlex.split(c))}, decision = "allow")\n' for c in cfg.allowed_commands
        )
        (home / "rules").mkdir(exist_ok=True)
        (home / "rules" / "repogym.rules").write_text(rules)
    argv = [binary, "exec", "--json", "--skip-git-repo-check", "--ephemeral", "-C", str(workdir)]
    dirs = [*cfg.extra_dirs, *([cfg.writable_file.parent] if cfg.writable_file else [])]
    for d in dirs:
        argv += ["--add-dir", str(d)]
    argv += ["-c", f"tools.web_search={'true' if cfg.web_search else 'false'}"]
    argv += ["-s", "workspace-write"] if cfg.sandboxed else ["--dangerously-bypass-approvals-and-sandbox"]
    env = {"CODEX_HOME": str(home), "REPOGYM_AGENT_API_KEY": os.environ.get("OPENAI_API_KEY", "none")}
    return [*argv, prompt], env


def _codex_message(event: dict[str, Any]) -> str | None:
    item = event.get("item") or {}
    if event.get("type") == "item.completed" and item.get("type") == "agent_message":
        return str(item.get("text", ""))
    return None


def _claude(cfg: ExternalAgentConfig, prompt: str, workdir: Path, home: Path) -> tuple[list[str], dict[str, str]]:
    """Claude Code headless (`claude -p --output-format stream-json`), its config in a private CLAUDE_CONFIG_DIR,
    edits accepted, and shell commands limited to the allowed prefixes (any command when none is given)."""
    binary = cfg.binary or shutil.which("claude") or ""
    bash = [f"Bash({c}:*)" for c in cfg.allowed_commands] or ["Bash"]
    tools = [*bash, "Read", "Edit", "Write", "Glob", "Grep", *(["WebSearch", "WebFetch"] if cfg.web_search else [])]
    argv = [binary, "-p", prompt, "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits",
            "--allowedTools", *tools]  # fmt: skip
    if not cfg.web_search:
        argv += ["--disallowedTools", "WebSearch", "WebFetch"]
    for d in [*cfg.extra_dirs, *([cfg.writable_file.parent] if cfg.writable_file else [])]:
        argv += ["--add-dir", str(d)]
    if cfg.model:
        argv += ["--model", cfg.model]
    env = {
        "CLAUDE_CONFIG_DIR": str(home),
        "ANTHROPIC_API_KEY": os.environ.get("ANTHROPIC_API_KEY", "none"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if cfg.api_base:
        env["ANTHROPIC_BASE_URL"] = cfg.api_base.rstrip("/").removesuffix("/v1")
    return argv, env


def _claude_message(event: dict[str, Any]) -> str | None:
    if event.get("type") != "assistant":
        return None
    texts = [b.get("text", "") for b in (event.get("message") or {}).get("content", []) if b.get("type") == "text"]
    return "\n".join(t for t in texts if t) or None


def _mini(cfg: ExternalAgentConfig, prompt: str, workdir: Path, home: Path) -> tuple[list[str], dict[str, str]]:
    """mini-swe-agent's `mini` in yolo mode, its global config in a private directory, litellm pointed at the
    base URL and kept offline (no cost-map download). Its trajectory JSON is the log."""
    if cfg.allowed_commands or cfg.web_search:
        raise RepogymError("mini-swe-agent cannot restrict commands or search the web: run it in a sandbox instead")
    binary = cfg.binary or shutil.which("mini") or ""
    (home / ".env").write_text("MSWEA_CONFIGURED=true\n")
    argv = [binary, "-m", f"openai/{cfg.model or 'default'}", "-t", prompt, "-y", "-o", str(home / "trajectory.json"),
            "-c", "mini.yaml", "-c", "agent.confirm_exit=false"]  # fmt: skip
    if cfg.api_base:
        argv += ["-c", f"model.model_kwargs.api_base={cfg.api_base}"]
    env = {
        "MSWEA_GLOBAL_CONFIG_DIR": str(home),
        "MSWEA_COST_TRACKING": "ignore_errors",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "none"),
    }
    return argv, env


def _mini_finish(home: Path, log_path: Path) -> tuple[list[str], dict[str, Any]]:
    traj = home / "trajectory.json"
    if not traj.exists():
        return [], {}
    data = json.loads(traj.read_text())
    log_path.write_text(json.dumps(data) + "\n")
    messages = [
        str(m["content"]) for m in data.get("messages", []) if m.get("role") == "assistant" and m.get("content")
    ]
    return messages, dict(data.get("info", {}).get("model_stats", {}))


def _no_finish(home: Path, log_path: Path) -> tuple[list[str], dict[str, Any]]:
    return [], {}


# name -> (command builder, message in a streamed JSON event, reader of a log written at the end)
AGENTS: dict[
    str, tuple[Any, Callable[[dict[str, Any]], str | None], Callable[[Path, Path], tuple[list[str], dict[str, Any]]]]
] = {
    "codex": (_codex, _codex_message, _no_finish),
    "claude": (_claude, _claude_message, _no_finish),
    "mini-swe-agent": (_mini, lambda _e: None, _mini_finish),
}


def check_installed(cfg: ExternalAgentConfig) -> None:
    """Fail early, before any task runs, when the agent's executable is missing."""
    if cfg.agent not in AGENTS:
        raise RepogymError(f"unknown agent {cfg.agent!r}; choose one of: {', '.join(AGENTS)}")
    default = {"codex": "codex", "claude": "claude", "mini-swe-agent": "mini"}[cfg.agent]
    binary = cfg.binary or shutil.which(default)
    if not binary or not Path(binary).exists():
        raise RepogymError(f"{cfg.agent} is not installed: {INSTALL[cfg.agent]}")


def external_agent(
    agent: str, model: str | None = None, api_base: str | None = None, binary: str | None = None, **more: Any
) -> ExternalAgentConfig:
    """An external agent's config from the flags every command shares (the model's provider prefix stripped),
    checked to be installed, so that a missing agent fails before any task runs."""
    cfg = ExternalAgentConfig(
        agent=agent, model=model.split("/", 1)[-1] if model else None, api_base=api_base, binary=binary, **more
    )
    check_installed(cfg)
    return cfg


def run_external(
    cfg: ExternalAgentConfig, prompt: str, workdir: Path, log_path: Path, on_message: Callable[[str], None]
) -> AgentRun:
    """Run the agent to completion (or its timeout), streaming its JSON log to ``log_path``."""
    if cfg.agent not in AGENTS:
        raise RepogymError(f"unknown agent {cfg.agent!r}; choose one of: {', '.join(AGENTS)}")
    build, message_of, finish = AGENTS[cfg.agent]
    home = Path(tempfile.mkdtemp(prefix=f"repogym-{cfg.agent}-home-"))
    try:
        argv, env = build(cfg, prompt, workdir, home)
        if not argv[0] or not Path(argv[0]).exists():
            raise RepogymError(f"{cfg.agent} is not installed: {INSTALL[cfg.agent]}")
        run = _stream(argv, {**os.environ, **env}, workdir, cfg.timeout_s, log_path, message_of, on_message)
        messages, usage = finish(home, log_path)
        for m in messages:
            on_message(m)
        return run.model_copy(update={"messages": run.messages + messages, "usage": usage or run.usage})
    finally:
        shutil.rmtree(home, ignore_errors=True)


MAX_LOG_BYTES = 256_000_000  # an agent's JSON event log; past it the agent is stopped
STDERR_BYTES = 100_000


def _stream(
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    timeout_s: float,
    log_path: Path,
    message_of: Callable[[dict[str, Any]], str | None],
    on_message: Callable[[str], None],
) -> AgentRun:
    """Run the agent through ``run_bounded`` with its stdout going straight to the log, which is followed while
    it grows. A timeout, a log past its cap, or any exception here (a callback that raises, an interrupt) kills
    the agent's whole process group (``run_bounded`` does it in its own ``except``, before re-raising)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    follower = _LogFollower(log_path, message_of, on_message)
    # The shell sends the agent's output to the log and, once the agent exits, stops whatever it left running in
    # its process group (the shell itself ignores that TERM and passes the agent's exit status on).
    script = '"$@" >"$0"; code=$?; trap "" TERM; kill -TERM 0; exit $code'
    to_log = ["/bin/sh", "-c", script, str(log_path), *argv]
    res = run_bounded(to_log, cwd=workdir, env=env, timeout_s=timeout_s, max_output_bytes=STDERR_BYTES, watch=follower)
    follower.read(final=True)
    return AgentRun(
        exit_code=res.exit_code,
        timed_out=res.timed_out,
        seconds=round(res.seconds, 3),
        log_path=str(log_path),
        messages=follower.messages,
        usage=follower.usage,
        limit=res.limit,
        stderr=res.stderr[-2000:],
    )


class _LogFollower:
    """Reads the agent's JSON event log as it grows (polled by ``run_bounded``): each complete line's assistant
    message goes to ``on_message`` at once; returns a reason when the log passes MAX_LOG_BYTES."""

    def __init__(
        self, path: Path, message_of: Callable[[dict[str, Any]], str | None], on_message: Callable[[str], None]
    ) -> None:
        self.path, self.message_of, self.on_message = path, message_of, on_message
        self.pos, self.partial = 0, b""
        self.messages: list[str] = []
        self.usage: dict[str, Any] = {}

    def __call__(self) -> str:
        self.read()
        return f"log limit ({MAX_LOG_BYTES} bytes) passed: {self.path}" if self.pos > MAX_LOG_BYTES else ""

    def read(self, final: bool = False) -> None:
        """Handle the lines written since the last read (and, at the end, a last line without a newline)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.pos)
                data = f.read(MAX_LOG_BYTES + 1 - min(self.pos, MAX_LOG_BYTES))
        except FileNotFoundError:  # the shell has not made it yet
            return
        self.pos += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in [*lines, self.partial] if final else lines:
            self._event(line)

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            self.usage = event.get("usage") or self.usage
            text = self.message_of(event)
            if text:
                self.messages.append(text)
                self.on_message(text)


def external_trajectory(cfg: ExternalAgentConfig, prompt: str, workdir: Path, log_path: Path) -> Trajectory:
    """Run an external agent and describe the run as a trajectory; an agent that cannot run is an
    infrastructure failure, recorded, not raised."""
    try:
        run = run_external(cfg, prompt, workdir, log_path, lambda _m: None)
    except Exception as e:
        return Trajectory(messages=[], stop_reason="infrastructure_error", error=f"{type(e).__name__}: {e}")
    reason = "max_seconds" if run.timed_out else ("submitted" if run.exit_code == 0 else "agent_error")
    messages = [{"role": "user", "content": prompt}] + [{"role": "assistant", "content": m} for m in run.messages]
    return Trajectory(
        messages=messages,
        stop_reason=reason,
        turns=len(run.messages),
        usage=run.usage,
        seconds=run.seconds,
        error=None if run.exit_code == 0 else _failure(cfg.agent, run),
    )


def _failure(agent: str, run: AgentRun) -> str:
    """Why the agent's run failed, with the end of its stderr (the agent's own error message)."""
    why = f"{agent} exited with {run.exit_code}" + (f" ({run.limit})" if run.limit else "")
    tail = run.stderr.strip()[-500:]
    return f"{why}; log: {run.log_path}" + (f"; stderr: {tail}" if tail else "")
