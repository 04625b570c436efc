"""Check 2 runs only the tests a tests.diff adds when adding them is all it does; anything else runs whole files."""

from __future__ import annotations

from repogym.added_tests import added_tests

HEAD = "import pytest\n\nfrom calc import add\n\n\ndef helper():\n    return 2\n\n\n"
KEPT = "def test_kept():\n    assert add(1, 1) == helper()\n\n\n"
BACK = "@pytest.mark.parametrize('x', [1, 2])\ndef test_back(x):\n    assert x\n\n\n"
CLASS = (
    "class TestOps:\n    def test_sub(self):\n        assert True\n{method}\n"
    "    class TestNested:\n        def test_deep(self):\n            assert True\n{deeper}"
)
METHOD = "\n    def test_added_method(self):\n        assert True\n"
DEEPER = "\n        def test_deeper(self):\n            assert True\n"
TASK_STATE = HEAD + KEPT + CLASS.format(method="", deeper="")
FILE = "tests/test_calc.py"


def test_added_functions_methods_and_nested_methods_are_named() -> None:
    after = HEAD + BACK + KEPT + CLASS.format(method=METHOD, deeper=DEEPER)
    assert added_tests({FILE: TASK_STATE}, {FILE: after}) == [
        f"{FILE}::test_back",
        f"{FILE}::TestOps::test_added_method",
        f"{FILE}::TestOps::TestNested::test_deeper",
    ]


def test_a_new_module_runs_whole() -> None:
    assert added_tests({"tests/test_new.py": None}, {"tests/test_new.py": "def test_a():\n    pass\n"}) == [
        "tests/test_new.py"
    ]


def test_anything_but_added_tests_runs_the_whole_files() -> None:
    changed = TASK_STATE.replace("return 2", "return 3")
    helper = TASK_STATE.replace(KEPT, "def other_helper():\n    return 1\n\n\n" + KEPT)
    fixture = TASK_STATE.replace(KEPT, "@pytest.fixture\ndef test_data():\n    return 1\n\n\n" + KEPT)
    base_changed = TASK_STATE.replace("class TestOps:", "class TestOps(object):")
    for after in (changed, helper, fixture, base_changed):
        assert after != TASK_STATE
        assert added_tests({FILE: TASK_STATE}, {FILE: after}) is None, after
    assert added_tests({FILE: TASK_STATE}, {FILE: None}) is None
    assert added_tests({FILE: TASK_STATE}, {FILE: "def test_x(:\n"}) is None


def test_tests_added_to_a_base_class_run_the_whole_file() -> None:
    """A subclass in the file inherits the added method: it fails there too, so the whole file runs."""
    sub = "class TestMore(TestOps):\n    pass\n"
    before = TASK_STATE + "\n\n" + sub
    after = HEAD + KEPT + CLASS.format(method=METHOD, deeper="") + "\n\n" + sub
    assert added_tests({FILE: before}, {FILE: after}) is None
