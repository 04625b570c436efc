"""The `combine` strategy on a real git repository: two packages, hand-made single-change candidates."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from conftest import make_git_repo

from repogym.patches import Block, apply, block_for_edit, parse, render
from repogym.records import TaskRecord, task_id
from repogym.repo import RepoSource, git, open_repo, temp_working_copy
from repogym.synth.combine import combine

FILES = {
    "pkg/__init__.py": "",
    "pkg/shapes.py": """
        def area(w, h):
            return w * h


        def perimeter(w, h):
            return 2 * (w + h)


        def double(x):
            return x * 2
        def triple(x):
            return x * 3


        def scale(v, k):
            out = []
            for x in v:
                out.append(x * k)
            out.reverse()
            return out
        """,
    "pkg/text.py": """
        def shout(s):
            return s.upper() + "!"


        def whisper(s):
            return s.lower() + "..."
        """,
    "other/__init__.py": "",
    "other/calc.py": """
        def add(a, b):
            return a + b


        def sub(a, b):
            return a - b
        """,
}

# (file, function, old text, new text): each a single-line change.
AREA = ("pkg/shapes.py", "area", "w * h", "w + h")
PERIMETER = ("pkg/shapes.py", "perimeter", "2 * (w", "3 * (w")
DOUBLE = ("pkg/shapes.py", "double", "x * 2", "x * 4")
TRIPLE = ("pkg/shapes.py", "triple", "x * 3", "x * 6")  # two lines below DOUBLE: never with it
REVERSE = ("pkg/shapes.py", "scale", "out.reverse()", "out.sort()")
APPEND = ("pkg/shapes.py", "scale", "x * k", "x + k")  # same function as REVERSE: never with it
SHOUT = ("pkg/text.py", "shout", ".upper()", ".lower()")
WHISPER = ("pkg/text.py", "whisper", '"..."', '"."')
ADD = ("other/calc.py", "add", "a + b", "a - b")
SUB = ("other/calc.py", "sub", "a - b", "b - a")
COMPATIBLE = [AREA, PERIMETER, DOUBLE, REVERSE, SHOUT, WHISPER]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RepoSource, Path]]:
    """(source, a working copy at the base) of a small repository with two packages."""
    root = tmp_path_factory.mktemp("combine")
    for name, text in FILES.items():
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / name).write_text(textwrap.dedent(text).lstrip())
    src = open_repo(make_git_repo(root / "src", root / "shop"))
    with temp_working_copy(src) as wc:
        yield src, wc


def single(src: RepoSource, wc: Path, n: int, change: tuple[str, str, str, str]) -> TaskRecord:
    """A validated single-change candidate as procedural synthesis writes it."""
    path, name, old, new = change
    content = (wc / path).read_text()
    lines = content.splitlines(keepends=True)
    (i,) = [i for i, line in enumerate(lines) if old in line]
    block = block_for_edit(path, content, i, i + 1, [lines[i].replace(old, new)])
    return TaskRecord(
        task_id=task_id(src.name, n),
        repo=src.origin,
        commit_sha=src.commit_sha,
        matching_files=[path],
        subject=f"change_constant in {name} ({path})",
        task_description=f"`{name}` in `{path}` is broken",
        patches=render([block]),
        strategy="procedural:change_constant",
        changed_symbols=[name],
        lines={path: [i + 1]},
    )


def singles(src: RepoSource, wc: Path, changes: list[tuple[str, str, str, str]]) -> list[TaskRecord]:
    return [single(src, wc, n, c) for n, c in enumerate(changes)]


def expected_files(wc: Path, changes: list[tuple[str, str, str, str]]) -> dict[str, str]:
    """The base files with the given changes made by hand on the base lines (independent of any patch)."""
    out: dict[str, list[str]] = {}
    for path, _, old, new in changes:
        base = (wc / path).read_text().splitlines(keepends=True)
        lines = out.setdefault(path, base)
        (i,) = [i for i, line in enumerate(base) if old in line]
        lines[i] = lines[i].replace(old, new)
    return {path: "".join(lines) for path, lines in out.items()}


def applied(src: RepoSource, patch_texts: list[str], paths: list[str]) -> dict[str, str]:
    """File contents after applying the patches one after another on a fresh base working copy."""
    with temp_working_copy(src) as fresh:
        for text in patch_texts:
            apply(parse(text), fresh)
        return {p: (fresh / p).read_text() for p in paths}


def test_combined_patch_makes_exactly_the_members_changes(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    pool = singles(src, wc, [*COMPATIBLE, ADD, SUB])
    by_id = {r.task_id: r for r in pool}
    change_of = dict(zip(by_id, [*COMPATIBLE, ADD, SUB], strict=True))
    out = combine(src, wc, pool, num_candidates=6, seed=3, first_index=40)
    assert len(out) == 6
    assert [r.task_id for r in out] == [f"shop/{n}" for n in range(40, 46)]
    for r in out:
        members = [by_id[m] for m in r.members]
        assert r.strategy == "combine" and 2 <= r.changes <= 4 and r.changes == len(members)
        assert r.covering_tests is None
        assert r.subject == "combined: " + "; ".join(m.subject for m in members)
        assert set(r.reasoning.split(": ")[-1].split(", ")) == set(r.members)
        assert r.changed_symbols == [m.changed_symbols[0] for m in members]
        assert len(set(r.changed_symbols)) == r.changes
        files = sorted({f for m in members for f in m.lines})
        assert r.lines == {f: sorted(n for m in members for n in m.lines.get(f, [])) for f in files}
        assert r.matching_files == files
        assert len({PurePosixPath(f).parent for f in files}) == 1
        for m in members:
            assert f"`{m.changed_symbols[0]}` in `{next(iter(m.lines))}`" in r.task_description
        combined = applied(src, [r.patches], files)
        assert combined == expected_files(wc, [change_of[m] for m in r.members])
        assert combined == applied(src, [m.patches for m in reversed(members)], files), "members one by one"
    assert git(["status", "--porcelain"], cwd=wc) == "", "the working copy is left at the base"


def test_packages_never_mix_and_conflicting_singles_never_combine(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    changes = [*COMPATIBLE, TRIPLE, APPEND, ADD, SUB]
    pool = singles(src, wc, changes)
    name = {r.task_id: c for r, c in zip(pool, changes, strict=True)}
    seen_members = set()
    for seed in range(12):
        for r in combine(src, wc, pool, num_candidates=20, seed=seed, first_index=0):
            members = {name[m] for m in r.members}
            seen_members |= members
            assert len({c[0].split("/")[0] for c in members}) == 1, r.subject
            assert not {DOUBLE, TRIPLE} <= members, "changes two lines apart"
            assert not {REVERSE, APPEND} <= members, "two changes of one function"
    assert {TRIPLE, APPEND, ADD, SUB} <= seen_members, "conflicting singles still combine with others"


def test_same_seed_same_output_and_each_single_used_once_before_reuse(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    pool = singles(src, wc, COMPATIBLE)
    first = combine(src, wc, pool, num_candidates=10, seed=7, first_index=0, max_changes=2)
    again = combine(src, wc, pool, num_candidates=10, seed=7, first_index=0, max_changes=2)
    assert [r.to_json() for r in first] == [r.to_json() for r in again]
    assert len(first) == 10
    fresh = [m for r in first[:3] for m in r.members]
    assert sorted(fresh) == sorted(r.task_id for r in pool), "three disjoint pairs use all six singles"
    assert len({frozenset(r.members) for r in first}) == 10, "reuse never repeats a member set"
    other = combine(src, wc, pool, num_candidates=10, seed=8, first_index=0, max_changes=2)
    assert [r.members for r in other] != [r.members for r in first]


def test_avoided_subjects_are_not_produced_again(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    pool = singles(src, wc, COMPATIBLE)
    earlier = combine(src, wc, pool, num_candidates=3, seed=1, first_index=0)
    avoid = {r.subject for r in earlier}
    later = combine(src, wc, pool, num_candidates=5, seed=1, first_index=3, avoid=avoid)
    assert len(later) == 5
    assert not avoid & {r.subject for r in later}
    assert [r.task_id for r in later] == [f"shop/{n}" for n in range(3, 8)]


def test_nothing_to_combine(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    one_each = singles(src, wc, [AREA, ADD])
    assert combine(src, wc, one_each, num_candidates=5, seed=0, first_index=0) == []
    conflicting = singles(src, wc, [DOUBLE, TRIPLE])
    assert combine(src, wc, conflicting, num_candidates=5, seed=0, first_index=0) == []
    unlabelled = [r.model_copy(update={"changed_symbols": []}) for r in singles(src, wc, [AREA, SHOUT])]
    assert combine(src, wc, unlabelled, num_candidates=5, seed=0, first_index=0) == []


def test_members_whose_patches_collide_are_skipped(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    a, b = singles(src, wc, [AREA, PERIMETER])
    # Claims a far-away line and another function, but its SEARCH text is the one AREA rewrites.
    b = b.model_copy(update={"patches": a.patches.replace("w + h", "w - h")})
    assert combine(src, wc, [a, b], num_candidates=3, seed=0, first_index=0) == []
    assert len(combine(src, wc, singles(src, wc, [AREA, PERIMETER]), num_candidates=3, seed=0, first_index=0)) == 1


def test_a_change_that_copies_a_later_search_text_does_not_misplace_it(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    pool = singles(src, wc, [ADD, SUB])  # ADD writes `a - b` above SUB's `a - b`
    (r,) = combine(src, wc, pool, num_candidates=3, seed=0, first_index=0)
    assert applied(src, [r.patches], ["other/calc.py"]) == expected_files(wc, [ADD, SUB])
    assert "return a - b" in expected_files(wc, [ADD, SUB])["other/calc.py"].split("def sub")[0]


def test_members_whose_search_texts_overlap_are_skipped(repo: tuple[RepoSource, Path]) -> None:
    src, wc = repo
    a, b = singles(src, wc, [SHOUT, WHISPER])
    shout = 'def shout(s):\n    return s.upper() + "!"\n'
    a = a.model_copy(update={"patches": render([Block("pkg/text.py", shout, shout.replace("upper", "lower"))])})
    # Starts inside a's SEARCH text and writes a copy of it below: a would land on the copy.
    rewrite = Block("pkg/text.py", '    return s.upper() + "!"\n', '    return s.upper() + "?"\n\n\n' + shout)
    b = b.model_copy(update={"patches": render([rewrite])})
    assert combine(src, wc, [a, b], num_candidates=3, seed=0, first_index=0) == []


def test_a_combination_whose_changes_interact_is_rejected(tmp_path: Path) -> None:
    """Together, one change may undo what another breaks: the combined task's failing tests are then not the union
    of its members', and fixing it is not fixing each change. validate_many rejects it, naming the tests."""
    from repogym import validate
    from repogym.records import RejectedRecord, ValidatedRecord, append_record

    def validated(tid: str, f2p: list[str]) -> ValidatedRecord:
        return ValidatedRecord(task_id=tid, repo="r", **{"src.diff": "x", "tests.diff": "y"}, FAIL_TO_PASS=f2p)

    out, rejected = tmp_path / "validated.jsonl", tmp_path / "rejected.jsonl"
    append_record(out, validated("r/0", ["t::a", "t::b"]))
    append_record(out, validated("r/1", ["t::c"]))
    base = dict(repo="r", commit_sha="0" * 40, subject="s", task_description="d", patches="p", strategy="combine")
    masked = TaskRecord(task_id="r/2", members=["r/0", "r/1"], **base)
    clean = TaskRecord(task_id="r/3", members=["r/0", "r/1"], **base)
    lists = {"r/2": ["t::a", "t::c"], "r/3": ["t::a", "t::b", "t::c"]}
    verdicts = validate.validate_many([masked, clean], lambda t: validated(t.task_id, lists[t.task_id]), out, rejected)
    by_id = {v.task_id: v for v in verdicts}
    assert isinstance(by_id["r/3"], ValidatedRecord)
    assert isinstance(by_id["r/2"], RejectedRecord) and "the changes interact" in by_id["r/2"].reason
    assert "t::b" in by_id["r/2"].reason
