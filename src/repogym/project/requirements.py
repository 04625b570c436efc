"""Requirement lines as pip reads them: files with -r includes, markers evaluated for the Python in use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement

# A local install of the project itself (`-e .[test]`, `.[dev]`): its extras are what matters.
_SELF = re.compile(r"^(?:-e\s+|--editable[=\s]+)?\.(?:/)?(?:\[([^\]]*)\])?$")


@dataclass
class Found:
    """Dependencies and project extras found in one or more sources, with what was read, in words."""

    deps: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add_dep(self, dep: str) -> None:
        if dep not in self.deps:
            self.deps.append(dep)

    def add_extra(self, extra: str) -> None:
        if extra and extra not in self.extras:
            self.extras.append(extra)

    def merge(self, other: Found) -> None:
        for d in other.deps:
            self.add_dep(d)
        for e in other.extras:
            self.add_extra(e)
        self.notes += [n for n in other.notes if n not in self.notes]
        self.files += [f for f in other.files if f not in self.files]


def applies(line: str) -> str | None:
    """The requirement if it installs on this Python (markers evaluated), else None; also None for what pip
    cannot fetch here (VCS URLs) or cannot parse."""
    if "://" in line or line.startswith(("git+", "hg+", "svn+", "bzr+")):
        return None
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    try:
        if req.marker is not None and not req.marker.evaluate():
            return None
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return None
    return line


def read_line(line: str, found: Found, base: Path, root: Path, seen: set[Path]) -> None:
    """One requirement line: an include, the project itself, an option (ignored) or a requirement."""
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
        return
    m = _SELF.match(line)
    if m:
        for extra in (m.group(1) or "").split(","):
            found.add_extra(extra.strip())
        return
    include = re.match(r"^(?:-r|--requirement)[=\s]*(\S+)$", line)
    if include:
        read_file(base / include.group(1), found, root, seen)
        return
    if line.startswith("-"):
        return  # -c constraints, --index-url, --hash ...: pip's business, not a dependency
    dep = applies(line)
    if dep:
        found.add_dep(dep)


def read_file(path: Path, found: Found, root: Path, seen: set[Path] | None = None) -> None:
    """Every requirement of a requirement file and of the files it includes (each file once)."""
    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen or not path.is_file() or not path.is_relative_to(root.resolve()):
        return
    seen.add(path)
    rel = path.relative_to(root.resolve()).as_posix()
    found.files.append(rel)
    found.notes.append(f"requirement file {rel}")
    text = path.read_text(errors="replace").replace("\\\n", " ")
    for line in text.splitlines():
        read_line(line, found, path.parent, root, seen)
