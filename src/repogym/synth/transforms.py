"""AST transforms of Python source that splice text by node positions.

Each transform yields new file contents in which only the lines of the transformed node change; the rest of
the file keeps its exact bytes (comments, formatting). Nothing is ever re-printed from the AST.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Stmt = ast.stmt


@dataclass(frozen=True)
class Edit:
    """One transformed version of a file."""

    transform: str
    qualname: str
    lineno: int
    content: str


class Source:
    """A file's text with conversions between AST positions and string offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        """AST columns count UTF-8 bytes; convert to a string offset."""
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        n: ast.expr = node  # type: ignore[assignment]
        return self.offset(n.lineno, n.col_offset), self.offset(n.end_lineno or n.lineno, n.end_col_offset or 0)

    def seg(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.text[a:b]

    def replace(self, a: int, b: int, new: str) -> str:
        return self.text[:a] + new + self.text[b:]

    def replace_lines(self, first: int, last: int, new_lines: list[str]) -> str:
        """Replace whole lines first..last (1-based, inclusive)."""
        return "".join(self.lines[: first - 1] + new_lines + self.lines[last:])

    def indent(self, lineno: int) -> str:
        line = self.lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]


def first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def owns_lines(src: Source, body: list[Stmt], i: int) -> bool:
    """Whether statement i of body sits on lines no other statement shares (no ';', no inline block)."""
    s = body[i]
    end = s.end_lineno or s.lineno
    if i > 0 and (body[i - 1].end_lineno or 0) >= first_line(s):
        return False
    if i + 1 < len(body) and first_line(body[i + 1]) <= end:
        return False
    a = src.offset(first_line(s), 0)
    return src.text[a : src.offset(s.lineno, s.col_offset)].strip() == "" or bool(getattr(s, "decorator_list", []))


def remove_stmt(src: Source, body: list[Stmt], i: int) -> str | None:
    """Delete statement i; a body left empty gets `pass`."""
    if not owns_lines(src, body, i):
        return None
    s = body[i]
    new = [] if len(body) > 1 else [f"{src.indent(s.lineno)}pass\n"]
    last = s.end_lineno or s.lineno
    if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and i + 1 < len(body):
        while last < len(src.lines) and not src.lines[last].strip():
            last += 1  # a removed definition takes its trailing blank lines along
    return src.replace_lines(first_line(s), last, new)


def _bodies(node: ast.AST) -> Iterator[list[Stmt]]:
    for name in ("body", "orelse", "finalbody"):
        body = getattr(node, name, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            yield body
    for h in getattr(node, "handlers", []):
        yield h.body


def statement_bodies(func: ast.AST) -> Iterator[list[Stmt]]:
    """Every statement list inside a function, not descending into nested functions or classes."""
    stack = [func]
    while stack:
        node = stack.pop()
        for body in _bodies(node):
            yield body
            stack.extend(s for s in body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))


