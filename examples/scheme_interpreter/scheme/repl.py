"""A read-eval-print loop."""

import sys

from scheme.evaluator import evaluate, global_env
from scheme.printer import to_string
from scheme.reader import parse
from scheme.types import SchemeError


def repl(lines, out=sys.stdout, prompt="scheme> "):
    """Evaluate each input line, printing results and errors; returns the number of errors."""
    env = global_env()
    errors = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            for expr in parse(line):
                text = to_string(evaluate(expr, env))
                if text:
                    out.write(text + "\n")
        except SchemeError as e:
            errors += 1
            out.write(f"error: {e}\n")
    return errors


def main():
    return 1 if repl(sys.stdin) else 0


if __name__ == "__main__":
    sys.exit(main())
