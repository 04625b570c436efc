"""Lexical environments: frames chained to their enclosing frame."""

from scheme.types import SchemeError


class Environment:
    """A frame of bindings with a link to the enclosing frame."""

    def __init__(self, bindings=None, outer=None):
        self.bindings = dict(bindings or {})
        self.outer = outer

    def find(self, name):
        """The innermost frame that binds ``name``."""
        env = self
        while env is not None:
            if name in env.bindings:
                return env
            env = env.outer
        raise SchemeError(f"unbound variable: {name}")

    def lookup(self, name):
        return self.find(name).bindings[name]

    def define(self, name, value):
        self.bindings[name] = value
        return value

    def set(self, name, value):
        """Assign to an existing binding, in the frame that holds it."""
        self.find(name).bindings[name] = value
        return value

    def extend(self, params, args):
        """A new child frame binding ``params`` to ``args`` (a trailing rest parameter takes the remainder)."""
        bindings = {}
        fixed = list(params)
        rest = None
        if "." in fixed:
            at = fixed.index(".")
            rest = fixed[at + 1]
            fixed = fixed[:at]
        if len(args) < len(fixed) or (rest is None and len(args) > len(fixed)):
            raise SchemeError(f"expected {len(fixed)} arguments, got {len(args)}")
        for name, value in zip(fixed, args):
            bindings[name] = value
        if rest is not None:
            from scheme.types import from_python_list

            bindings[rest] = from_python_list(args[len(fixed):])
        return Environment(bindings, self)
