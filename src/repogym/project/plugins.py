"""Which pytest plugins an environment itself installed, so that only those load in its runs.

A working copy can register a plugin of its own (a ``*.dist-info/entry_points.txt`` on the path pytest runs
from), and pytest autoloads every registered plugin. Every run of a built environment therefore turns
autoloading off and names the environment's own plugins with ``-p``: what the agent plants never loads, and the
checks, the base run and the grade run the same plugins.
"""

from __future__ import annotations

import json

from repogym.sandbox import Sandbox

# Listed by the environment's own interpreter, isolated (-I) and from /tmp: the working copy is not on its path.
# Entry-point names, which `-p` loads through the entry point: a project's own `-p pytest_cov` in addopts then
# names the same plugin, instead of registering its module a second time (pytest refuses that).
_LIST = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({e.name for e in m.entry_points(group='pytest11')})))"
)

# Hypothesis draws new examples each run, so a property-based test that fails for rare inputs fails in some runs
# only: at the base (a known failure one run, a PASS_TO_PASS test the next), or with the gold patch. With a fixed
# seed every run draws the same examples, and the base run, the checks and every grade see the same test.
HYPOTHESIS = "hypothesispytest"
HYPOTHESIS_SEED = "--hypothesis-seed=0"


def autoload_off_env(sandbox: Sandbox) -> tuple[dict[str, str], str]:
    """(the test environment variables, a note for env.json). When a plugin is an attribute of a module
    (``module:object``), which ``-p`` cannot name in every pytest, autoloading stays on and the note says so."""
    r = sandbox.exec(["python3", "-I", "-c", _LIST], cwd=sandbox.tmp_inside, timeout_s=120)
    try:
        values: list[str] = json.loads(r.stdout.strip().splitlines()[-1]) if r.ok else []
    except (json.JSONDecodeError, IndexError):
        return {}, "pytest plugins could not be listed; plugin autoloading stays on"
    odd = [v for v in values if ":" in v]
    if odd:
        return {}, f"pytest plugin {odd[0]} is not a module; plugin autoloading stays on"
    opts = [f"-p {v}" for v in values] + ([HYPOTHESIS_SEED] if HYPOTHESIS in values else [])
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": " ".join(opts)}
    seeded = f"; property-based tests draw with a fixed seed ({HYPOTHESIS_SEED})" if HYPOTHESIS in values else ""
    return env, f"pytest plugin autoloading off; the environment's own plugins: {', '.join(values) or 'none'}{seeded}"