def expressions(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """Every node in the function body, not descending into nested functions or classes."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                stack.append(child)


def is_docstring(body: list[Stmt], i: int) -> bool:
    s = body[i]
    return i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)


# --- statement transforms -------------------------------------------------------------------------------


def remove_kind(kinds: tuple[type, ...]) -> Callable[[Source, ast.FunctionDef], Iterator[str]]:
    def transform(src: Source, func: ast.FunctionDef) -> Iterator[str]:
        for body in statement_bodies(func):
            for i, s in enumerate(body):
                if isinstance(s, kinds) and not is_docstring(body, i):
                    new = remove_stmt(src, body, i)
                    if new is not None:
                        yield new

    return transform


def remove_wrapper(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Replace a with/try block by its body, dedented to the block's level."""
    for body in statement_bodies(func):
        for i, s in enumerate(body):
            if not isinstance(s, ast.With | ast.Try) or not owns_lines(src, body, i):
                continue
            inner = s.body
            if inner[0].lineno == s.lineno:
                continue
            outer, deeper = src.indent(s.lineno), src.indent(inner[0].lineno)
            lines = src.lines[first_line(inner[0]) - 1 : inner[-1].end_lineno or inner[-1].lineno]
            new = [outer + line[len(deeper) :] if line.startswith(deeper) else line for line in lines]
            yield src.replace_lines(s.lineno, s.end_lineno or s.lineno, new)


def shuffle_statements(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Swap two adjacent statements (never a return or the docstring)."""
    for body in statement_bodies(func):
        for i in range(len(body) - 1):
            a, b = body[i], body[i + 1]
            if is_docstring(body, i) or isinstance(a, ast.Return) or isinstance(b, ast.Return | ast.Raise):
                continue
            if not (owns_lines(src, body, i) and owns_lines(src, body, i + 1)):
                continue
            la = src.lines[first_line(a) - 1 : a.end_lineno]
            lb = src.lines[first_line(b) - 1 : b.end_lineno]
            if "".join(la).strip() != "".join(lb).strip():
                yield src.replace_lines(first_line(a), b.end_lineno or b.lineno, lb + la)


# --- expression transforms ------------------------------------------------------------------------------

_OP_SWAP: dict[type, str] = {
    ast.Add: "-", ast.Sub: "+", ast.Mult: "//", ast.Div: "*", ast.FloorDiv: "/", ast.Mod: "//",
    ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
    ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in",
    ast.BitAnd: "|", ast.BitOr: "&",
}  # fmt: skip
_OP_TEXT: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.BitAnd: "&", ast.BitOr: "|",
}  # fmt: skip
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _binary(node: ast.AST) -> tuple[ast.expr, ast.AST, ast.expr] | None:
    if isinstance(node, ast.BinOp):
        return node.left, node.op, node.right
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return node.left, node.ops[0], node.comparators[0]
    return None


def change_operator(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        parts = _binary(node)
        if not parts or type(parts[1]) not in _OP_SWAP:
            continue
        left, op, right = parts
        a, b = src.span(left)[1], src.span(right)[0]
        between = src.text[a:b]
        old = _OP_TEXT[type(op)]
        at = between.find(old)
        if at >= 0:
            yield src.replace(a + at, a + at + len(old), _OP_SWAP[type(op)])


def swap_operands(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        parts = _binary(node)
        if not parts or not isinstance(parts[1], _NON_COMMUTATIVE):
            continue
        left, _, right = parts
        (la, lb), (ra, rb) = src.span(left), src.span(right)
        if src.seg(left) != src.seg(right):
            yield src.text[:la] + src.seg(right) + src.text[lb:ra] + src.seg(left) + src.text[rb:]


def invert_if(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        if isinstance(node, ast.If | ast.While | ast.IfExp):
            a, b = src.span(node.test)
            if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
                yield src.replace(a, b, src.seg(node.test.operand))
            else:
                yield src.replace(a, b, f"not ({src.seg(node.test)})")


def break_chain(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Drop the last operand of a boolean chain, or the last link of a chained comparison."""
    for node in expressions(func):
        if isinstance(node, ast.BoolOp) and len(node.values) >= 2:
            a, b = src.span(node)
            yield src.replace(a, b, src.text[a : src.span(node.values[-2])[1]])
        elif isinstance(node, ast.Compare) and len(node.ops) >= 2:
            a, b = src.span(node)
            yield src.replace(a, b, src.text[a : src.span(node.comparators[-2])[1]])


def change_constant(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            a, b = src.span(node)
            if src.text[a:b].isdigit():
                yield src.replace(a, b, str(node.value + 1))


FUNCTION_TRANSFORMS: dict[str, Callable[[Source, ast.FunctionDef], Iterator[str]]] = {
    "remove_conditional": remove_kind((ast.If,)),
    "remove_loop": remove_kind((ast.For, ast.While, ast.AsyncFor)),
    "remove_assignment": remove_kind((ast.Assign, ast.AugAssign, ast.AnnAssign)),
    "remove_wrapper": remove_wrapper,
    "invert_if": invert_if,
    "change_operator": change_operator,
    "swap_operands": swap_operands,
    "break_chain": break_chain,
    "change_constant": change_constant,
    "shuffle_statements": shuffle_statements,
}


# --- class transforms -----------------------------------------------------------------------------------


def remove_methods(src: Source, cls: ast.ClassDef) -> Iterator[tuple[str, str]]:
    methods = [i for i, s in enumerate(cls.body) if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
    if len(methods) < 2:
        return
    for i in methods:
        new = remove_stmt(src, cls.body, i)
        if new is not None:
            yield f"{cls.name}.{cls.body[i].name}", new  # type: ignore[attr-defined]


def remove_base(src: Source, cls: ast.ClassDef) -> Iterator[tuple[str, str]]:
    items: list[ast.AST] = [*cls.bases, *cls.keywords]
    for base in cls.bases:
        rest = [src.seg(x) if not isinstance(x, ast.keyword) else _kw(src, x) for x in items if x is not base]
        first, last = items[0], items[-1]
        a = src.span(first)[0] if not isinstance(first, ast.keyword) else _kw_span(src, first)[0]
        b = src.span(last)[1] if not isinstance(last, ast.keyword) else _kw_span(src, last)[1]
        if rest:
            yield f"{cls.name}({src.seg(base)})", src.replace(a, b, ", ".join(rest))
        else:
            open_ = src.text.rfind("(", 0, a)
            close = src.text.find(")", b)
            yield f"{cls.name}({src.seg(base)})", src.replace(open_, close + 1, "")


def _kw_span(src: Source, kw: ast.keyword) -> tuple[int, int]:
    return src.span(kw)


def _kw(src: Source, kw: ast.keyword) -> str:
    a, b = _kw_span(src, kw)
    return src.text[a:b]


CLASS_TRANSFORMS: dict[str, Callable[[Source, ast.ClassDef], Iterator[tuple[str, str]]]] = {
    "remove_methods": remove_methods,
    "remove_base": remove_base,
}

ALL_TRANSFORMS = (*FUNCTION_TRANSFORMS, *CLASS_TRANSFORMS)


def functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) of every function and method, outermost first."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop(0)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield prefix + child.name, child
                stack.append((prefix + child.name + ".", child))
            elif isinstance(child, ast.ClassDef):
                stack.append((prefix + child.name + ".", child))


def edits(text: str) -> Iterator[Edit]:
    """Every transformed version of ``text`` that still parses and differs from it."""
    src = Source(text)
    tree = ast.parse(text)
    for qualname, func in functions(tree):
        for name, transform in FUNCTION_TRANSFORMS.items():
            for new in transform(src, func):  # type: ignore[arg-type]
                if _valid(new, text):
                    yield Edit(name, qualname, func.lineno, new)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for name, ctransform in CLASS_TRANSFORMS.items():
                for qual, new in ctransform(src, node):
                    if _valid(new, text):
                        yield Edit(name, qual, node.lineno, new)


def _valid(new: str, old: str) -> bool:
    if new == old:
        return False
    try:
        compile(new, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True
