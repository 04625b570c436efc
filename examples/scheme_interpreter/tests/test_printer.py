import io

from scheme.evaluator import run
from scheme.printer import to_string
from scheme.repl import repl


def test_print_booleans():
    assert to_string(True) == "#t" and to_string(False) == "#f"


def test_print_list():
    assert to_string(run("'(1 (2 3) x)")) == "(1 (2 3) x)"


def test_print_dotted():
    assert to_string(run("(cons 1 (cons 2 3))")) == "(1 2 . 3)"


def test_print_string_escapes():
    assert to_string('say "hi"') == '"say \\"hi\\""'


def test_print_float():
    assert to_string(2.0) == "2.0"
    assert to_string(0.5) == "0.5"


def test_print_empty_list():
    assert to_string(run("'()")) == "()"


def test_repl_prints_results_and_errors():
    out = io.StringIO()
    errors = repl(["(define x 2)", "(* x 21)", "(car '())", ""], out=out)
    assert errors == 1
    lines = out.getvalue().splitlines()
    assert lines == ["42", "error: car: not a pair"]


def test_package_version_metadata():
    from importlib.metadata import version

    assert version("scheme-interpreter") == "0.3.0"
