import pytest

from scheme.evaluator import global_env, run
from scheme.printer import to_string
from scheme.types import SchemeError


def ev(src):
    return to_string(run(src))


def test_number_evaluates_to_itself():
    assert run("5") == 5


def test_addition():
    assert run("(+ 1 2 3)") == 6


def test_nested_arithmetic():
    assert run("(* (+ 1 2) (- 10 4))") == 18


def test_define_variable():
    assert run("(define x 10) (+ x 1)") == 11


def test_define_function():
    assert run("(define (sq x) (* x x)) (sq 7)") == 49


def test_lambda_application():
    assert run("((lambda (a b) (- a b)) 10 3)") == 7


def test_closure_captures_environment():
    src = "(define (adder n) (lambda (x) (+ x n))) (define add5 (adder 5)) (add5 10)"
    assert run(src) == 15


def test_counter_with_set():
    src = """
    (define (make-counter)
      (let ((n 0)) (lambda () (set! n (+ n 1)) n)))
    (define c (make-counter))
    (c) (c) (c)
    """
    assert run(src) == 3


def test_independent_counters():
    src = """
    (define (make-counter) (let ((n 0)) (lambda () (set! n (+ n 1)) n)))
    (define a (make-counter)) (define b (make-counter))
    (a) (a) (b)
    """
    assert run(src) == 1


def test_if_true_branch():
    assert run("(if (< 1 2) 'yes 'no)") == "yes"


def test_if_false_branch():
    assert run("(if (> 1 2) 'yes 'no)") == "no"


def test_if_without_else():
    assert run("(if #f 1)") is None


def test_zero_is_true():
    assert run("(if 0 'true 'false)") == "true"


def test_empty_list_is_true():
    assert run("(if '() 'true 'false)") == "true"


def test_cond_picks_first_true():
    assert run("(cond ((= 1 2) 'a) ((= 1 1) 'b) (else 'c))") == "b"


def test_cond_else():
    assert run("(cond (#f 1) (else 2))") == 2


def test_cond_no_match():
    assert run("(cond (#f 1))") is None


def test_let_binds_in_parallel():
    assert run("(define x 1) (let ((x 2) (y x)) y)") == 1


def test_let_body_sequence():
    assert run("(let ((a 1)) (define b 2) (+ a b))") == 3


def test_begin_returns_last():
    assert run("(begin 1 2 3)") == 3


def test_quote_list():
    assert ev("(quote (1 2 3))") == "(1 2 3)"


def test_recursion_factorial():
    assert run("(define (fact n) (if (= n 0) 1 (* n (fact (- n 1))))) (fact 10)") == 3628800


def test_recursion_fibonacci():
    src = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 15)"
    assert run(src) == 610


def test_mutual_recursion():
    src = """
    (define (even? n) (if (= n 0) #t (odd? (- n 1))))
    (define (odd? n) (if (= n 0) #f (even? (- n 1))))
    (even? 10)
    """
    assert run(src) is True


def test_set_changes_outer_binding():
    assert run("(define x 1) (define (bump) (set! x (+ x 10))) (bump) x") == 11


def test_lexical_not_dynamic_scope():
    src = "(define x 1) (define (get) x) (define (f x) (get)) (f 99)"
    assert run(src) == 1


def test_rest_parameters():
    assert ev("(define (f a . rest) rest) (f 1 2 3)") == "(2 3)"


def test_and_short_circuit():
    assert run("(and 1 #f (car '()))") is False


def test_and_returns_last():
    assert run("(and 1 2 3)") == 3


def test_or_returns_first_true():
    assert run("(or #f 7 (car '()))") == 7


def test_or_all_false():
    assert run("(or #f #f)") is False


def test_unbound_variable():
    with pytest.raises(SchemeError, match="unbound variable: nope"):
        run("nope")


def test_calling_non_procedure():
    with pytest.raises(SchemeError, match="not a procedure"):
        run("(1 2)")


def test_wrong_argument_count():
    with pytest.raises(SchemeError, match="expected 1 arguments"):
        run("(define (f x) x) (f 1 2)")


def test_set_unbound_fails():
    with pytest.raises(SchemeError):
        run("(set! undefined-thing 1)")


def test_map_and_filter():
    assert ev("(map (lambda (x) (* x x)) (filter (lambda (x) (> x 1)) '(1 2 3)))") == "(4 9)"


def test_apply():
    assert run("(apply + '(1 2 3 4))") == 10


def test_shadowing_special_form_name():
    assert run("(define (f if) (if 1)) (f (lambda (x) (+ x 1)))") == 2


def test_global_env_is_fresh():
    env = global_env()
    run("(define y 5)", env)
    assert run("y", env) == 5
    with pytest.raises(SchemeError):
        run("y")


def test_procedure_repr_has_name():
    assert repr(run("(define (hello) 1) hello")) == "#<procedure hello>"


def test_lambda_named_by_define():
    assert repr(run("(define g (lambda () 1)) g")) == "#<procedure g>"
