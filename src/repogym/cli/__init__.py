"""The `repogym` command: thin wrappers that build configs and call one library function each."""

from __future__ import annotations

import importlib
import sys

from repogym.cli.common import app, err
from repogym.errors import RepogymError

# Importing a module registers its commands; this order is the order `repogym --help` lists them in.
for _module in ("pipeline", "patch", "env", "serving", "evaluate", "export", "view", "rl"):
    importlib.import_module(f"repogym.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: user errors become one line on stderr and their exit status."""
    try:
        app()
    except RepogymError as e:
        err.print(f"error: {e}", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        sys.exit(130)
