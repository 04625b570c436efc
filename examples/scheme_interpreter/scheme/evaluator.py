"""The evaluator: special forms, closures and procedure application."""

from scheme.builtins import builtins
from scheme.environment import Environment
from scheme.reader import parse
from scheme.types import NIL, Pair, SchemeError, Symbol, from_python_list, intern


class Procedure:
    """A user-defined procedure: parameters, body and the environment it closes over."""

    def __init__(self, params, body, env, name="lambda"):
        self.params = params
        self.body = body
        self.env = env
        self.name = name

    def __call__(self, *args):
        env = self.env.extend(self.params, list(args))
        result = None
        for expr in self.body:
            result = evaluate(expr, env)
        return result

    def __repr__(self):
        return f"#<procedure {self.name}>"


def global_env():
    """A fresh global environment with every primitive bound."""
    env = Environment({intern(k): v for k, v in builtins().items()})
    env.define(intern("apply"), lambda proc, args: proc(*list(args)))
    env.define(intern("map"), lambda proc, *lists: from_python_list([proc(*xs) for xs in zip(*lists)]))
    env.define(intern("filter"), lambda pred, lst: from_python_list([x for x in lst if is_true(pred(x))]))
    return env


def is_true(value):
    """Only #f is false in Scheme."""
    return value is not False


def evaluate(expr, env):
    """Evaluate one expression in ``env``."""
    if isinstance(expr, Symbol):
        return env.lookup(expr)
    if not isinstance(expr, Pair):
        return expr
    head = expr.car
    if isinstance(head, Symbol) and head in SPECIAL_FORMS and head not in env.bindings:
        return SPECIAL_FORMS[head](expr.cdr, env)
    proc = evaluate(head, env)
    args = [evaluate(arg, env) for arg in expr.cdr]
    if not callable(proc):
        raise SchemeError(f"not a procedure: {proc!r}")
    return proc(*args)


def eval_quote(args, env):
    return args.car


def eval_if(args, env):
    items = list(args)
    if len(items) not in (2, 3):
        raise SchemeError("if: expected (if test then [else])")
    if is_true(evaluate(items[0], env)):
        return evaluate(items[1], env)
    if len(items) == 3:
        return evaluate(items[2], env)
    return None


def eval_define(args, env):
    target = args.car
    if isinstance(target, Pair):
        name = target.car
        proc = Procedure(list_params(target.cdr), list(args.cdr), env, str(name))
        env.define(name, proc)
        return None
    if not isinstance(target, Symbol):
        raise SchemeError("define: expected a symbol")
    value = evaluate(args.cdr.car, env)
    if isinstance(value, Procedure) and value.name == "lambda":
        value.name = str(target)
    env.define(target, value)
    return None


def list_params(params):
    """Parameters as a Python list; a dotted tail becomes '.' followed by the rest name."""
    result = []
    while isinstance(params, Pair):
        result.append(params.car)
        params = params.cdr
    if params is not NIL:
        result.extend([".", params])
    return result


def eval_lambda(args, env):
    return Procedure(list_params(args.car), list(args.cdr), env)


def eval_set(args, env):
    name = args.car
    return env.set(name, evaluate(args.cdr.car, env))


def eval_begin(args, env):
    result = None
    for expr in args:
        result = evaluate(expr, env)
    return result


def eval_let(args, env):
    bindings = list(args.car)
    names = [b.car for b in bindings]
    values = [evaluate(b.cdr.car, env) for b in bindings]
    inner = env.extend(names, values)
    result = None
    for expr in args.cdr:
        result = evaluate(expr, inner)
    return result


def eval_cond(args, env):
    for clause in args:
        test = clause.car
        if test == intern("else") or is_true(evaluate(test, env)):
            result = True if test != intern("else") else None
            for expr in clause.cdr:
                result = evaluate(expr, env)
            return result
    return None


def eval_and(args, env):
    result = True
    for expr in args:
        result = evaluate(expr, env)
        if not is_true(result):
            return False
    return result


def eval_or(args, env):
    for expr in args:
        result = evaluate(expr, env)
        if is_true(result):
            return result
    return False


SPECIAL_FORMS = {
    intern("quote"): eval_quote,
    intern("if"): eval_if,
    intern("define"): eval_define,
    intern("lambda"): eval_lambda,
    intern("set!"): eval_set,
    intern("begin"): eval_begin,
    intern("let"): eval_let,
    intern("cond"): eval_cond,
    intern("and"): eval_and,
    intern("or"): eval_or,
}


def run(source, env=None):
    """Evaluate every expression in ``source``; return the value of the last one."""
    env = env if env is not None else global_env()
    result = None
    for expr in parse(source):
        result = evaluate(expr, env)
    return result
