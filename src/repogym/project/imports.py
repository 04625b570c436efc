"""Imports of a project's tests that may need a distribution: the last resort of dependency discovery.

The names are checked against the built environment (see environment.py); what does not resolve is installed
under its distribution name (``yaml`` -> PyYAML).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Import names whose distribution is called something else (pip normalizes case, '-' and '_' itself).
IMPORT_TO_DIST = {
    "yaml": "PyYAML",
    "dateutil": "python-dateutil",
    "PIL": "Pillow",
    "bs4": "beautifulsoup4",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "attr": "attrs",
    "jwt": "PyJWT",
    "OpenSSL": "pyOpenSSL",
    "Crypto": "pycryptodome",
    "serial": "pyserial",
    "dotenv": "python-dotenv",
    "docx": "python-docx",
    "git": "GitPython",
    "jose": "python-jose",
    "zmq": "pyzmq",
    "usb": "pyusb",
    "socks": "PySocks",
    "magic": "python-magic",
    "pkg_resources": "setuptools",
    "_pytest": "pytest",
    "google.protobuf": "protobuf",
    "Levenshtein": "python-Levenshtein",
    "slugify": "python-slugify",
    "markdown": "Markdown",
    "multipart": "python-multipart",
    "xdist": "pytest-xdist",
    "pytest_cov": "pytest-cov",
    "pytest_mock": "pytest-mock",
    "pytest_asyncio": "pytest-asyncio",
    "pytest_benchmark": "pytest-benchmark",
    "pytest_codspeed": "pytest-codspeed",
    "pytest_timeout": "pytest-timeout",
    "pytest_httpserver": "pytest-httpserver",
    "pytest_lazyfixture": "pytest-lazy-fixture",
    "pytest_localserver": "pytest-localserver",
    "pytest_subtests": "pytest-subtests",
    "pytest_django": "pytest-django",
    "pytest_randomly": "pytest-randomly",
    "pytest_rerunfailures": "pytest-rerunfailures",
    "pytest_doctestplus": "pytest-doctestplus",
}


def distribution(name: str) -> str:
    """The distribution that provides import name ``name`` (its own name when unknown)."""
    return IMPORT_TO_DIST.get(name, name.replace("_", "-"))


def test_imports(repo_dir: Path, files: list[str]) -> list[str]:
    """Top-level names that ``files`` import and that are neither the standard library nor the project's own
    modules (any module or package name found in the repository)."""
    local = local_names(repo_dir)
    names: set[str] = set()
    for rel in files:
        try:
            tree = ast.parse((repo_dir / rel).read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        names |= _imported(tree)
    return sorted(n for n in names if n not in sys.stdlib_module_names and n not in local)


def _imported(tree: ast.Module) -> set[str]:
    """Absolute imports and the names of ``pytest_plugins``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
        ):
            out |= {
                c.value.split(".")[0]
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return out


def local_names(repo_dir: Path) -> set[str]:
    names: set[str] = set()
    for p in repo_dir.rglob("*"):
        rel = p.relative_to(repo_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_dir() or p.suffix in (".py", ".pyi", ".so", ".pyx"):
            names.add(p.name.split(".")[0])
    return names
