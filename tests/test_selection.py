from __future__ import annotations

from repogym.synth.coverage import CoverageMap, function_headers
from repogym.synth.procedural import Candidate, names_function, select
from repogym.synth.transforms import Edit

ORIGINAL = "def f(x):\n    return x + 1\n"


def _candidate(function: str, covering: int = 3, seconds: float = 0.1, named: bool = False) -> Candidate:
    edit = Edit("change_operator", function, 1, ORIGINAL.replace("+", "-"))
    return Candidate(f"pkg/{function}.py", edit, (2,), covering, ORIGINAL, seconds, named)


def test_names_function() -> None:
    tests = ["tests/test_iterutils.py::test_chunked_bytes", "tests/test_x.py::TestExceptionInfo::test_repr[a]"]
    assert names_function("chunked_bytes", tests)
    assert names_function("ExceptionInfo.__init__", tests)  # a dunder method: its class
    assert not names_function("FunctionBuilder.get_func", tests)
    assert not names_function("x", ["tests/test_x.py::test_x"])  # too short to tell
    assert not names_function("iterutils", tests)  # the module's name is not the test's


def test_select_prefers_a_test_named_after_the_function() -> None:
    pool = [_candidate(f"helper_{k}") for k in range(5)] + [_candidate("chunked", named=True)]
    for seed in range(5):
        assert select(pool, 1, seed, set(), total_tests=100)[0].function == "chunked"


def test_select_demotes_changes_whose_tests_are_slow() -> None:
    """Tests that take half the suite's time: each validation is long, and a hang costs ten times that."""
    pool = [_candidate(f"fast_{k}") for k in range(5)] + [_candidate("prime", seconds=60.0, named=True)]
    for seed in range(5):
        picked = select(pool, 5, seed, set(), total_tests=100, total_seconds=120.0)
        assert "prime" not in {c.function for c in picked}
    assert select(pool, 6, 0, set(), total_tests=100, total_seconds=120.0)[-1].function == "prime"


HEADERS = """\
import functools


@functools.lru_cache(
    maxsize=2)
def f(x,
      y=1):
    return x + y


class C:
    Z = 1

    def m(self):
        return 2
"""


def test_a_change_to_a_functions_header_selects_the_tests_that_call_it() -> None:
    """A decorator or a signature runs at import, to make the function: its change reaches the tests that call the
    function, which run its body. Any other import-time line (a class attribute) can reach every test."""
    cov = CoverageMap(
        tests=["t::calls_f", "t::calls_m", "t::neither"],
        sets=[[0], [1]],
        lines={"pkg.py": {8: 0, 15: 1}},
        import_lines={"pkg.py": {1, 4, 6, 11, 12, 14}},
    )
    sources: dict[str, str | None] = {"pkg.py": HEADERS}
    assert cov.at_import({"pkg.py": [4]})
    assert cov.through_calls({"pkg.py": [4, 5]}, sources) == {"pkg.py": [5, 8]}
    assert cov.selection(cov.through_calls({"pkg.py": [6, 7]}, sources) or {}) == ["t::calls_f"]
    assert cov.selection(cov.through_calls({"pkg.py": [14, 15]}, sources) or {}) == ["t::calls_m"], "a method"
    assert cov.through_calls({"pkg.py": [12]}, sources) is None, "a class attribute"
    assert cov.through_calls({"pkg.py": [4]}, {}) is None, "no source to read the header from"
    assert cov.through_calls({"pkg.py": [8]}, {}) == {"pkg.py": [8]}, "nothing at import"
    assert function_headers("def broken(:\n") == {}
    at_import = CoverageMap(cov.tests, sets=cov.sets, lines=cov.lines, import_lines={"pkg.py": {1, 4, 6, 8}})
    assert at_import.through_calls({"pkg.py": [7]}, sources) == {"pkg.py": [7]}, "no header line at import"
    assert at_import.through_calls({"pkg.py": [6]}, sources) is None, "f runs at import (a constant made by it)"
