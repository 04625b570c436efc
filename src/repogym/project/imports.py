"""Imports of a project's tests: those that may need a distribution (the last resort of dependency discovery),
and which test modules import which (a change to one can break the other's collection).

The names are checked against the built environment (see environment.py); what does not resolve is installed
under its distribution name (``yaml`` -> PyYAML).
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from pathlib import Path

from repogym.project.pytest_config import is_test_path

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


def importers(repo_dir: Path, modules: list[str]) -> list[str]:
    """The test modules of ``repo_dir`` that import one of ``modules`` (files, relative to it), however they name
    it: absolute from the root or from a folder on the path (a dotted suffix), or relative."""
    wanted = {m.removesuffix(".py").replace("/", ".") for m in modules}
    out = []
    for rel in _test_modules(repo_dir):
        if rel in modules:
            continue
        try:
            text = (repo_dir / rel).read_text(errors="replace")
        except OSError:
            continue
        package = rel.removesuffix(".py").replace("/", ".").rsplit(".", 1)[0] if "/" in rel else ""
        if any(_names(w, name) for name in _modules_of(text, package) for w in wanted):
            out.append(rel)
    return out


@functools.lru_cache(maxsize=4096)
def _modules_of(text: str, package: str) -> frozenset[str]:
    """``_modules_named`` of a module's source, remembered: validation asks for every test module of the same
    working copy with each candidate, and parsing them all cost a candidate 0.1 s on cachetools."""
    try:
        return frozenset(_modules_named(ast.parse(text), package))
    except (SyntaxError, ValueError):
        return frozenset()


def _test_modules(repo_dir: Path) -> list[str]:
    """The test modules of ``repo_dir``, outside hidden folders (``.git``, ``.venv``, which are not walked)."""
    found = []
    for root, dirs, files in os.walk(repo_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        at = Path(root).relative_to(repo_dir)
        found += [(at / f).as_posix() for f in files if f.endswith(".py") and not f.startswith(".")]
    return sorted(rel for rel in found if is_test_path(rel))


def _names(module: str, name: str) -> bool:
    return module == name or module.endswith("." + name)


def _modules_named(tree: ast.Module, package: str) -> set[str]:
    """Every module an import statement could mean (``from a import b``: ``a`` and ``a.b``), relative ones
    resolved against ``package``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base:
                out.add(base)
            out |= {f"{base}.{a.name}" if base else a.name for a in node.names}
    return out
