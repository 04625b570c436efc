from __future__ import annotations

import ast
import difflib
import re
import textwrap

import pytest

from repogym.synth.procedural import template_description
from repogym.synth.transforms import ALL_TRANSFORMS, CLASS_TRANSFORMS, edits, first_line, functions, split_lines

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


    def first_match(items, key=None, limit=3, strict=False):
        if key is None:
            raise ValueError("no key")
        found = None
        for i in range(len(items) - 1):
            if items[i] == key:
                found = i
                break
        head = sorted(items[1:limit], key=len, reverse=strict)
        try:
            found = max(head, limit)
        except KeyError:
            pass
        return found


    def is_empty(items):
        for item in items:
            if item.ok:
                return False
        return True
    '''
)


def _changed_lines(old: str, new: str) -> list[str]:
    return [line for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line[:1] in "+-"]


def _region(a: list[str], b: list[str]) -> tuple[int, int]:
    """Lines the two lists share at the start and, after that, at the end."""
    lo = 0
    while lo < min(len(a), len(b)) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < min(len(a), len(b)) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    return lo, hi


def _change(old: str, new: str) -> tuple[str, str]:
    """(old text, new text) of the one region where two files differ, as whole lines."""
    a, b = split_lines(old), split_lines(new)
    lo, hi = _region(a, b)
    return "".join(a[lo : len(a) - hi]), "".join(b[lo : len(b) - hi])


def _changes(text: str, transform: str) -> list[tuple[str, str]]:
    return sorted(_change(text, e.content) for e in edits(text) if e.transform == transform)


def _contents(text: str, transform: str) -> list[str]:
    return [e.content for e in edits(text) if e.transform == transform]


def _code(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


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
    text = template_description([("Shape.scaled", "pkg/mod.py")])
    assert "Shape.scaled" in text and "pkg/mod.py" in text
    for name in ALL_TRANSFORMS:
        assert name not in text and name.replace("_", " ") not in text


# --- no tells -------------------------------------------------------------------------------------------

CONDITIONS = _code(
    """
    def check(a, b, xs, n):
        if a is None:
            a = 0
        while a < n:
            a += 1
        if not xs:
            xs = []
        if xs[0]:
            b = 1
        if a and b:
            b = 2
        if 0 < a < 9:
            b = 3
        if not (a or b):
            b = 4
        if a + b:
            b = 5
        if not (
            a
        ):
            b = 6
        if a is (None):
            b = 7
        return b if not a else a
    """
)


def test_invert_if_negates_like_a_person() -> None:
    assert _changes(CONDITIONS, "invert_if") == sorted(
        [
            ("    if a is None:\n", "    if a is not None:\n"),
            ("    if not xs:\n", "    if xs:\n"),
            ("    if xs[0]:\n", "    if not xs[0]:\n"),
            ("    if not (a or b):\n", "    if a or b:\n"),
            ("    if not (\n", "    if (\n"),
            ("    return b if not a else a\n", "    return b if a else a\n"),
        ]
    )


@pytest.mark.parametrize("text", [SOURCE, CONDITIONS])
def test_no_edit_adds_not_paren(text: str) -> None:
    for e in edits(text):
        assert e.content.count("not (") <= text.count("not ("), (e.transform, _change(text, e.content))


def test_removal_never_leaves_a_lone_pass() -> None:
    text = _code(
        """
        def f(x):
            if x:
                y = 1
            z = 2
            for i in x:
                if i:
                    z += i
            return z
        """
    )
    assert _changes(text, "remove_assignment") == [("    z = 2\n", "")]
    assert _changes(text, "remove_conditional") == [("    if x:\n        y = 1\n", "")]
    assert _changes(text, "remove_loop") == [("    for i in x:\n        if i:\n            z += i\n", "")]
    for e in edits(SOURCE):
        assert e.content.count("pass\n") <= SOURCE.count("pass\n"), e.transform


def test_break_chain_leaves_no_lone_operand_in_parentheses() -> None:
    text = _code(
        """
        def f(a, b, c):
            if not (a or b):
                return (a and b) + c
            return (
                a
                and b
            )
        """
    )
    assert _changes(text, "break_chain") == sorted(
        [("    if not (a or b):\n", "    if not a:\n"), ("        return (a and b) + c\n", "        return a + c\n")]
    )


def test_no_string_arithmetic_and_no_unreachable_shuffle() -> None:
    text = _code(
        """
        def f(xs):
            for x in xs:
                a = x
                continue
            a = 1

            b = "-" * 40 + "%s" % a
            # c after b
            c = 3
            return a
        """
    )
    assert _changes(text, "change_operator") == []
    assert _changes(text, "swap_operands") == []
    assert _changes(text, "shuffle_statements") == sorted(
        [
            (
                "    for x in xs:\n        a = x\n        continue\n    a = 1\n",
                "    a = 1\n    for x in xs:\n        a = x\n        continue\n",
            ),
            ('    a = 1\n\n    b = "-" * 40 + "%s" % a\n', '    b = "-" * 40 + "%s" % a\n\n    a = 1\n'),
        ]
    )


# --- new kinds: exact output ----------------------------------------------------------------------------


def test_off_by_one() -> None:
    text = _code(
        """
        def window(xs, n):
            for i in range(len(xs) - 1):
                print(xs[i:i + n], xs[i:i + 1])
            return xs[:-1]
        """
    )
    line = "        print(xs[i:i + n], xs[i:i + 1])\n"
    assert _changes(text, "off_by_one") == sorted(
        [
            ("    for i in range(len(xs) - 1):\n", "    for i in range(len(xs)):\n"),
            (line, "        print(xs[i + 1:i + n], xs[i:i + 1])\n"),
            (line, "        print(xs[i - 1:i + n], xs[i:i + 1])\n"),
            (line, "        print(xs[i:i + n + 1], xs[i:i + 1])\n"),
            (line, "        print(xs[i:i + n - 1], xs[i:i + 1])\n"),
            (line, "        print(xs[i:i + n], xs[i - 1:i + 1])\n"),  # never xs[i:i] or xs[i + 1:i + 1]
            ("    return xs[:-1]\n", "    return xs[:-2]\n"),
        ]
    )


def test_off_by_one_targets_the_stop_of_range() -> None:
    text = "def f(n):\n    return list(range(2, n, 3))\n"
    assert _changes(text, "off_by_one") == sorted(
        [
            ("    return list(range(2, n, 3))\n", "    return list(range(2, n + 1, 3))\n"),
            ("    return list(range(2, n, 3))\n", "    return list(range(2, n - 1, 3))\n"),
        ]
    )


def test_early_return() -> None:
    text = _code(
        """
        def find(xs, key):
            hit = None
            for i, x in enumerate(xs):
                if x == key:
                    hit = i
                    break
            hit = -1 if hit is None else hit
            return hit
        """
    )
    after_first = text.replace("            break\n", "            break\n        return hit\n")
    at_break = text.replace("            break\n", "            return hit\n")
    assert sorted(_contents(text, "early_return")) == sorted([after_first, at_break])


def test_early_return_needs_the_name_bound_before_the_loop() -> None:
    text = "def f(xs):\n    for x in xs:\n        print(x)\n    out = 1\n    return out\n"
    assert _contents(text, "early_return") == []


def test_wrong_return() -> None:
    text = "def f(x):\n    if x:\n        return True\n    return x\n"
    assert _changes(text, "wrong_return") == [("        return True\n", "        return False\n")]


def test_drop_argument() -> None:
    text = _code(
        """
        def run(cmd, env):
            subprocess.run(cmd, env, check=True, text=False)
            return dict(
                cmd,
                b=1,  # why
            )
        """
    )
    line = "    subprocess.run(cmd, env, check=True, text=False)\n"
    assert _changes(text, "drop_argument") == sorted(
        [
            (line, "    subprocess.run(cmd, env, check=True)\n"),
            (line, "    subprocess.run(cmd, check=True, text=False)\n"),
            ("        b=1,  # why\n", ""),
        ]
    )


def test_drop_and_swap_leave_unpacking_literals_and_isinstance_alone() -> None:
    text = "def f(a, b, kw):\n    g(a, b, **kw)\n    h(a, *b)\n    return isinstance(a, b) and int(a, 16)\n"
    assert _changes(text, "drop_argument") == [
        ("    return isinstance(a, b) and int(a, 16)\n", "    return isinstance(a, b) and int(a)\n")
    ]
    assert _changes(text, "swap_arguments") == [("    g(a, b, **kw)\n", "    g(b, a, **kw)\n")]


def test_swap_arguments() -> None:
    text = "def f(base, exp, mod):\n    return pow(base, exp, mod) + max(exp, exp)\n"
    line = "    return pow(base, exp, mod) + max(exp, exp)\n"
    assert _changes(text, "swap_arguments") == sorted(
        [
            (line, "    return pow(exp, base, mod) + max(exp, exp)\n"),
            (line, "    return pow(base, mod, exp) + max(exp, exp)\n"),
        ]
    )


def test_wrong_exception() -> None:
    text = _code(
        """
        def get(d, k):
            try:
                return d[k]
            except KeyError:
                raise ValueError(k) from None
            except NotImplementedError:
                raise
        """
    )
    assert _changes(text, "wrong_exception") == sorted(
        [
            ("    except KeyError:\n", "    except IndexError:\n"),
            ("        raise ValueError(k) from None\n", "        raise TypeError(k) from None\n"),
        ]
    )


def test_swallow_exception() -> None:
    text = _code(
        """
        def parse(s):
            if not s:
                raise ValueError(
                    "empty"
                )  # never silent
            return int(s)
        """
    )
    assert _changes(text, "swallow_exception") == [
        (
            '        raise ValueError(\n            "empty"\n        )  # never silent\n',
            "        return None  # never silent\n",
        )
    ]
    generator = "def g(s):\n    if not s:\n        raise ValueError\n    yield s\n"
    assert _changes(generator, "swallow_exception") == []


def test_change_default() -> None:
    text = 'def f(a, n=2, *, flag=False, name="x", k=None):\n    return a\n'
    assert _changes(text, "change_default") == sorted(
        [
            (text.splitlines(keepends=True)[0], 'def f(a, n=3, *, flag=False, name="x", k=None):\n'),
            (text.splitlines(keepends=True)[0], 'def f(a, n=2, *, flag=True, name="x", k=None):\n'),
        ]
    )


# --- untouched bytes ------------------------------------------------------------------------------------

ODD_BYTES = (
    'import os\r\n\r\n\r\ndef f(xs, *, n=0):\r\n    """Doc \u00e9."""\r\n    s = "\u00e9\u00e9"; t = xs[:-1]\r\n'
    "    out = s  # \u00fc\r\n    for i in range(0, len(xs), 2):\r\n        out += xs[i]\r\n    if not t:\r\n"
    "        raise ValueError(t)\r\n    return out\r\n\x0c\r\n\r\ndef g(a):\r\n\tif a < 0:\r\n\t\treturn -1\r\n"
    "\treturn a[1:-2]\r\n"
)


def _spans(text: str) -> dict[str, tuple[int, int]]:
    """Lines of every function (by qualified name) and class (by name)."""
    tree = ast.parse(text)
    spans = {q: (first_line(f), f.end_lineno or f.lineno) for q, f in functions(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            spans[node.name] = (first_line(node), node.end_lineno or node.lineno)
    return spans


@pytest.mark.parametrize("text", [SOURCE, CONDITIONS, ODD_BYTES], ids=["source", "conditions", "crlf"])
def test_lines_outside_the_node_keep_their_bytes(text: str) -> None:
    spans, old = _spans(text), split_lines(text)
    for e in edits(text):
        new = split_lines(e.content)
        lo, hi = _region(old, new)
        owner = re.split(r"[.(]", e.qualname)[0] if e.transform in CLASS_TRANSFORMS else e.qualname
        first, last = spans[owner]
        assert first - 1 <= lo and len(old) - hi <= last, (e.transform, e.qualname, _change(text, e.content))
        if "\r\n" in text:
            assert all(line.endswith("\r\n") for line in new), (e.transform, _change(text, e.content))


def test_odd_bytes_kinds_all_apply() -> None:
    kinds = {e.transform for e in edits(ODD_BYTES)}
    assert {"early_return", "off_by_one", "swallow_exception", "change_default", "invert_if"} <= kinds


LOOPS = _code(
    """
    def pollard(x, n):
        d = 1
        while d == 1:
            x = (x * x + 1) % n
            d = gcd(x - 1, n)
        return d


    def first_over(xs, limit):
        i = total = 0
        while True:
            if xs[i] > limit + 1:
                break
            i += 1
        total = i * 2
        return total


    def until(items, stop):
        for item in cycle(items):
            if item == stop:
                return item
        return None
    """
)


def test_no_edit_keeps_a_loop_from_ending() -> None:
    """The test of a `while`, the `if` before its only way out (also in a `for` over `cycle()`) and the updates
    of what they read stay as they are: changed, the loop may never end and the suite hangs until its timeout."""
    deciding = {
        "    while d == 1:\n",
        "        x = (x * x + 1) % n\n",
        "        d = gcd(x - 1, n)\n",
        "    while True:\n",
        "        if xs[i] > limit + 1:\n",
        "        i += 1\n",
        "        if item == stop:\n",
    }
    changed = [_change(LOOPS, e.content)[0] for e in edits(LOOPS)]
    assert not [old for old in changed if set(split_lines(old)) & deciding]
    assert "    total = i * 2\n" in changed  # the code after the loop still changes
    assert "            break\n" in changed  # and the way out may come too early (`return total`)


def test_drop_argument_keeps_what_bounds_a_wait_or_an_iterator() -> None:
    text = _code(
        """
        def f(q, n):
            pad = chain(q, repeat(0, n))
            item = q.get(block=True, timeout=5)
            warnings.warn("old", DeprecationWarning, stacklevel=2)
            return g(pad, item)
        """
    )
    assert _changes(text, "drop_argument") == sorted(
        [
            ("    pad = chain(q, repeat(0, n))\n", "    pad = chain(q)\n"),
            ("    item = q.get(block=True, timeout=5)\n", "    item = q.get(timeout=5)\n"),
            (
                '    warnings.warn("old", DeprecationWarning, stacklevel=2)\n',
                '    warnings.warn("old", stacklevel=2)\n',
            ),
            ("    return g(pad, item)\n", "    return g(pad)\n"),
        ]
    )


def test_remove_wrapper_keeps_a_lock() -> None:
    text = _code(
        """
        def f(self, p):
            with self._send_lock:
                data = b"".join(self.buf)
            with open(p) as fh:
                return fh.read() + data
        """
    )
    assert [old.split("\n")[0] for old, _ in _changes(text, "remove_wrapper")] == ["    with open(p) as fh:"]


def test_shuffle_ignores_comprehension_variables_and_later_bodies() -> None:
    """`f` of two comprehensions, or `ok` read in a nested function's body, ties no two statements: swapped, they
    behave the same. A nested function's own name does."""
    text = _code(
        """
        def f(xs):
            if not all([callable(x) for x in xs]):
                raise TypeError("x")
            ok = any([x for x in xs])

            def check():
                return ok

            run = check
            return run
        """
    )
    swapped = [old.split("\n")[0].strip() for old, _ in _changes(text, "shuffle_statements")]
    assert swapped == ["def check():"]  # with `run = check`, which reads its name
