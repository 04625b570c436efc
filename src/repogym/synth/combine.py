"""The `combine` strategy: harder tasks made of 2-4 validated single-change candidates of one package, whose fix
needs every change undone (validation then finds the union of the members' failing tests)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path, PurePosixPath

from repogym.errors import PatchError
from repogym.patches import Block, apply, parse, render
from repogym.records import TaskRecord, task_id
from repogym.repo import RepoSource
from repogym.synth.procedural import template_description

# Changes this close (in lines of one file) may share the context of their SEARCH blocks: never combined.
NEAR = 3
# Draws in a row that give nothing new before reusing singles stops (the space of reuses can be huge).
MAX_MISSES = 100


@dataclass(frozen=True)
class _Single:
    """A single-change candidate with its parsed blocks and the package (directory) it changes."""

    record: TaskRecord
    blocks: tuple[Block, ...]
    files: tuple[str, ...]

    @property
    def package(self) -> str:
        return PurePosixPath(self.files[0]).parent.as_posix()

    @property
    def first_line(self) -> int:
        return min((n for lines in self.record.lines.values() for n in lines), default=0)


def combine(
    src: RepoSource,
    wc: Path,
    singles: list[TaskRecord],
    *,
    num_candidates: int,
    seed: int,
    first_index: int,
    avoid: set[str] | frozenset[str] = frozenset(),
    max_changes: int = 4,
) -> list[TaskRecord]:
    """Up to num_candidates combined candidates from validated single-change candidates `singles`, in working
    copy `wc` at the base commit (left at the base: patches are only tried in a dry run).

    Each single joins at most one combination until no package has two unused singles left; then singles are
    reused, but never the same member set twice. Deterministic for a given seed and order of `singles`."""
    if max_changes < 2:
        raise ValueError(f"max_changes must be at least 2, not {max_changes}")
    rng = random.Random(seed)
    groups = _groups(singles)
    fresh = {pkg: list(members) for pkg, members in groups.items()}
    seen: set[frozenset[str]] = set()
    out: list[TaskRecord] = []
    misses = 0
    while len(out) < num_candidates and misses < MAX_MISSES:
        reuse = not any(len(pool) >= 2 for pool in fresh.values())
        members = _draw(groups if reuse else fresh, rng, max_changes)
        if not members:
            break
        if not reuse:
            _use(fresh, members)
        ids = frozenset(m.record.task_id for m in members)
        if len(members) >= 2 and ids not in seen:
            seen.add(ids)
            blocks = None if _subject(members) in avoid else _combined_blocks(members, wc)
            if blocks:
                out.append(_record(src, members, blocks, first_index + len(out)))
                misses = 0
                continue
        misses += reuse
    return out


def _groups(singles: list[TaskRecord]) -> dict[str, list[_Single]]:
    """Combinable singles by package, in the order given."""
    groups: dict[str, list[_Single]] = defaultdict(list)
    for record in singles:
        single = _single(record)
        if single is not None:
            groups[single.package].append(single)
    return dict(groups)


def _single(record: TaskRecord) -> _Single | None:
    """The single with its blocks, or None when it cannot be combined: not one change, no symbols or lines to
    tell the members apart, a patch that does not parse, or files in more than one directory."""
    if record.changes != 1 or not record.changed_symbols or not record.lines:
        return None
    try:
        blocks = tuple(parse(record.patches))
    except PatchError:
        return None
    files = tuple(sorted({b.path for b in blocks}))
    if not files or len({PurePosixPath(f).parent for f in files}) != 1:
        return None
    return _Single(record, blocks, files)


def _draw(pools: dict[str, list[_Single]], rng: random.Random, max_changes: int) -> list[_Single]:
    """Pairwise compatible members from one package of at least two singles ([] when there is none), in file
    and line order so that the same members always make the same subject."""
    packages = sorted(pkg for pkg, pool in pools.items() if len(pool) >= 2)
    if not packages:
        return []
    pool = list(pools[rng.choice(packages)])
    rng.shuffle(pool)
    k = rng.randint(2, min(max_changes, len(pool)))
    picked: list[_Single] = []
    for single in pool:
        if len(picked) < k and all(_compatible(single, p) for p in picked):
            picked.append(single)
    return sorted(picked, key=lambda s: (s.files, s.first_line, s.record.task_id))


def _use(fresh: dict[str, list[_Single]], members: list[_Single]) -> None:
    """Take drawn members out of the unused pool (also when they turn out not to combine: progress)."""
    ids = {m.record.task_id for m in members}
    pkg = members[0].package
    fresh[pkg] = [s for s in fresh[pkg] if s.record.task_id not in ids]


def _compatible(a: _Single, b: _Single) -> bool:
    """Different functions (a name is one function per file), changes far enough apart to apply together."""
    shared = set(a.files) & set(b.files)
    if shared and set(a.record.changed_symbols) & set(b.record.changed_symbols):
        return False
    return all(_apart(a.record.lines.get(f, []), b.record.lines.get(f, [])) for f in shared)


def _apart(xs: list[int], ys: list[int]) -> bool:
    return all(abs(x - y) > NEAR for x in xs for y in ys)


def _combined_blocks(members: list[_Single], wc: Path) -> list[Block] | None:
    """Every member's blocks, bottom-up in each file, or None when they do not apply together. Applied top-down,
    a change could create an earlier copy of a later block's SEARCH text, and first-occurrence semantics would
    then put that block in the wrong place; bottom-up, the text above each block is still the base's."""
    placed = _placed(members, wc)
    if placed is None:
        return None
    blocks = [block for *_, block in sorted(placed, key=lambda p: (p[0], -p[1]))]
    try:
        result = apply(blocks, wc, dry_run=True)  # wc stays at the base
    except PatchError:
        return None
    return None if result.fallbacks else blocks


