"""The tests a tests.diff adds, as pytest node ids: what check 2 has to run to show that they fail.

A tests.diff made by validation puts back the test functions (or whole modules) that src.diff removed. When that
is all it does to a file, every other test of the file behaves in the task state + tests.diff as in the task
state, where check 1 ran it; only the added ones need a run. Anything else (a changed line, a new helper or
fixture, which may change what other tests see) runs the whole files, as before.
"""

from __future__ import annotations

import ast

Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def added_tests(before: dict[str, str | None], after: dict[str, str | None]) -> list[str] | None:
    """Node ids of the tests that turn each file's ``before`` text (None: no such file) into ``after``, when
    adding them is all that changed; a file that is new is all added (its path). None otherwise."""
    out: list[str] = []
    for rel, old in before.items():
        new = after.get(rel)
        if new is None:
            return None
        if old is None:
            out.append(rel)
            continue
        try:
            new_tree = ast.parse(new)
            old_body = ast.parse(old).body
        except (SyntaxError, ValueError):
            return None
        mine: list[str] = []
        if not _only_added(old_body, new_tree.body, rel, mine) or _inherited(new_tree, mine):
            return None
        out += mine
    return out


def _inherited(tree: ast.Module, ids: list[str]) -> bool:
    """Whether a class of the module names, as a base, a class that gained tests: its subclasses run them too."""
    gained = {part for node_id in ids for part in node_id.split("::")[1:-1]}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
                if name in gained:
                    return True
    return False


def _only_added(old: list[ast.stmt], new: list[ast.stmt], prefix: str, out: list[str]) -> bool:
    """Whether ``new`` is ``old`` plus test functions and classes (their ids go to ``out``), at any class depth."""
    had = {s.name for s in old if isinstance(s, Def)}
    kept = []
    for stmt in new:
        if isinstance(stmt, Def) and stmt.name not in had:
            if not _is_test(stmt):
                return False
            out.append(f"{prefix}::{stmt.name}")
        else:
            kept.append(stmt)
    if len(kept) != len(old):
        return False
    for a, b in zip(old, kept, strict=True):
        if isinstance(a, ast.ClassDef) and isinstance(b, ast.ClassDef) and a.name == b.name:
            if _header(a) != _header(b) or not _only_added(a.body, b.body, f"{prefix}::{a.name}", out):
                return False
        elif ast.dump(a) != ast.dump(b):
            return False
    return True


def _is_test(stmt: Def) -> bool:
    """A test function or class by pytest's default names, and not a fixture (which can change other tests)."""
    if isinstance(stmt, ast.ClassDef):
        return stmt.name.startswith("Test")
    fixture = any("fixture" in ast.dump(d) for d in stmt.decorator_list)
    return stmt.name.startswith("test") and not fixture


def _header(cls: ast.ClassDef) -> list[str]:
    """A class statement without its body: bases, keywords, decorators."""
    return [ast.dump(node) for node in (*cls.bases, *cls.keywords, *cls.decorator_list)]
