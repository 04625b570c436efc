import pytest

from scheme.evaluator import run
from scheme.printer import to_string
from scheme.types import SchemeError


def ev(src):
    return to_string(run(src))


def test_subtraction_many():
    assert run("(- 10 1 2 3)") == 4


def test_negation():
    assert run("(- 5)") == -5


def test_multiplication_empty():
    assert run("(*)") == 1


def test_division_exact():
    assert run("(/ 10 2)") == 5 and isinstance(run("(/ 10 2)"), int)


def test_division_inexact():
    assert run("(/ 1 4)") == 0.25


def test_reciprocal():
    assert run("(/ 4)") == 0.25


def test_division_by_zero():
    with pytest.raises(SchemeError, match="division by zero"):
        run("(/ 1 0)")


def test_quotient_negative():
    assert run("(quotient -7 2)") == -3


def test_remainder_sign_follows_dividend():
    assert run("(remainder -7 2)") == -1


def test_modulo_sign_follows_divisor():
    assert run("(modulo -7 2)") == 1


def test_comparison_chain():
    assert run("(< 1 2 3)") is True
    assert run("(< 1 3 2)") is False


def test_greater_equal():
    assert run("(>= 3 3 1)") is True


def test_numeric_equality():
    assert run("(= 2 2 2)") is True


def test_type_error_in_addition():
    with pytest.raises(SchemeError, match="not a number"):
        run("(+ 1 'a)")


def test_cons_car_cdr():
    assert run("(car (cons 1 2))") == 1
    assert run("(cdr (cons 1 2))") == 2


def test_car_of_empty_list():
    with pytest.raises(SchemeError, match="car: not a pair"):
        run("(car '())")


def test_list_and_length():
    assert run("(length (list 1 2 3))") == 3


def test_length_of_empty():
    assert run("(length '())") == 0


def test_append():
    assert ev("(append '(1 2) '(3) '() '(4 5))") == "(1 2 3 4 5)"


def test_reverse():
    assert ev("(reverse '(1 2 3))") == "(3 2 1)"


def test_list_ref():
    assert run("(list-ref '(a b c) 2)") == "c"


def test_list_ref_out_of_range():
    with pytest.raises(SchemeError):
        run("(list-ref '(a) 3)")


def test_predicates():
    assert run("(null? '())") is True
    assert run("(pair? '(1))") is True
    assert run("(list? (cons 1 2))") is False
    assert run("(number? 1)") is True
    assert run("(symbol? 'a)") is True
    assert run("(procedure? car)") is True


def test_eq_on_symbols():
    assert run("(eq? 'a 'a)") is True


def test_equal_on_lists():
    assert run("(equal? '(1 (2 3)) (list 1 (list 2 3)))") is True
    assert run("(equal? '(1 2) '(1 3))") is False


def test_not():
    assert run("(not #f)") is True
    assert run("(not 0)") is False


def test_min_max_abs():
    assert run("(min 3 1 2)") == 1
    assert run("(max 3 1 2)") == 3
    assert run("(abs -4)") == 4
