"""`repogym serve`: start one inference server (vLLM, SGLang or llama.cpp) the documented way, and check it.

The runbook's rule is exactly one server per engine on a machine: starting a second is refused. The server runs
in the background with its log in a file; repogym waits until /v1/models answers, then runs the doctor checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from repogym.errors import RepogymError, SandboxError
from repogym.repo import cache_dir
from repogym.sandbox.base import run_bounded


@dataclass(frozen=True)
class Engine:
    name: str
    module: str  # importable module that proves the engine is installed
    package: str  # what to pip install
    marker: str  # substring of a running server's command line


ENGINES = {
    "vllm": Engine("vllm", "vllm", "vllm", "vllm serve"),
    "sglang": Engine("sglang", "sglang", "sglang[all]", "sglang.launch_server"),
    "llama-cpp": Engine("llama-cpp", "llama_cpp.server", "llama-cpp-python[server]", "llama_cpp.server"),
}


class ServeConfig(BaseModel):
    engine: str
    model: str
    served_model_name: str
    port: int = 8000
    host: str = "127.0.0.1"
    tool_call_parser: str | None = None
    gpu: str | None = None
    python: str = sys.executable
    n_ctx: int = 4096
    threads: int | None = None


class Running(BaseModel):
    engine: str
    pid: int
    port: int | None
    model: str
    log: str | None = None


def command(cfg: ServeConfig) -> list[str]:
    """The engine's documented command line."""
    if cfg.engine == "vllm":
        argv = ["vllm", "serve", cfg.model, "--host", cfg.host, "--port", str(cfg.port)]
        argv += ["--served-model-name", cfg.served_model_name]
        if cfg.tool_call_parser:
            argv += ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_call_parser]
        return [*argv, "--enable-prefix-caching"]
    if cfg.engine == "sglang":
        argv = [cfg.python, "-m", "sglang.launch_server", "--model-path", cfg.model, "--host", cfg.host]
        argv += ["--port", str(cfg.port), "--served-model-name", cfg.served_model_name]
        return argv + (["--tool-call-parser", cfg.tool_call_parser] if cfg.tool_call_parser else [])
    if cfg.engine == "llama-cpp":
        argv = [cfg.python, "-m", "llama_cpp.server", "--model", cfg.model, "--model_alias", cfg.served_model_name]
        argv += ["--chat_format", cfg.tool_call_parser or "chatml-function-calling"]
        argv += ["--host", cfg.host, "--port", str(cfg.port), "--n_ctx", str(cfg.n_ctx)]
        return argv + ["--n_threads", str(cfg.threads or os.cpu_count() or 1)]
    raise RepogymError(f"unknown engine {cfg.engine!r}; choose one of: {', '.join(ENGINES)}")


def check_installed(cfg: ServeConfig) -> None:
    engine = ENGINES[cfg.engine]
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({engine.module!r}) is None)"
    try:
        found = run_bounded([cfg.python, "-c", probe], cwd=None, env=None, timeout_s=60, max_output_bytes=10_000).ok
    except SandboxError:  # the interpreter cannot start
        found = False
    if not found:
        raise RepogymError(
            f"{engine.name} is not installed for {cfg.python}: pip install '{engine.package}' "
            "(or point --python at the interpreter that has it)"
        )


def running_servers() -> list[Running]:
    """Inference servers of any engine running on this machine, from the process table."""
    found: list[Running] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        for engine in ENGINES.values():
            if engine.marker in line and "repogym" not in line.split(engine.marker)[0]:
                found.append(Running(engine=engine.name, pid=int(proc.name), port=_port(argv), model=_model(argv)))
    logs = {r.pid: r.log for r in _state()}
    return [r.model_copy(update={"log": logs.get(r.pid)}) for r in found]


def _port(argv: list[bytes]) -> int | None:
    args = [a.decode(errors="replace") for a in argv]
    for i, a in enumerate(args[:-1]):
        if a == "--port":
            return int(args[i + 1]) if args[i + 1].isdigit() else None
    return None


def _model(argv: list[bytes]) -> str:
    args = [a.decode(errors="replace") for a in argv]
    for flag in ("--served-model-name", "--model_alias"):
        if flag in args[:-1]:
            return args[args.index(flag) + 1]
    return ""


def _state() -> list[Running]:
    folder = cache_dir() / "servers"
    out = []
    for f in sorted(folder.glob("*.json")) if folder.exists() else []:
        out.append(Running.model_validate_json(f.read_text()))
    return out


def start(cfg: ServeConfig, wait_s: float = 900.0) -> Running:
    """Start the server in the background and wait until /v1/models answers; returns what runs."""
    cmd = command(cfg)
    same = [r for r in running_servers() if r.engine == cfg.engine]
    if same:
        r = same[0]
        raise RepogymError(
            f"a {cfg.engine} server already runs here (pid {r.pid}, port {r.port}): one per engine per machine; "
            f"stop it with `repogym serve stop {r.pid}` or use it"
        )
    check_installed(cfg)
    log = cache_dir() / "servers" / f"{cfg.engine}-{cfg.port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if cfg.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = cfg.gpu
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    info = Running(engine=cfg.engine, pid=proc.pid, port=cfg.port, model=cfg.served_model_name, log=str(log))
    (log.parent / f"{cfg.engine}-{cfg.port}.json").write_text(info.model_dump_json())
    url = f"http://{cfg.host}:{cfg.port}/v1/models"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RepogymError(f"the {cfg.engine} server exited with status {proc.returncode}: {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                json.load(resp)
            return info
        except OSError:
            time.sleep(1)
    stop(proc.pid)
    raise RepogymError(f"the {cfg.engine} server did not answer {url} within {wait_s:.0f}s; see {log}")


def stop(pid: int) -> None:
    """Stop a server (its whole process group) and forget it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as e:
        raise RepogymError(f"cannot stop pid {pid}: {e}") from e
    for f in (cache_dir() / "servers").glob("*.json"):
        if Running.model_validate_json(f.read_text()).pid == pid:
            f.unlink()
