"""Which functions the test suite executes: one instrumented run, so mutations aim at tested code only.

A profile hook records the (file, first line) of every Python function called while pytest runs (with the
options every run of the suite needs: ignored modules, test file names); it needs no plugin in the project's
environment.
"""

from __future__ import annotations

import json
import shlex

from repogym.environment import EnvSpec
from repogym.sandbox import Sandbox

_PROBE = r"""
import json, os, sys, threading
root = os.getcwd() + os.sep
seen = set()
def hook(frame, event, arg):
    if event == "call":
        code = frame.f_code
        if code.co_filename.startswith(root):
            seen.add((code.co_filename[len(root):], code.co_firstlineno))
sys.setprofile(hook)
threading.setprofile(hook)
import pytest
try:
    code = pytest.main(["-q", "-p", "no:cacheprovider", *json.loads(os.environ["REPOGYM_PYTEST_ARGS"])])
finally:
    sys.setprofile(None)
    with open(os.environ["REPOGYM_COVERAGE"], "w") as f:
        json.dump(sorted(seen), f)
sys.exit(int(code))
"""


def executed_functions(spec: EnvSpec, sandbox: Sandbox, timeout_s: float = 900.0) -> set[tuple[str, int]] | None:
    """(relative path, first line of the def or its decorator) of every function the tests called.

    Returns None when the probe could not run (a non-pytest suite, say): then every function is a target.
    """
    out = f"{sandbox.tmp_inside}/repogym-coverage.json"
    host = sandbox.host_path(out)
    host.unlink(missing_ok=True)
    cmd = f"{spec.setup_command} && " if spec.setup_command else ""
    cmd += "python3 -c " + shlex.quote(_PROBE)
    env = {**spec.test_env, "REPOGYM_COVERAGE": out, "REPOGYM_PYTEST_ARGS": json.dumps(spec.pytest_args)}
    sandbox.exec(cmd, env=env, timeout_s=timeout_s, max_output_bytes=100_000)
    if not host.exists():
        return None
    return {(str(p), int(n)) for p, n in json.loads(host.read_text())}
