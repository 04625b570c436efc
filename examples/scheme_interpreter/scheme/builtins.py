"""Primitive procedures."""

import functools
import operator

from scheme.types import NIL, Pair, SchemeError, Symbol, from_python_list


def check_numbers(name, args):
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            raise SchemeError(f"{name}: not a number: {arg!r}")


def add(*args):
    check_numbers("+", args)
    return sum(args)


def sub(*args):
    check_numbers("-", args)
    if not args:
        raise SchemeError("-: needs at least one argument")
    if len(args) == 1:
        return -args[0]
    result = args[0]
    for arg in args[1:]:
        result -= arg
    return result


def mul(*args):
    check_numbers("*", args)
    return functools.reduce(operator.mul, args, 1)


def div(*args):
    check_numbers("/", args)
    if not args:
        raise SchemeError("/: needs at least one argument")
    if len(args) == 1:
        args = (1, args[0])
    result = args[0]
    for arg in args[1:]:
        if arg == 0:
            raise SchemeError("/: division by zero")
        result = result / arg
    if isinstance(result, float) and result.is_integer() and all(isinstance(a, int) for a in args):
        return int(result)
    return result


def quotient(a, b):
    if b == 0:
        raise SchemeError("quotient: division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def remainder(a, b):
    if b == 0:
        raise SchemeError("remainder: division by zero")
    return a - b * quotient(a, b)


def modulo(a, b):
    if b == 0:
        raise SchemeError("modulo: division by zero")
    return a % b


def compare(name, op):
    def compare_all(*args):
        check_numbers(name, args)
        return all(op(a, b) for a, b in zip(args, args[1:]))

    compare_all.__name__ = name
    return compare_all


def cons(a, b):
    return Pair(a, b)


def car(pair):
    if not isinstance(pair, Pair):
        raise SchemeError("car: not a pair")
    return pair.car


def cdr(pair):
    if not isinstance(pair, Pair):
        raise SchemeError("cdr: not a pair")
    return pair.cdr


def make_list(*args):
    return from_python_list(list(args))


def length(lst):
    count = 0
    while isinstance(lst, Pair):
        count += 1
        lst = lst.cdr
    if lst is not NIL:
        raise SchemeError("length: not a proper list")
    return count


def append(*lists):
    if not lists:
        return NIL
    items = []
    for lst in lists[:-1]:
        items.extend(lst)
    return from_python_list(items, lists[-1])


def reverse(lst):
    result = NIL
    for item in lst:
        result = Pair(item, result)
    return result


def is_null(x):
    return x is NIL


def is_pair(x):
    return isinstance(x, Pair)


def is_list(x):
    while isinstance(x, Pair):
        x = x.cdr
    return x is NIL


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_symbol(x):
    return isinstance(x, Symbol)


def is_procedure(x):
    return callable(x)


def is_eq(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and type(a) is type(b)
    return a is b


def is_equal(a, b):
    if isinstance(a, Pair) and isinstance(b, Pair):
        return is_equal(a.car, b.car) and is_equal(a.cdr, b.cdr)
    return a == b and type(a) is type(b)


def logical_not(x):
    return x is False


def min_(*args):
    check_numbers("min", args)
    return min(args)


def max_(*args):
    check_numbers("max", args)
    return max(args)


def abs_(x):
    check_numbers("abs", [x])
    return -x if x < 0 else x


def list_ref(lst, k):
    for _ in range(k):
        if not isinstance(lst, Pair):
            raise SchemeError("list-ref: index out of range")
        lst = lst.cdr
    if not isinstance(lst, Pair):
        raise SchemeError("list-ref: index out of range")
    return lst.car


def builtins():
    """The global bindings, name -> procedure."""
    return {
        "+": add,
        "-": sub,
        "*": mul,
        "/": div,
        "quotient": quotient,
        "remainder": remainder,
        "modulo": modulo,
        "=": compare("=", operator.eq),
        "<": compare("<", operator.lt),
        ">": compare(">", operator.gt),
        "<=": compare("<=", operator.le),
        ">=": compare(">=", operator.ge),
        "cons": cons,
        "car": car,
        "cdr": cdr,
        "list": make_list,
        "length": length,
        "append": append,
        "reverse": reverse,
        "list-ref": list_ref,
        "null?": is_null,
        "pair?": is_pair,
        "list?": is_list,
        "number?": is_number,
        "symbol?": is_symbol,
        "procedure?": is_procedure,
        "eq?": is_eq,
        "eqv?": is_eq,
        "equal?": is_equal,
        "not": logical_not,
        "min": min_,
        "max": max_,
        "abs": abs_,
    }
