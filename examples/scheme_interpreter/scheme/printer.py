"""Render Scheme values as Scheme source text."""

from scheme.types import NIL, Pair, Symbol


def to_string(value):
    """The external representation of ``value``."""
    if value is True:
        return "#t"
    if value is False:
        return "#f"
    if value is None:
        return ""
    if value is NIL:
        return "()"
    if isinstance(value, Symbol):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    if isinstance(value, Pair):
        return pair_to_string(value)
    return str(value)


def pair_to_string(pair):
    """A list, or a dotted pair when the last tail is not the empty list."""
    parts = []
    node = pair
    while isinstance(node, Pair):
        parts.append(to_string(node.car))
        node = node.cdr
    if node is not NIL:
        parts.append(".")
        parts.append(to_string(node))
    return "(" + " ".join(parts) + ")"
