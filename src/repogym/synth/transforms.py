"""AST transforms of Python source that splice text by node positions.

Each transform yields new file contents in which only the lines of the transformed node change; the rest of
the file keeps its exact bytes (comments, formatting). Nothing is ever re-printed from the AST.

The results become bugs an agent has to find, so every changed line must read like code a person wrote: no
`not (...)` wrappers, no lone `pass`, no expression folded onto one line, no `"-" // 40`.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeGuard

Stmt = ast.stmt


@dataclass(frozen=True)
class Edit:
    """One transformed version of a file."""

    transform: str
    qualname: str
    lineno: int
    content: str


def split_lines(text: str) -> list[str]:
    """Lines as the tokenizer counts them: str.splitlines would also split at form feeds and other breaks."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


class Source:
    """A file's text with conversions between AST positions and string offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = split_lines(text)
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
        """Replace whole lines first..last (1-based, inclusive); last = first - 1 inserts before line first."""
        return "".join(self.lines[: first - 1] + new_lines + self.lines[last:])

    def indent(self, lineno: int) -> str:
        line = self.lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def eol(self, lineno: int) -> str:
        """The line's own ending, so that an inserted line matches a CRLF file."""
        line = self.lines[lineno - 1]
        return line[len(line.rstrip("\r\n")) :] or "\n"


def first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def one_line(node: ast.AST) -> bool:
    return node.lineno == node.end_lineno  # type: ignore[attr-defined]


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
    """Delete statement i, never the last one of its body: the `pass` it would need gives the change away."""
    if len(body) < 2 or not owns_lines(src, body, i):
        return None
    s = body[i]
    last = s.end_lineno or s.lineno
    if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and i + 1 < len(body):
        while last < len(src.lines) and not src.lines[last].strip():
            last += 1  # a removed definition takes its trailing blank lines along
    return src.replace_lines(first_line(s), last, [])


def _bodies(node: ast.AST) -> Iterator[list[Stmt]]:
    for name in ("body", "orelse", "finalbody"):
        body = getattr(node, name, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            yield body
    for part in (*getattr(node, "handlers", []), *getattr(node, "cases", [])):
        yield part.body


def statement_bodies(func: ast.AST) -> Iterator[list[Stmt]]:
    """Every statement list inside a function, not descending into nested functions or classes."""
    stack = [func]
    while stack:
        node = stack.pop()
        for body in _bodies(node):
            yield body
            stack.extend(s for s in body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))


