"""Scheme values that Python has no direct equivalent for."""


class Symbol(str):
    """A Scheme symbol; interned by the reader so that identity comparison works."""

    __slots__ = ()


_symbols = {}


def intern(name):
    """Return the unique Symbol for ``name``."""
    if name not in _symbols:
        _symbols[name] = Symbol(name)
    return _symbols[name]


class SchemeError(Exception):
    """An error raised by a Scheme program or by the interpreter."""


class Nil:
    """The empty list."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __repr__(self):
        return "()"


NIL = Nil()


class Pair:
    """A cons cell."""

    __slots__ = ("car", "cdr")

    def __init__(self, car, cdr):
        self.car = car
        self.cdr = cdr

    def __iter__(self):
        node = self
        while isinstance(node, Pair):
            yield node.car
            node = node.cdr
        if node is not NIL:
            raise SchemeError("not a proper list")

    def __len__(self):
        return sum(1 for _ in self)

    def __eq__(self, other):
        return isinstance(other, Pair) and self.car == other.car and self.cdr == other.cdr

    def __hash__(self):
        return id(self)


def from_python_list(items, tail=NIL):
    """Build a Scheme list from a Python sequence."""
    result = tail
    for item in reversed(items):
        result = Pair(item, result)
    return result


def to_python_list(value):
    """The elements of a proper Scheme list as a Python list."""
    return list(value)