def _placed(members: list[_Single], wc: Path) -> list[tuple[str, int, int, Block]] | None:
    """(file, start, end, block): where each block's SEARCH text is in the base; None when one is missing or
    two overlap (their contexts share lines)."""
    texts: dict[str, str] = {}
    placed: list[tuple[str, int, int, Block]] = []
    for block in (b for m in members for b in m.blocks):
        if block.path not in texts:
            f = wc / block.path
            texts[block.path] = f.read_text() if f.is_file() else ""
        start = texts[block.path].find(block.search) if block.search else -1
        if start < 0:
            return None
        placed.append((block.path, start, start + len(block.search), block))
    ordered = sorted(placed, key=lambda p: (p[0], p[1]))
    if any(a[0] == b[0] and b[1] < a[2] for a, b in pairwise(ordered)):
        return None
    return placed


def _subject(members: list[_Single]) -> str:
    return "combined: " + "; ".join(m.record.subject for m in members)


def _record(src: RepoSource, members: list[_Single], blocks: list[Block], index: int) -> TaskRecord:
    records = [m.record for m in members]
    ids = [r.task_id for r in records]
    return TaskRecord(
        task_id=task_id(src.name, index),
        repo=src.origin,
        commit_sha=src.commit_sha,
        matching_files=sorted({f for r in records for f in r.matching_files}),
        subject=_subject(members),
        task_description=template_description(
            [(name, ", ".join(m.files)) for m in members for name in m.record.changed_symbols]
        ),
        patches=render(blocks),
        reasoning=f"combination of {len(ids)} validated single-change candidates: {', '.join(ids)}",
        strategy="combine",
        changed_symbols=list(dict.fromkeys(name for r in records for name in r.changed_symbols)),
        lines=_union_lines(records),
        covering_tests=None,
        changes=len(members),
        members=ids,
    )


def _union_lines(records: list[TaskRecord]) -> dict[str, list[int]]:
    union: dict[str, set[int]] = defaultdict(set)
    for r in records:
        for path, lines in r.lines.items():
            union[path] |= set(lines)
    return {path: sorted(lines) for path, lines in sorted(union.items())}
