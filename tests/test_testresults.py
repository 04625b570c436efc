from __future__ import annotations

import pytest

from repogym.testresults import TestRun, parse_junit

PYTEST = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1"
skipped="1" tests="5"><testcase classname="tests.test_a" name="test_ok" time="0.001" />
<testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">tb</failure></testcase>
<testcase classname="tests.test_a.TestK" name="test_skip[x-1]"><skipped type="pytest.skip" message="no"/></testcase>
<testcase classname="tests.test_a" name="test_teardown" />
<testcase classname="tests.test_a" name="test_teardown"><error message="teardown">e</error></testcase>
</testsuite></testsuites>"""

GO = """<testsuites><testsuite tests="2" failures="1" name="example.com/pkg/calc">
<testcase classname="calc" name="TestAdd" time="0.00"></testcase>
<testcase classname="calc" name="TestSub" time="0.00"><failure message="Failed" type="">x</failure></testcase>
</testsuite></testsuites>"""

CARGO = """<testsuites><testsuite id="0" name="cargo test #0" tests="2" errors="0" failures="1">
<testcase name="tests::it_works" classname="calc"/>
<testcase name="tests::it_fails" classname="calc"><failure type="assertion"/></testcase>
</testsuite></testsuites>"""

JEST = """<testsuites name="jest tests" tests="2" failures="1"><testsuite name="math" tests="2">
<testcase classname="math adds" name="math adds" time="0.001"></testcase>
<testcase classname="math divides" name="math divides"><failure>Error: expected</failure></testcase>
</testsuite></testsuites>"""

SUREFIRE = """<testsuite name="com.acme.CalcTest" tests="4" failures="1" errors="1" skipped="1">
<testcase name="adds" classname="com.acme.CalcTest" time="0.01"/>
<testcase name="fails" classname="com.acme.CalcTest"><failure type="AssertionError">x</failure></testcase>
<testcase name="errs" classname="com.acme.CalcTest"><error type="NullPointerException"/></testcase>
<testcase name="ignored" classname="com.acme.CalcTest"><skipped/></testcase>
<testcase name="flaky" classname="com.acme.CalcTest"><flakyFailure type="x"/></testcase>
</testsuite>"""


def test_pytest_worst_outcome_wins_and_ids_are_stable() -> None:
    r = parse_junit(PYTEST)
    assert r == {
        "tests.test_a::test_ok": "passed",
        "tests.test_a::test_bad": "failed",
        "tests.test_a.TestK::test_skip[x-1]": "skipped",
        "tests.test_a::test_teardown": "error",
    }


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (GO, {"calc::TestAdd": "passed", "calc::TestSub": "failed"}),
        (CARGO, {"calc::tests::it_works": "passed", "calc::tests::it_fails": "failed"}),
        (JEST, {"math::math adds": "passed", "math::math divides": "failed"}),
        (
            SUREFIRE,
            {
                "com.acme.CalcTest::adds": "passed",
                "com.acme.CalcTest::fails": "failed",
                "com.acme.CalcTest::errs": "error",
                "com.acme.CalcTest::ignored": "skipped",
                "com.acme.CalcTest::flaky": "passed",
            },
        ),
    ],
    ids=["go-junit-report", "cargo2junit", "jest-junit", "surefire"],
)
def test_other_producers(xml: str, expected: dict[str, str]) -> None:
    assert parse_junit(xml) == expected


def test_not_junit_is_an_error() -> None:
    with pytest.raises(ValueError, match="not valid XML"):
        parse_junit("<testsuites>")
    with pytest.raises(ValueError, match="root element <html>"):
        parse_junit("<html/>")


def test_run_verdicts() -> None:
    assert not TestRun(outcomes={}).all_passed, "a run with no results is not a pass"
    assert TestRun(outcomes={"a": "passed", "b": "skipped"}).all_passed
    assert not TestRun(outcomes={"a": "passed"}, timed_out=True).all_passed
    assert TestRun(source="exit-code", exit_code=0).all_passed
    assert TestRun(outcomes={"a": "failed", "b": "error"}).failed == ["a", "b"]
