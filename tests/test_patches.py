from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repogym import patches
from repogym.errors import PatchError
from repogym.patches import Block

TWO_FILE_PATCH = """Here is the change.

### scheme/builtins.py
```python
<<<<<<< SEARCH
def add(*args):
    check_numbers("+", args)
    return sum(args)
=======
def add(*args):
    check_numbers("+", args)
    return sum(args) + 0
>>>>>>> REPLACE
```

and a second block in the same file:

<<<<<<< SEARCH
def mul(*args):
=======
def mul(*args):
    \"\"\"Product of the arguments.\"\"\"
>>>>>>> REPLACE

scheme/printer.py
```
<<<<<<< SEARCH
    if value is True:
        return "#t"
=======
    if value is True:
        return "#true"[:2]
>>>>>>> REPLACE
```
"""


def test_parse_tolerates_prose_fences_and_bare_names() -> None:
    blocks = patches.parse(TWO_FILE_PATCH)
    assert [b.path for b in blocks] == ["scheme/builtins.py", "scheme/builtins.py", "scheme/printer.py"]
    assert blocks[1].replace.endswith('"""Product of the arguments."""\n')


def test_empty_search_creates_file(tmp_path: Path) -> None:
    blocks = patches.parse("### new/mod.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n")
    patches.apply(blocks, tmp_path)
    assert (tmp_path / "new/mod.py").read_text() == "x = 1\n"


def test_missing_divider_is_named() -> None:
    with pytest.raises(PatchError, match=r"block 1 \(a.py\): missing '======='"):
        patches.parse("### a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n")


def test_missing_replace_marker() -> None:
    with pytest.raises(PatchError, match="missing '>>>>>>> REPLACE'"):
        patches.parse("### a.py\n<<<<<<< SEARCH\nx\n=======\ny\n")


def test_search_not_found_names_block_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n")
    text = "### a.py\n<<<<<<< SEARCH\none\n=======\n1\n>>>>>>> REPLACE\n\n"
    text += "### a.py\n<<<<<<< SEARCH\ntwo\nTHREE\n=======\n\n>>>>>>> REPLACE\n"
    with pytest.raises(PatchError) as info:
        patches.apply(patches.parse(text), tmp_path)
    msg = str(info.value)
    assert "block 2 (a.py)" in msg and "'THREE'" in msg and "after 1 matching line" in msg
    assert (tmp_path / "a.py").read_text() == "one\ntwo\nthree\n", "no file changes when a block fails"


def test_fallbacks_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    if x:   \n        return 1\n")
    text = "### a.py\n<<<<<<< SEARCH\nif x:\n    return 1\n=======\nif y:\n    return 2\n>>>>>>> REPLACE\n"
    result = patches.apply(patches.parse(text), tmp_path)
    assert result.fallbacks == [(1, "indentation")]
    assert (tmp_path / "a.py").read_text() == "def f():\n    if y:\n        return 2\n"


def test_trailing_whitespace_fallback(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("a = 1  \nb = 2\n")
    result = patches.apply([Block("a.py", "a = 1\nb = 2\n", "a = 3\n")], tmp_path)
    assert result.fallbacks == [(1, "trailing whitespace")]
    assert (tmp_path / "a.py").read_text() == "a = 3\n"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    result = patches.apply([Block("a.py", "x = 1\n", "x = 2\n")], tmp_path, dry_run=True)
    assert result.files == ["a.py"] and (tmp_path / "a.py").read_text() == "x = 1\n"


def test_path_outside_repo_refused(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match="inside the repository"):
        patches.apply([Block("../evil.py", "", "x\n")], tmp_path)


def test_unified_diff_applies_with_git(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("one\ntwo\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = patches.apply([Block("a.py", "two\n", "2\n"), Block("b.py", "", "new\n")], tmp_path, dry_run=True)
    diff = patches.unified_diff(result)
    subprocess.run(["git", "apply", "-"], cwd=tmp_path, input=diff, text=True, check=True)
    assert (tmp_path / "a.py").read_text() == "one\n2\n" and (tmp_path / "b.py").read_text() == "new\n"


def test_block_for_edit_is_unique() -> None:
    content = "x = 1\ny = 2\nx = 1\nz = 3\n"
    block = patches.block_for_edit("f.py", content, 2, 3, ["x = 9\n"])
    assert content.count(block.search) == 1
    assert content.replace(block.search, block.replace) == "x = 1\ny = 2\nx = 9\nz = 3\n"


_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).filter(
    lambda s: s.strip() not in ("=======",) and "<<<<" not in s and ">>>>" not in s
)
_lines = st.lists(_line, max_size=5).map(lambda ls: "".join(x + "\n" for x in ls))
_paths = st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.py", fullmatch=True)


@given(st.lists(st.builds(Block, _paths, _lines, _lines), min_size=1, max_size=6))
def test_render_parse_roundtrip(blocks: list[Block]) -> None:
    text = patches.render(blocks)
    assert patches.parse(text) == blocks
    assert patches.render(patches.parse(text)) == text


@st.composite
def _file_and_edits(draw: st.DrawFn) -> tuple[str, list[Block]]:
    n = draw(st.integers(3, 30))
    lines = [f"line {i} {draw(st.sampled_from(['a', 'bb', '  c', '']))}\n" for i in range(n)]
    content = "".join(lines)
    blocks: list[Block] = []
    cuts = sorted(set(draw(st.lists(st.integers(0, n), min_size=2, max_size=8))))
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:], strict=False)):
        if draw(st.booleans()):
            new = [f"new {k} {j}\n" for j in range(draw(st.integers(0, 3)))]
            blocks.append(Block("f.txt", "".join(lines[lo:hi]), "".join(new)))
    return content, blocks


@settings(max_examples=200)
@given(_file_and_edits())
def test_apply_then_inverse_restores_bytes(tmp_path_factory: pytest.TempPathFactory, case: tuple) -> None:
    content, blocks = case
    root = tmp_path_factory.mktemp("inv")
    (root / "f.txt").write_bytes(content.encode())
    # Blocks whose REPLACE is empty cannot be inverted by first-occurrence search: keep the rest.
    blocks = [b for b in blocks if b.replace]
    patches.apply(blocks, root)
    patches.apply(patches.inverse(blocks), root)
    assert (root / "f.txt").read_bytes() == content.encode()
