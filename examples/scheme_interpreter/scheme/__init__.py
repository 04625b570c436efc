"""A small Scheme interpreter."""

from scheme.evaluator import evaluate, run
from scheme.printer import to_string
from scheme.reader import parse, tokenize

__all__ = ["evaluate", "parse", "run", "to_string", "tokenize"]
