"""Tokenizer and parser for S-expressions."""

import re

from scheme.types import NIL, Pair, SchemeError, from_python_list, intern

TOKEN_RE = re.compile(r"""\s*(?:(;[^\n]*)|(,@|[()'`,])|("(?:\\.|[^\\"])*")|([^\s()'`,";]+))""")
QUOTES = {"'": "quote", "`": "quasiquote", ",": "unquote", ",@": "unquote-splicing"}


def tokenize(text):
    """Split source text into tokens, dropping comments and whitespace."""
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise SchemeError(f"unexpected character at {pos}: {text[pos]!r}")
        pos = m.end()
        comment, punct, string, atom = m.groups()
        if comment:
            continue
        tokens.append(punct or string or atom)
    return tokens


def parse_atom(token):
    """Turn one token into a number, boolean, string or symbol."""
    if token == "#t":
        return True
    if token == "#f":
        return False
    if token.startswith('"'):
        return token[1:-1].encode().decode("unicode_escape")
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return intern(token.lower())


def read_from(tokens, index):
    """Read one expression starting at ``tokens[index]``; return it and the next index."""
    if index >= len(tokens):
        raise SchemeError("unexpected end of input")
    token = tokens[index]
    if token in QUOTES:
        expr, index = read_from(tokens, index + 1)
        return from_python_list([intern(QUOTES[token]), expr]), index
    if token == "(":
        items = []
        index += 1
        while index < len(tokens) and tokens[index] != ")":
            if tokens[index] == ".":
                tail, index = read_from(tokens, index + 1)
                if index >= len(tokens) or tokens[index] != ")":
                    raise SchemeError("expected ) after dotted tail")
                return from_python_list(items, tail), index + 1
            expr, index = read_from(tokens, index)
            items.append(expr)
        if index >= len(tokens):
            raise SchemeError("missing )")
        return from_python_list(items), index + 1
    if token == ")":
        raise SchemeError("unexpected )")
    return parse_atom(token), index + 1


def parse(text):
    """Parse every expression in ``text`` and return them as a Python list."""
    tokens = tokenize(text)
    exprs = []
    index = 0
    while index < len(tokens):
        expr, index = read_from(tokens, index)
        exprs.append(expr)
    return exprs


def parse_one(text):
    """Parse exactly one expression."""
    exprs = parse(text)
    if len(exprs) != 1:
        raise SchemeError(f"expected one expression, got {len(exprs)}")
    return exprs[0]


__all__ = ["NIL", "Pair", "parse", "parse_atom", "parse_one", "read_from", "tokenize"]
