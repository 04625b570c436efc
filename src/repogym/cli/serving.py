"""Model servers: `repogym doctor` checks an endpoint, `repogym serve` starts and stops local ones."""

from __future__ import annotations

import sys

import typer

from repogym.cli.common import API_BASE_OPT, app, console, say

serve_app = typer.Typer(help="Start, list and stop local inference servers (vLLM, SGLang, llama.cpp).")
app.add_typer(serve_app, name="serve")


@app.command("doctor")
def doctor_cmd(
    api_base: str | None = API_BASE_OPT,
    model: str = typer.Option("openai/boa", "--model", help="provider/name of the model to check."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
) -> None:
    """Check that an OpenAI-compatible endpoint is ready: models, chat, tool calls (with latencies)."""
    import asyncio

    from repogym.doctor import doctor
    from repogym.llm import ModelConfig

    cfg = ModelConfig(model=model, api_base=api_base, timeout_s=timeout)
    console.print(f"checking {cfg.base_url()} for model {cfg.name!r}")
    checks = asyncio.run(doctor(cfg))
    for c in checks:
        console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<7} {c.seconds * 1000:7.0f} ms  {c.detail}")
    if len(checks) < 3 or not all(c.ok for c in checks):
        raise typer.Exit(1)


def _serve(
    engine: str,
    model: str,
    name: str,
    port: int,
    host: str,
    parser: str | None,
    gpu: str | None,
    python: str | None,
    wait: float,
) -> None:
    import asyncio

    from repogym import serving
    from repogym.doctor import doctor
    from repogym.llm import ModelConfig

    cfg = serving.ServeConfig(
        engine=engine,
        model=model,
        served_model_name=name,
        port=port,
        host=host,
        tool_call_parser=parser,
        gpu=gpu,
        python=python or sys.executable,
    )
    say("$ " + " ".join(serving.command(cfg)))
    info = serving.start(cfg, wait_s=wait)
    console.print(f"{engine} server pid {info.pid} answers on http://{host}:{port}/v1 (log: {info.log})")
    checks = asyncio.run(doctor(ModelConfig(model=f"openai/{name}", api_base=f"http://{host}:{port}/v1")))
    for c in checks:
        console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<7} {c.seconds * 1000:7.0f} ms  {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


NAME_OPT = typer.Option("boa", "--served-model-name", help="The name clients use (openai/NAME).")
PORT_OPT = typer.Option(8000, "--port", help="Port to listen on.")
HOST_OPT = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 to serve other machines).")
GPU_OPT = typer.Option(None, "--gpu", help="CUDA_VISIBLE_DEVICES for the server, e.g. 0 or 0,1.")
PYTHON_OPT = typer.Option(None, "--python", help="Interpreter that has the engine installed.")
WAIT_OPT = typer.Option(900.0, "--wait", help="Seconds to wait for /v1/models to answer.")


@serve_app.command("vllm")
def serve_vllm(
    model: str = typer.Argument(..., help="Hugging Face id or local path."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    tool_call_parser: str | None = typer.Option("qwen3_xml", "--tool-call-parser", help="vLLM tool-call parser."),
    gpu: str | None = GPU_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """vllm serve MODEL --enable-auto-tool-choice --tool-call-parser X --enable-prefix-caching."""
    _serve("vllm", model, served_model_name, port, host, tool_call_parser, gpu, None, wait)


@serve_app.command("sglang")
def serve_sglang(
    model: str = typer.Argument(..., help="Hugging Face id or local path."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    tool_call_parser: str | None = typer.Option(None, "--tool-call-parser", help="SGLang tool-call parser."),
    gpu: str | None = GPU_OPT,
    python: str | None = PYTHON_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """python -m sglang.launch_server --model-path MODEL --tool-call-parser X."""
    _serve("sglang", model, served_model_name, port, host, tool_call_parser, gpu, python, wait)


@serve_app.command("llama-cpp")
def serve_llama_cpp(
    model: str = typer.Argument(..., help="Path of a GGUF file."),
    served_model_name: str = NAME_OPT,
    port: int = PORT_OPT,
    host: str = HOST_OPT,
    chat_format: str | None = typer.Option(
        "chatml-function-calling", "--tool-call-parser", help="llama.cpp chat format that handles tools."
    ),
    python: str | None = PYTHON_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """python -m llama_cpp.server --model GGUF --chat_format chatml-function-calling (CPU)."""
    _serve("llama-cpp", model, served_model_name, port, host, chat_format, None, python, wait)


@serve_app.command("status")
def serve_status() -> None:
    """List the inference servers running on this machine and their ports."""
    from repogym.serving import running_servers

    servers = running_servers()
    for r in servers:
        console.print(f"{r.engine:<10} pid {r.pid:<8} port {r.port}  model {r.model or '?'}  log {r.log or '-'}")
    if not servers:
        console.print("no inference server runs on this machine")


@serve_app.command("stop")
def serve_stop(pid: int = typer.Argument(..., help="Process id from `repogym serve status`.")) -> None:
    """Stop a server started by `repogym serve`."""
    from repogym.serving import stop

    stop(pid)
    console.print(f"stopped {pid}")
