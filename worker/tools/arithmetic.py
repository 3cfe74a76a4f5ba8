"""The ``calculator`` tool: plain arithmetic evaluated safely on the ``ast``, no ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from agentstream.worker.errors import ToolError, UnsafeExpression
from agentstream.worker.tools.registry import tool

__all__ = ["MAX_EXPRESSION_CHARS", "MAX_INT_BITS", "calculator", "evaluate_arithmetic"]

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4096  # about 1233 decimal digits: plenty for arithmetic, cheap to compute
_ALLOWED_CHARS = frozenset("0123456789.eE_+-*/%() \t\n")
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def evaluate_arithmetic(expression: str) -> int | float:
    """Evaluate plain arithmetic safely: numbers, + - * / // % **, unary signs, brackets.

    Raises `UnsafeExpression` for anything else or anything too large, and `ToolError`
    for malformed input or arithmetic errors such as division by zero.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise UnsafeExpression(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if "^" in expression:
        raise UnsafeExpression("'^' is not allowed; write powers as 2 ** 10")
    # Checking characters first keeps names, strings and calls out before parsing at all.
    if bad := sorted(set(expression) - _ALLOWED_CHARS):
        raise UnsafeExpression(
            f"character(s) {', '.join(map(repr, bad))} not allowed: "
            "use numbers, + - * / // % ** and parentheses only"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression: {exc.msg}", tool_name="calculator") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero", tool_name="calculator") from None
    except (OverflowError, RecursionError):
        raise UnsafeExpression("the result is too large") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _evaluate(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnsafeExpression(f"constant {value!r} is not a number")
        return _bounded(value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    raise UnsafeExpression(f"{type(node).__name__} is not allowed in arithmetic")


def _check_power(base: int | float, exponent: int | float) -> None:
    # An int power is computed exactly, however long it takes: refuse it up front.
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and abs(base) > 1 and math.log2(abs(base)) * exponent > MAX_INT_BITS:
        raise UnsafeExpression(f"{base} ** {exponent} is too large")


def _bounded(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("the result is not a real number", tool_name="calculator")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise UnsafeExpression("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeExpression("the result is too large or not a number")
    return value


@tool(timeout_s=5.0)
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression such as "17 * 23" or "(2 + 3) ** 2 / 7".

    Supports numbers, + - * / // % **, unary minus and parentheses; nothing else.
    """
    return evaluate_arithmetic(expression)