def expressions(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """Every node in the function body, not descending into nested functions, classes or annotations (changing
    an annotation changes nothing the tests see)."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if child is getattr(node, "annotation", None):
                continue
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                stack.append(child)


def is_docstring(body: list[Stmt], i: int) -> bool:
    s = body[i]
    return i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)


def _swap(src: Source, x: ast.AST, y: ast.AST) -> str:
    """Exchange the texts of two nodes, x before y."""
    (xa, xb), (ya, yb) = src.span(x), src.span(y)
    return src.text[:xa] + src.seg(y) + src.text[xb:ya] + src.seg(x) + src.text[yb:]


# --- statement transforms -------------------------------------------------------------------------------

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_JUMPS = (ast.Return, ast.Raise, ast.Break, ast.Continue)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _scope_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a statement that act in its own scope: not the body of a function, class or lambda it
    defines (that runs later, in a scope of its own), nor a comprehension's variables (they do not leak)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, _SCOPES):
            stack.extend(getattr(n, "decorator_list", []))
        elif isinstance(n, ast.comprehension):
            stack.extend([n.iter, *n.ifs])
        else:
            stack.extend(ast.iter_child_nodes(n))


def _stored(node: ast.AST) -> set[str]:
    """Names and attribute paths (``self.x``) a statement assigns; a definition assigns its name."""
    defined = {node.name} if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else set()
    return defined | {
        ast.unparse(n)
        for n in _scope_nodes(node)
        if isinstance(n, ast.Name | ast.Attribute) and isinstance(n.ctx, ast.Store)
    }


def _loaded(node: ast.AST) -> set[str]:
    """Names and attribute paths a statement reads."""
    return {
        ast.unparse(n)
        for n in _scope_nodes(node)
        if isinstance(n, ast.Name | ast.Attribute) and isinstance(n.ctx, ast.Load)
    }


def remove_kind(kinds: tuple[type, ...]) -> Callable[[Source, ast.FunctionDef], Iterator[str]]:
    def transform(src: Source, func: ast.FunctionDef) -> Iterator[str]:
        for body in statement_bodies(func):
            for i, s in enumerate(body):
                if isinstance(s, kinds) and not is_docstring(body, i):
                    new = remove_stmt(src, body, i)
                    if new is not None:
                        yield new

    return transform


def _locks(node: ast.With) -> bool:
    """Whether a `with` takes a lock (`with self._lock:`): without it, only code racing another thread tells."""
    return any("lock" in ast.unparse(item.context_expr).lower() for item in node.items)


def remove_wrapper(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Replace a with/try block by its body, dedented to the block's level; never a lock's `with` (tests seldom
    race threads, so no test would notice)."""
    for body in statement_bodies(func):
        for i, s in enumerate(body):
            if not isinstance(s, ast.With | ast.Try) or not owns_lines(src, body, i):
                continue
            if isinstance(s, ast.With) and _locks(s):
                continue
            inner = s.body
            if inner[0].lineno == s.lineno:
                continue
            outer, deeper = src.indent(s.lineno), src.indent(inner[0].lineno)
            lines = src.lines[first_line(inner[0]) - 1 : inner[-1].end_lineno or inner[-1].lineno]
            new = [outer + line[len(deeper) :] if line.startswith(deeper) else line for line in lines]
            yield src.replace_lines(s.lineno, s.end_lineno or s.lineno, new)


def shuffle_statements(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Swap two adjacent statements that depend on each other (one assigns what the other reads or assigns; never
    a return or the docstring); blank lines between them stay put, and a comment between them (which belongs to
    the second) keeps them as they are."""
    for body in statement_bodies(func):
        for i in range(len(body) - 1):
            a, b = body[i], body[i + 1]
            if is_docstring(body, i) or isinstance(a, ast.Return) or isinstance(b, _JUMPS):
                continue  # b first would leave a unreachable
            if not (owns_lines(src, body, i) and owns_lines(src, body, i + 1)):
                continue
            if not (_stored(a) & (_loaded(b) | _stored(b)) or _stored(b) & _loaded(a)):
                continue  # independent statements: the swap changes nothing a test can see
            la = src.lines[first_line(a) - 1 : a.end_lineno]
            gap = src.lines[a.end_lineno or a.lineno : first_line(b) - 1]
            lb = src.lines[first_line(b) - 1 : b.end_lineno]
            if "".join(la).strip() != "".join(lb).strip() and not "".join(gap).strip():
                yield src.replace_lines(first_line(a), b.end_lineno or b.lineno, lb + gap + la)


def _bound(nodes: list[Stmt], name: str) -> bool:
    """Whether one of these statements assigns name."""
    return any(
        isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for s in nodes for n in ast.walk(s)
    )


def _returned_name(func: ast.FunctionDef, body: list[Stmt], before: int) -> str | None:
    """NAME when body ends with `return NAME` and NAME is a parameter or bound by body[:before + 1], so that
    returning it there is no UnboundLocalError."""
    last = body[-1]
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)):
        return None
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
    name = last.value.id
    return name if name in {a.arg for a in params} or _bound(body[: before + 1], name) else None


def _breaks(body: list[Stmt]) -> Iterator[ast.Break]:
    """The `break`s that leave the loop whose body this is (not those of nested loops)."""
    stack = list(body)
    while stack:
        s = stack.pop()
        if isinstance(s, ast.Break):
            yield s
        elif not isinstance(s, (*_LOOPS, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for inner in _bodies(s):
                stack.extend(inner)


def _return_after_first_pass(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """`return NAME` as the loop body's last statement when the loop's body goes on to `return NAME`."""
    for body in statement_bodies(func):
        for i, loop in enumerate(body[:-1]):
            name = _returned_name(func, body, i)
            if not name or not isinstance(loop, _LOOPS) or loop.body[0].lineno == loop.lineno:
                continue
            last = loop.body[-1]
            if isinstance(last, _JUMPS):
                continue  # the inserted line would be unreachable
            end = last.end_lineno or last.lineno
            line = f"{src.indent(loop.body[0].lineno)}return {name}{src.eol(end)}"
            yield src.replace_lines(end + 1, end, [line])


def _break_to_return(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """`break` becomes `return NAME` when the function ends with `return NAME`, skipping the code after the loop."""
    for body in statement_bodies(func):
        for i, loop in enumerate(body):
            if not isinstance(loop, _LOOPS) or (body is func.body and i == len(body) - 2):
                continue  # right before the final return, the two mean the same
            top = max(k for k, s in enumerate(func.body) if s.lineno <= loop.lineno)  # holds the loop
            name = _returned_name(func, func.body, top)
            for brk in _breaks(loop.body) if name else []:
                yield src.replace(*src.span(brk), f"return {name}")


def early_return(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Leave a loop's function too early: after the first pass, or at its `break`."""
    yield from _return_after_first_pass(src, func)
    yield from _break_to_return(src, func)


def _is_generator(func: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Yield | ast.YieldFrom) for n in expressions(func))


def _guarded_raise(node: ast.AST) -> ast.Raise | None:
    """The `raise` of an `if` whose body is nothing else."""
    if isinstance(node, ast.If) and len(node.body) == 1 and isinstance(node.body[0], ast.Raise):
        return node.body[0]
    return None


def swallow_exception(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """A guard's `raise` becomes `return None`: the function quietly returns where it should fail."""
    if _is_generator(func):
        return  # a generator's `return None` reads as a plain stop
    for node in expressions(func):
        raise_ = _guarded_raise(node)
        if raise_ and owns_lines(src, [raise_], 0):
            yield src.replace(*src.span(raise_), "return None")


def wrong_return(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and type(node.value.value) is bool:
            yield src.replace(*src.span(node.value), str(not node.value.value))


# --- expression transforms ------------------------------------------------------------------------------

_OP_SWAP: dict[type, str] = {
    ast.Add: "-", ast.Sub: "+", ast.Mult: "//", ast.Div: "*", ast.FloorDiv: "/", ast.Mod: "//",
    ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
    ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in",
    ast.BitAnd: "|", ast.BitOr: "&",
}  # fmt: skip
_NEGATED: dict[type, str] = {
    ast.Eq: "!=", ast.NotEq: "==", ast.Lt: ">=", ast.GtE: "<", ast.LtE: ">", ast.Gt: "<=",
    ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in",
}  # fmt: skip
_OP_TEXT: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.BitAnd: "&", ast.BitOr: "|",
}  # fmt: skip
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_text(node: ast.AST) -> bool:
    """A string literal, an f-string, or arithmetic on one (`"-" * 40 + title`)."""
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str | bytes))


