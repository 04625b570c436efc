from __future__ import annotations

import ast
import difflib
import textwrap

import pytest

from repogym.synth.procedural import Candidate, describe
from repogym.synth.transforms import ALL_TRANSFORMS, edits

SOURCE = textwrap.dedent(
    '''\
    import contextlib


    class Base:
        pass


    class Shape(Base):
        """A shape."""

        def area(self):  # keep this comment
            return 0

        def scaled(self, k):
            total = 0
            for i in range(k):
                total += i * 2
            if k > 10 and k < 100:
                total = total - 1
            while total > 50:
                total //= 2
            with contextlib.suppress(ValueError):
                total = int(total)
            try:
                total = total % 7
            except ZeroDivisionError:
                pass
            flag = 1 < k <= 3
            return total if not flag else -total
    '''
)


def _changed_lines(old: str, new: str) -> list[str]:
    return [line for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line[:1] in "+-"]


def test_every_transform_applies_and_output_parses() -> None:
    found = {e.transform for e in edits(SOURCE)}
    assert found == set(ALL_TRANSFORMS)
    for e in edits(SOURCE):
        ast.parse(e.content)


@pytest.mark.parametrize("transform", ALL_TRANSFORMS)
def test_only_touched_lines_change(transform: str) -> None:
    for e in (e for e in edits(SOURCE) if e.transform == transform):
        removed = [line for line in _changed_lines(SOURCE, e.content) if line.startswith("-")]
        assert "# keep this comment" in e.content or e.qualname.startswith("Shape.area"), "comments survive"
        limit = 20 if transform == "remove_methods" else 8  # a removed method is its whole body
        assert len(removed) <= limit, f"{transform} rewrote more than the node: {removed}"


def test_specific_rewrites() -> None:
    by = {}
    for e in edits(SOURCE):
        by.setdefault(e.transform, []).append(_changed_lines(SOURCE, e.content))
    assert ["-         if k > 10 and k < 100:", "+         if k > 10:"] in [d[:2] for d in by["break_chain"]]
    assert ["-         flag = 1 < k <= 3", "+         flag = 1 < k"] in by["break_chain"]
    assert ["-         return total if not flag else -total", "+         return total if flag else -total"] in by[
        "invert_if"
    ]
    assert ["-             total += i * 2", "+             total += i * 3"] in by["change_constant"]
    assert ["- class Shape(Base):", "+ class Shape:"] in by["remove_base"]
    assert ["-             total = total - 1", "+             total = total + 1"] in by["change_operator"]
    assert ["-             total = total - 1", "+             total = 1 - total"] in by["swap_operands"]


def test_description_never_names_the_transform() -> None:
    from repogym.synth.transforms import Edit

    for name in ALL_TRANSFORMS:
        text = describe(Candidate("pkg/mod.py", Edit(name, "Shape.scaled", 10, "")))
        assert name not in text and name.replace("_", " ") not in text
        assert "Shape.scaled" in text
