import pytest

from scheme.printer import to_string
from scheme.reader import parse, parse_atom, parse_one, tokenize
from scheme.types import NIL, Pair, SchemeError, Symbol


def test_tokenize_simple():
    assert tokenize("(+ 1 2)") == ["(", "+", "1", "2", ")"]


def test_tokenize_drops_comments():
    assert tokenize("(a ; comment\n b)") == ["(", "a", "b", ")"]


def test_tokenize_strings_keep_spaces():
    assert tokenize('(display "a b")') == ["(", "display", '"a b"', ")"]


def test_tokenize_quote_marks():
    assert tokenize("'(a `b ,c ,@d)") == ["'", "(", "a", "`", "b", ",", "c", ",@", "d", ")"]


def test_tokenize_empty():
    assert tokenize("   ") == []


def test_parse_atom_integer():
    assert parse_atom("42") == 42 and isinstance(parse_atom("42"), int)


def test_parse_atom_negative():
    assert parse_atom("-7") == -7


def test_parse_atom_float():
    assert parse_atom("2.5") == 2.5


def test_parse_atom_booleans():
    assert parse_atom("#t") is True
    assert parse_atom("#f") is False


def test_parse_atom_symbol_is_lowercased():
    sym = parse_atom("Foo")
    assert isinstance(sym, Symbol) and sym == "foo"


def test_parse_atom_string_escape():
    assert parse_atom('"a\\nb"') == "a\nb"


def test_parse_nested_list():
    expr = parse_one("(a (b c) d)")
    assert to_string(expr) == "(a (b c) d)"


def test_parse_empty_list():
    assert parse_one("()") is NIL


def test_parse_dotted_pair():
    expr = parse_one("(1 . 2)")
    assert isinstance(expr, Pair) and expr.car == 1 and expr.cdr == 2


def test_parse_quote_shorthand():
    assert to_string(parse_one("'x")) == "(quote x)"


def test_parse_many_expressions():
    assert len(parse("1 2 (3)")) == 3


def test_parse_missing_close_paren():
    with pytest.raises(SchemeError, match="missing"):
        parse("(a b")


def test_parse_unexpected_close_paren():
    with pytest.raises(SchemeError, match="unexpected"):
        parse(")")


def test_parse_one_rejects_two():
    with pytest.raises(SchemeError):
        parse_one("1 2")


def test_symbols_are_interned():
    a = parse_one("abc")
    b = parse_one("abc")
    assert a is b