def _binary(node: ast.AST) -> tuple[ast.expr, ast.AST, ast.expr] | None:
    """Operands and operator of a binary operation or a one-step comparison; never string arithmetic such as
    `"-" * 40` or `"%s" % x` (nobody writes `"-" // 40`)."""
    if isinstance(node, ast.BinOp) and not (_is_text(node.left) or _is_text(node.right)):
        return node.left, node.op, node.right
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return node.left, node.ops[0], node.comparators[0]
    return None


def _op_span(src: Source, left: ast.AST, op: ast.AST, right: ast.AST) -> tuple[int, int] | None:
    """Where the operator sits between its operands (which may hold parentheses, line breaks and comments)."""
    a, b = src.span(left)[1], src.span(right)[0]
    between = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), src.text[a:b])
    words = _OP_TEXT[type(op)].split()
    pattern = r"\b" + r"\s+".join(words) + r"\b" if words[0].isalpha() else re.escape(words[0])
    found = re.search(pattern, between)
    return (a + found.start(), a + found.end()) if found else None


def change_operator(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        parts = _binary(node)
        if not parts or type(parts[1]) not in _OP_SWAP:
            continue
        at = _op_span(src, *parts)
        if at:
            yield src.replace(*at, _OP_SWAP[type(parts[1])])


def swap_operands(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        parts = _binary(node)
        if parts and isinstance(parts[1], _NON_COMMUTATIVE) and src.seg(parts[0]) != src.seg(parts[2]):
            yield _swap(src, parts[0], parts[2])


def _drop_not(src: Source, test: ast.UnaryOp) -> str | None:
    """`not x` -> `x`. Parentheses go when the operand fits on the line and needs none; otherwise only the
    keyword goes, so a multi-line operand keeps its lines."""
    a, b = src.span(test)
    rest = src.text[a + 3 : b]
    gap = len(rest) - len(rest.lstrip(" \t"))
    if rest[gap : gap + 1] in ("\n", "\r", "\\", ""):
        return None  # `not` ends its line
    if one_line(test) and not isinstance(test.operand, ast.NamedExpr | ast.IfExp | ast.Lambda):
        return src.replace(a, b, src.seg(test.operand))
    return src.replace(a, a + 3 + gap, "")


def _negate(src: Source, test: ast.expr) -> str | None:
    """The condition negated as a person writes it, or None when that would need `not (...)`."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _NEGATED:
        at = _op_span(src, test.left, test.ops[0], test.comparators[0])
        return src.replace(*at, _NEGATED[type(test.ops[0])]) if at else None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _drop_not(src, test)
    if isinstance(test, ast.Name | ast.Attribute | ast.Call | ast.Subscript):
        a = src.span(test)[0]
        return src.replace(a, a, "not ")
    return None


def invert_if(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        if isinstance(node, ast.If | ast.IfExp):  # not a `while`: see loop_exit_lines
            new = _negate(src, node.test)
            if new is not None:
                yield new


def _grouping(src: Source, node: ast.AST) -> tuple[int, int] | None:
    """The span of the parentheses around node when they only group it (`not (a or b)`, not `f(a or b)`)."""
    a, b = src.span(node)
    before, after = src.text[:a].rstrip(), src.text[b:].lstrip()
    if not (before.endswith("(") and after.startswith(")")):
        return None
    if before[-2:-1].isidentifier() or before[-2:-1].isdigit() or before[-2:-1] in (")", "]"):
        return None  # a call's parentheses
    return len(before) - 1, len(src.text) - len(after) + 1


def _chain_dropped(src: Source, node: ast.BoolOp) -> str | None:
    """The boolean chain without its last operand. One operand left alone in grouping parentheses loses them
    when it is a plain name, call or constant; otherwise the chain is left alone."""
    a, b = src.span(node)
    kept = src.text[a : src.span(node.values[-2])[1]]
    if len(node.values) > 2:
        return src.replace(a, b, kept)
    group = _grouping(src, node)
    if group is None:
        return src.replace(a, b, kept) if one_line(node) else None
    atomic = isinstance(node.values[0], ast.Name | ast.Attribute | ast.Call | ast.Subscript | ast.Constant)
    return src.replace(*group, kept) if atomic and "\n" not in src.text[group[0] : group[1]] else None


def break_chain(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Drop the last operand of a boolean chain, or the last link of a chained comparison."""
    for node in expressions(func):
        new = None
        if isinstance(node, ast.BoolOp):
            new = _chain_dropped(src, node)
        elif isinstance(node, ast.Compare) and len(node.ops) >= 2:
            a, b = src.span(node)
            new = src.replace(a, b, src.text[a : src.span(node.comparators[-2])[1]])
        if new is not None:
            yield new


def _int_literal(src: Source, node: ast.AST) -> int | None:
    """The value of a plain decimal int literal (not a bool, hex or `1_000`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int and src.seg(node).isdigit():
        return node.value
    return None


def change_constant(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    for node in expressions(func):
        value = _int_literal(src, node)
        if value is not None:
            yield src.replace(*src.span(node), str(value + 1))


def change_default(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """An int default one higher, a bool default flipped."""
    for default in [*func.args.defaults, *func.args.kw_defaults]:
        if not isinstance(default, ast.Constant):
            continue
        value = _int_literal(src, default)
        if value is not None:
            yield src.replace(*src.span(default), str(value + 1))
        elif type(default.value) is bool:
            yield src.replace(*src.span(default), str(not default.value))


# --- off by one -----------------------------------------------------------------------------------------


def _is_range(node: ast.AST) -> TypeGuard[ast.Call]:
    """A `range(...)` call with plain positional arguments."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
        return False
    return bool(node.args) and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)


def _bounds(node: ast.AST) -> list[tuple[ast.expr, ast.expr | None]]:
    """(bound, the other end) for the stop of a `range(...)` call and the bounds of a slice."""
    if _is_range(node):
        return [(node.args[1], node.args[0]) if len(node.args) > 1 else (node.args[0], None)]
    if isinstance(node, ast.Slice):
        ends = [(node.lower, node.upper), (node.upper, node.lower)]
        return [(bound, other) for bound, other in ends if bound is not None]
    return []


def _plus_minus_one(node: ast.BinOp) -> bool:
    right = node.right
    return isinstance(node.op, ast.Add | ast.Sub) and isinstance(right, ast.Constant) and right.value == 1


def _near(value: int | None) -> list[int]:
    """The positive ints one above and one below."""
    return [] if value is None else [v for v in (value + 1, value - 1) if v >= 1]


def _shifted(src: Source, e: ast.expr) -> list[str]:
    """`e` moved by one as a person would write it: `n - 1` -> `n` (never `n - 1 + 1`), `3` -> `4`/`2`,
    `-1` -> `-2`, `n` or `i + n` -> `n + 1`/`n - 1`; `n - 2` is left alone (`n - 2 + 1` reads as a mutation)."""
    text = src.seg(e)
    if isinstance(e, ast.BinOp):
        if _plus_minus_one(e):
            return [src.text[src.span(e)[0] : src.span(e.left)[1]]]
        arithmetic = isinstance(e.op, ast.Add | ast.Sub | ast.Mult | ast.FloorDiv)
        return [f"{text} + 1", f"{text} - 1"] if arithmetic and not isinstance(e.right, ast.Constant) else []
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        return [f"-{v}" for v in _near(_int_literal(src, e.operand))]
    if isinstance(e, ast.Constant):
        return [str(v) for v in _near(_int_literal(src, e))]
    return [f"{text} + 1", f"{text} - 1"] if isinstance(e, ast.Name | ast.Attribute | ast.Call | ast.Subscript) else []


def off_by_one(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Move a range's stop or a slice bound by one, or take back an existing ±1; never onto the other end
    (`s[i:i]` is plainly empty)."""
    for node in expressions(func):
        for bound, other in _bounds(node):
            if one_line(bound):
                for new in _shifted(src, bound):
                    if other is None or new != src.seg(other):
                        yield src.replace(*src.span(bound), new)


# --- calls and exceptions -------------------------------------------------------------------------------


def _own_lines(src: Source, node: ast.AST) -> tuple[int, int] | None:
    """The node's whole lines when it stands alone on them (an argument of a call written one per line)."""
    a, b = src.span(node)
    first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    before = src.text[src.starts[first - 1] : a]
    after = src.text[b : src.starts[last]]
    if before.strip() or not re.fullmatch(r"\s*,?\s*(#.*)?\s*", after):
        return None
    return src.starts[first - 1], src.starts[last]


def _drop_item(src: Source, items: list[ast.AST], item: ast.AST) -> str:
    """The text without one of several comma-separated items (arguments, bases) and its comma; an item written
    on lines of its own takes those lines along."""
    whole = _own_lines(src, item)
    if whole:
        return src.replace(*whole, "")
    k = items.index(item)
    a, b = src.span(item)
    if k > 0:
        return src.replace(src.span(items[k - 1])[1], b, "")
    return src.replace(a, src.span(items[1])[0], "")


def _in_order(nodes: list[ast.AST]) -> list[ast.AST]:
    return sorted(nodes, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]


def _without(src: Source, call: ast.Call, item: ast.AST) -> str | None:
    """The call without one argument; a sole argument only when the call fits on one line (`f(x=1)` -> `f()`)."""
    items = _in_order([*call.args, *call.keywords])
    if len(items) > 1:
        return _drop_item(src, items, item)
    if not one_line(call):
        return None
    open_ = src.text.index("(", src.span(call.func)[1])
    return src.replace(open_ + 1, src.span(call)[1] - 1, "")


_FIXED_ARGUMENTS = {
    "isinstance",
    "issubclass",
    "getattr",
    "hasattr",
    "setattr",
}  # `isinstance(str, x)`: nobody writes it


def _plain_call(node: ast.AST) -> TypeGuard[ast.Call]:
    """A call whose arguments a person might drop or mix up."""
    return isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FIXED_ARGUMENTS)


def _callee(call: ast.Call) -> str:
    """The called name: `f` of `f(x)` and of `mod.f(x)`."""
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


_UNSEEN_KEYWORDS = ("stacklevel",)  # shapes only how a warning is reported: no test looks


def _droppable(node: ast.AST) -> TypeGuard[ast.Call]:
    """A call whose arguments a person might drop, but not `repeat(x, n)`: without its count it never ends."""
    return _plain_call(node) and _callee(node) != "repeat"


def _droppable_keyword(k: ast.keyword) -> bool:
    """A named argument whose loss a test would see: not a `timeout` (the call would wait for good) nor one in
    _UNSEEN_KEYWORDS."""
    return k.arg is not None and "timeout" not in k.arg and k.arg not in _UNSEEN_KEYWORDS


def drop_argument(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Drop a call's last keyword argument, or its last positional one when nothing is unpacked after it."""
    for node in expressions(func):
        if not _droppable(node):
            continue
        named = [k for k in node.keywords if _droppable_keyword(k)]
        dropped: list[ast.AST] = [*named[-1:]]
        if len(node.args) > 1 and not isinstance(node.args[-1], ast.Starred) and all(k.arg for k in node.keywords):
            dropped.append(node.args[-1])
        for item in dropped:
            new = _without(src, node, item)
            if new is not None:
                yield new


def swap_arguments(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Exchange two adjacent positional arguments: each on one line, texts differ, neither a literal nor unpacked
    (`int(16, text)` reads as a mutation)."""
    for node in expressions(func):
        if _plain_call(node):
            for x, y in zip(node.args, node.args[1:], strict=False):
                plain = not isinstance(x, ast.Starred | ast.Constant) and not isinstance(y, ast.Starred | ast.Constant)
                if plain and one_line(x) and one_line(y) and src.seg(x) != src.seg(y):
                    yield _swap(src, x, y)


_SIBLING: dict[str, str] = {
    "ValueError": "TypeError", "TypeError": "ValueError", "KeyError": "IndexError", "IndexError": "KeyError",
    "AttributeError": "TypeError", "RuntimeError": "ValueError", "LookupError": "ValueError",
    "NotImplementedError": "RuntimeError", "ZeroDivisionError": "ValueError", "OverflowError": "ValueError",
    "AssertionError": "ValueError", "OSError": "ValueError", "FileNotFoundError": "PermissionError",
    "PermissionError": "FileNotFoundError", "FileExistsError": "FileNotFoundError", "TimeoutError": "ConnectionError",
    "ConnectionError": "TimeoutError",
}  # fmt: skip


def _still_caught(name: str, by: str) -> bool:
    """Whether `except by` would still catch `name` (NotImplementedError by RuntimeError)."""
    return issubclass(getattr(builtins, name), getattr(builtins, by))


def _exception_names(node: ast.AST) -> list[ast.Name]:
    """Builtin exception names that a sibling can replace: the raised class, or a handler's classes."""
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return [exc] if isinstance(exc, ast.Name) and exc.id in _SIBLING else []
    if isinstance(node, ast.ExceptHandler) and node.type is not None:
        names = [n for n in getattr(node.type, "elts", [node.type]) if isinstance(n, ast.Name)]
        present = {n.id for n in names}
        return [
            n
            for n in names
            if n.id in _SIBLING and _SIBLING[n.id] not in present and not _still_caught(n.id, _SIBLING[n.id])
        ]
    return []


def wrong_exception(src: Source, func: ast.FunctionDef) -> Iterator[str]:
    """Raise, or catch, a plausible sibling of the right builtin exception."""
    for node in expressions(func):
        for name in _exception_names(node):
            yield src.replace(*src.span(name), _SIBLING[name.id])


# --- loops that must still end -------------------------------------------------------------------------


def _endless_iterator(node: ast.expr) -> bool:
    """`count()`, `cycle(xs)` or `repeat(x)`: an iterator that never ends."""
    if not isinstance(node, ast.Call):
        return False
    name = _callee(node)
    return name in ("count", "cycle") or (name == "repeat" and len(node.args) + len(node.keywords) == 1)


def _leaves(node: ast.If, in_inner_loop: bool) -> bool:
    """Whether an `if` holds a way out of the loop around it: a `return`, a `raise`, or (not inside an inner
    loop) a `break`."""
    if any(isinstance(n, ast.Return | ast.Raise) for n in ast.walk(node)):
        return True
    return not in_inner_loop and any(_breaks([*node.body, *node.orelse]))


def _exit_tests(body: list[Stmt], in_inner_loop: bool = False) -> Iterator[ast.expr]:
    """The tests of the `if`s that guard a way out of the loop whose body this is."""
    for s in body:
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(s, ast.If) and _leaves(s, in_inner_loop):
            yield s.test
        for inner in _bodies(s):
            yield from _exit_tests(inner, in_inner_loop or isinstance(s, _LOOPS))


def _receivers(node: ast.AST) -> set[str]:
    """What a statement's method calls act on (`stack` of `stack.pop()`): such a call updates it."""
    return {
        ast.unparse(n.func.value)
        for n in _scope_nodes(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }


def _updates(loop: ast.stmt, names: set[str]) -> list[Stmt]:
    """The simple statements of a loop that update ``names``, or what such an update reads (transitively)."""
    simple: list[Stmt] = [
        s
        for body in statement_bodies(loop)
        for s in body
        if isinstance(s, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Expr)
    ]
    names, found = set(names), list[Stmt]()
    while grown := [s for s in simple if s not in found and (_stored(s) | _receivers(s)) & names]:
        found += grown
        names |= {name for s in grown for name in _loaded(s)}
    return found


def loop_exit_lines(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    """Lines that decide whether a loop with no end of its own stops (a `while`, a `for` over an endless
    iterator): its test, the tests of the `if`s that lead out of it, and the statements that update what these
    read. A change there can make the suite hang until its timeout rather than fail."""
    lines: set[int] = set()
    for node in expressions(func):
        if isinstance(node, ast.While):
            tests = [node.test, *_exit_tests(node.body)]
        elif isinstance(node, ast.For | ast.AsyncFor) and _endless_iterator(node.iter):
            tests = list(_exit_tests(node.body))
        else:
            continue
        read = {name for t in tests for name in _loaded(t)}
        deciding: list[ast.expr | ast.stmt] = [*tests, *_updates(node, read)]
        for n in deciding:
            lines.update(range(n.lineno, (n.end_lineno or n.lineno) + 1))
    return lines


FUNCTION_TRANSFORMS: dict[str, Callable[[Source, ast.FunctionDef], Iterator[str]]] = {
    "remove_conditional": remove_kind((ast.If,)),
    "remove_loop": remove_kind(_LOOPS),
    "remove_assignment": remove_kind((ast.Assign, ast.AugAssign, ast.AnnAssign)),
    "remove_wrapper": remove_wrapper,
    "invert_if": invert_if,
    "change_operator": change_operator,
    "swap_operands": swap_operands,
    "break_chain": break_chain,
    "change_constant": change_constant,
    "shuffle_statements": shuffle_statements,
    "off_by_one": off_by_one,
    "early_return": early_return,
    "wrong_return": wrong_return,
    "drop_argument": drop_argument,
    "swap_arguments": swap_arguments,
    "wrong_exception": wrong_exception,
    "swallow_exception": swallow_exception,
    "change_default": change_default,
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
    """Drop one base class; the last one takes the parentheses along."""
    items = _in_order([*cls.bases, *cls.keywords])
    for base in cls.bases:
        qual = f"{cls.name}({src.seg(base)})"
        if len(items) > 1:
            yield qual, _drop_item(src, items, base)
        else:
            a, b = src.span(base)
            yield qual, src.replace(src.text.rfind("(", 0, a), src.text.find(")", b) + 1, "")


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


def edits(text: str, compiled: bool = True) -> Iterator[Edit]:
    """Every transformed version of ``text`` that differs from it and (with ``compiled``) still compiles;
    without, the caller checks ``valid`` on the few it keeps (compiling a large file for every edit is slow)."""
    src = Source(text)
    tree = ast.parse(text)
    check = valid if compiled else _plausible
    for qualname, func in functions(tree):
        exits = loop_exit_lines(func)
        for name, transform in FUNCTION_TRANSFORMS.items():
            for new in transform(src, func):  # type: ignore[arg-type]
                if check(new, text) and not (exits and _touches(text, new, exits)):
                    yield Edit(name, qualname, func.lineno, new)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for name, ctransform in CLASS_TRANSFORMS.items():
                for qual, new in ctransform(src, node):
                    if check(new, text):
                        yield Edit(name, qual, node.lineno, new)


def _touches(old: str, new: str, lines: set[int]) -> bool:
    """Whether ``new`` replaces any of these (1-based) lines of ``old``."""
    start, end, _ = changed_range(old, new)
    return any(n in lines for n in range(start + 1, end + 1))


def changed_range(old: str, new: str) -> tuple[int, int, list[str]]:
    """(first changed line, end of the changed lines of ``old``, their new lines), 0-based: the longest equal
    runs of leading and trailing lines, each found by bisection (slices compare in C; files can be long)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    limit = min(len(a), len(b))
    lo = _longest(lambda k: a[:k] == b[:k], limit)
    hi = _longest(lambda k: a[len(a) - k :] == b[len(b) - k :], limit - lo)
    return lo, len(a) - hi, b[lo : len(b) - hi]


def _longest(equal: Callable[[int], bool], limit: int) -> int:
    """The largest k <= limit with equal(k), for a property that holds up to some k and not beyond."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if equal(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _plausible(new: str, old: str) -> bool:
    """Differs, and adds no `not (` (the classic mark of a mutated condition, e.g. `x is not (y)`)."""
    return new != old and new.count("not (") <= old.count("not (")


def valid(new: str, old: str) -> bool:
    """Plausible, and compiles."""
    if not _plausible(new, old):
        return False
    try:
        compile(new, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True
