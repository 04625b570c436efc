"""SEARCH/REPLACE patches, the Aider-style edit format that LLMs write.

    ### path/to/file.py
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

Parsing is tolerant (prose and code fences between blocks, a bare file name line, several blocks per file);
rendering is strict. Applying replaces the first occurrence, block by block, and touches no file unless every
block applies.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from repogym.errors import PatchError

SEARCH = "<<<<<<< SEARCH"
DIVIDER = "======="
REPLACE = ">>>>>>> REPLACE"
_SEARCH_RE = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER_RE = re.compile(r"^\s*={5,9}\s*$")
_REPLACE_RE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
_HEADER_RE = re.compile(r"^#{2,4}\s+(\S.*?)\s*$")
_FENCE_RE = re.compile(r"^\s*```")


@dataclass(frozen=True)
class Block:
    """One edit: replace the first occurrence of ``search`` in ``path`` with ``replace`` (whole lines)."""

    path: str
    search: str
    replace: str


@dataclass
class ApplyResult:
    """What applying a patch did (or would do, in a dry run)."""

    before: dict[str, str | None] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    fallbacks: list[tuple[int, str]] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return [p for p in self.after if self.after[p] != self.before.get(p)]


def parse(text: str) -> list[Block]:
    """Parse every block in ``text``; raises PatchError naming the block that is malformed."""
    lines = text.splitlines(keepends=True)
    blocks: list[Block] = []
    candidate: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if _SEARCH_RE.match(line):
            n = len(blocks) + 1
            path = candidate or (blocks[-1].path if blocks else None)
            if not path:
                raise PatchError(f"block {n}: no file name before '{SEARCH}' (put '### path/to/file' above it)")
            search, replace, i = _read_block(lines, i + 1, n, path)
            blocks.append(Block(path, search, replace))
            candidate = None
            continue
        candidate = _file_name(line) or candidate
        i += 1
    return blocks


def _read_block(lines: list[str], i: int, n: int, path: str) -> tuple[str, str, int]:
    search: list[str] = []
    while i < len(lines) and not _DIVIDER_RE.match(lines[i]):
        if _REPLACE_RE.match(lines[i]) or _SEARCH_RE.match(lines[i]):
            raise PatchError(f"block {n} ({path}): missing '{DIVIDER}' between SEARCH and REPLACE")
        search.append(_with_newline(lines[i]))
        i += 1
    if i == len(lines):
        raise PatchError(f"block {n} ({path}): missing '{DIVIDER}' between SEARCH and REPLACE")
    i += 1
    replace: list[str] = []
    while i < len(lines) and not _REPLACE_RE.match(lines[i]):
        if _SEARCH_RE.match(lines[i]):
            break
        replace.append(_with_newline(lines[i]))
        i += 1
    if i == len(lines) or not _REPLACE_RE.match(lines[i]):
        raise PatchError(f"block {n} ({path}): missing '{REPLACE}' at the end of the block")
    return "".join(search), "".join(replace), i + 1


def _with_newline(line: str) -> str:
    return line if line.endswith("\n") else line + "\n"


def _file_name(line: str) -> str | None:
    """A line that names a file: '### path', or a bare path such as Aider writes above a fence."""
    text = line.strip()
    m = _HEADER_RE.match(text)
    if m:
        text = m.group(1).strip("`*")
    elif _FENCE_RE.match(text) or not text:
        return None
    text = text.rstrip(":").strip("`")
    if " " in text or not re.search(r"[./]", text) or text.endswith("."):
        return None
    return text


def render(blocks: list[Block]) -> str:
    """Render blocks in the strict form: a '### path' header each, a blank line between blocks."""
    return "\n".join(f"### {b.path}\n{SEARCH}\n{b.search}{DIVIDER}\n{b.replace}{REPLACE}\n" for b in blocks)


def inverse(blocks: list[Block]) -> list[Block]:
    """The patch that undoes ``blocks`` (when each REPLACE text is unique where it lands)."""
    return [Block(b.path, b.replace, b.search) for b in reversed(blocks)]


def apply(blocks: list[Block], root: Path, dry_run: bool = False) -> ApplyResult:
    """Apply blocks in order under ``root``. Nothing is written unless every block applies (and not dry_run)."""
    result = ApplyResult()
    for n, block in enumerate(blocks, 1):
        _check_path(block, n)
        if block.path not in result.after:
            f = root / block.path
            result.before[block.path] = f.read_text() if f.is_file() else None
            result.after[block.path] = result.before[block.path] or ""
            if result.before[block.path] is None and block.search:
                raise PatchError(f"block {n} ({block.path}): the file does not exist")
        new, how = _apply_one(result.after[block.path], block, n)
        result.after[block.path] = new
        if how != "exact":
            result.fallbacks.append((n, how))
    if not dry_run:
        for path in result.files:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(result.after[path])
    return result


def _check_path(block: Block, n: int) -> None:
    p = PurePosixPath(block.path)
    if p.is_absolute() or ".." in p.parts:
        raise PatchError(f"block {n} ({block.path}): the path must be relative and inside the repository")


def _apply_one(content: str, block: Block, n: int) -> tuple[str, str]:
    if not block.search:
        if content:
            raise PatchError(f"block {n} ({block.path}): empty SEARCH, but the file exists and is not empty")
        return block.replace, "exact"
    at = content.find(block.search)
    if at >= 0:
        return content[:at] + block.replace + content[at + len(block.search) :], "exact"
    lines = content.splitlines(keepends=True)
    search = block.search.splitlines(keepends=True)
    for how, key in (("trailing whitespace", str.rstrip), ("indentation", str.strip)):
        start = _find_lines(lines, search, key)
        if start is not None:
            replace = block.replace
            if how == "indentation":
                replace = _reindent(replace, search, lines[start : start + len(search)])
            return "".join(lines[:start]) + replace + "".join(lines[start + len(search) :]), how
    raise PatchError(f"block {n} ({block.path}): SEARCH text not found; {_first_mismatch(lines, search)}")


def _find_lines(lines: list[str], search: list[str], key: object) -> int | None:
    norm = [key(s) for s in search]  # type: ignore[operator]
    for start in range(len(lines) - len(search) + 1):
        if all(key(lines[start + j]) == norm[j] for j in range(len(search))):  # type: ignore[operator]
            return start
    return None


def _reindent(replace: str, search: list[str], found: list[str]) -> str:
    """Shift REPLACE by the indentation difference between the SEARCH text and where it was found."""
    pairs = [(s, f) for s, f in zip(search, found, strict=True) if s.strip()]
    if not pairs:
        return replace
    s_ind = pairs[0][0][: len(pairs[0][0]) - len(pairs[0][0].lstrip())]
    f_ind = pairs[0][1][: len(pairs[0][1]) - len(pairs[0][1].lstrip())]
    out = []
    for line in replace.splitlines(keepends=True):
        if line.startswith(s_ind) and line.strip():
            line = f_ind + line[len(s_ind) :]
        elif line.strip() and len(f_ind) > len(s_ind):
            line = f_ind[: len(f_ind) - len(s_ind)] + line
        out.append(line)
    return "".join(out)


def _first_mismatch(lines: list[str], search: list[str]) -> str:
    """Name the first SEARCH line that did not match, after the longest prefix found anywhere in the file."""
    stripped = [line.strip() for line in lines]
    best = 0
    for start in range(len(lines)):
        k = 0
        while k < len(search) and start + k < len(lines) and stripped[start + k] == search[k].strip():
            k += 1
        best = max(best, k)
    if best >= len(search):
        best = len(search) - 1
    where = f"after {best} matching line{'s' if best != 1 else ''}" if best else "no line matched"
    return f"first line that did not match ({where}): {search[best].rstrip()!r}"


def block_for_edit(path: str, content: str, start: int, end: int, new_lines: list[str]) -> Block:
    """A block replacing lines [start, end) of ``content`` with ``new_lines``, with just enough context to be
    unique in the file (first-occurrence semantics then hit the intended place)."""
    lines = content.splitlines(keepends=True)
    lo, hi = start, end
    while True:
        search = "".join(lines[lo:hi])
        if search and content.count(search) == 1 and content.find(search) == len("".join(lines[:lo])):
            break
        if lo == 0 and hi == len(lines):
            break
        lo, hi = max(0, lo - 1), min(len(lines), hi + 1)
    replace = "".join(lines[lo:start]) + "".join(new_lines) + "".join(lines[end:hi])
    return Block(path, "".join(lines[lo:hi]), replace)


def unified_diff(result: ApplyResult) -> str:
    """The git-style unified diff of an applied patch (``git apply`` accepts it)."""
    out: list[str] = []
    for path in result.files:
        old, new = result.before.get(path), result.after[path]
        out.append(f"diff --git a/{path} b/{path}\n")
        if old is None:
            out.append("new file mode 100644\n")
        a = old.splitlines(keepends=True) if old else []
        b = new.splitlines(keepends=True)
        for line in difflib.unified_diff(a, b, "/dev/null" if old is None else f"a/{path}", f"b/{path}", n=3):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
