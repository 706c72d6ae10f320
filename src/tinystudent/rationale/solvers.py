"""Programmatic solver rationales: a STAND-IN FOR A LARGE TEACHER, clearly not an LM.

Distillation needs a teacher whose rationales are mostly right. Where a dataset carries no
worked solution and no large teacher LM is at hand (offline, CPU only), a few lines of code
that solve the task and write each step are the cheapest correct teacher. They let the
benchmark measure what rationales do for the student, not how good some teacher is; real users
point `rationales.source` at a teacher LM (`transformers` or `openai`) instead. Each solver
reads a reasoning-gym item's metadata and returns the steps, one per line, ending just before
the final answer (the student adds `#### answer`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from tinystudent.errors import DataError
from tinystudent.rationale.data import Example
from tinystudent.rationale.format import ANSWER_MARKER

SolverFn = Callable[[dict[str, Any]], str]


def chain_sum(meta: dict[str, Any]) -> str:
    """Running partial sums, left to right: `4 - 1 = 3`, `3 - 7 = -4`, ..."""
    tokens = str(meta["expression"]).split()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise ValueError(f"not a chain of sums: {meta['expression']!r}")
    total = int(tokens[0])
    lines = []
    for op, term in zip(tokens[1::2], tokens[2::2]):
        value = int(term)
        new = total + value if op == "+" else total - value
        if op not in "+-":
            raise ValueError(f"chain_sum has only + and -, got {op!r}")
        lines.append(f"{total} {op} {value} = {new}")
        total = new
    return "\n".join(lines)


def decimal_chain_sum(meta: dict[str, Any]) -> str:
    """Running partial sums of decimals, left to right: `4.4 + 1.2 = 5.6`, `5.6 - 7.8 = -2.2`.
    Exact decimal arithmetic, so each step keeps its operands' decimal places (`8.8 - 7.8 = 1.0`)
    as reasoning-gym's own answers do, and no float error can reach a step."""
    tokens = str(meta["expression"]).split()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise ValueError(f"not a chain of sums: {meta['expression']!r}")
    try:
        total = Decimal(tokens[0])
        lines = []
        for op, term in zip(tokens[1::2], tokens[2::2]):
            if op not in ("+", "-"):
                raise ValueError(f"decimal_chain_sum has only + and -, got {op!r}")
            value = Decimal(term)
            new = total + value if op == "+" else total - value
            lines.append(f"{total} {op} {value} = {new}")
            total = new
    except InvalidOperation as exc:
        raise ValueError(f"not a chain of decimals: {meta['expression']!r}") from exc
    return "\n".join(lines)


def letter_counting(meta: dict[str, Any]) -> str:
    """Each word with its count of the letter and the running total (case-insensitive, as
    reasoning-gym counts): one word per step, so no step adds more than one small number."""
    letter = str(meta["target_letter"]).lower()
    total = 0
    lines = []
    for word in meta["span"]:
        n = str(word).lower().count(letter)
        total += n
        lines.append(f"{word}: {n}, total {total}")
    return "\n".join(lines)


def count_bits(meta: dict[str, Any]) -> str:
    """The number in binary, then a running count of its 1 digits."""
    binary = format(int(meta["number"]), "b")
    ones = [str(i) for i, _ in enumerate((c for c in binary if c == "1"), 1)]
    return f"{meta['number']} in binary is {binary}\nones: {' '.join(ones) or '0'}"


def leg_counting(meta: dict[str, Any]) -> str:
    """One animal a line: its count times its legs (reasoning-gym's own table, the fact the
    student must recall), then the running total, so each token needs one product or sum."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    total = 0
    lines = []
    for animal, count in dict(meta["animals"]).items():
        legs = int(ANIMALS[animal])
        product = int(count) * legs
        total += product
        lines.append(f"{animal}: {count} * {legs} = {product}, total {total}")
    return "\n".join(lines)


_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def basic_arithmetic(meta: dict[str, Any]) -> str:
    """One binary operation a line, in the order precedence and brackets impose:
    `2 - -1 * -2` becomes `-1 * -2 = 2`, then `2 - 2 = 0`. Integer `+ - *` only (the recipe
    leaves out `/`); a negative literal such as `-7` is a number, not a step."""
    lines: list[str] = []

    def value(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = value(node.operand)
            if not isinstance(node.operand, ast.Constant):
                lines.append(f"-({inner}) = {-inner}")
            return -inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            op = _BINARY[type(node.op)]
            result = left + right if op == "+" else left - right if op == "-" else left * right
            lines.append(f"{left} {op} {right} = {result}")
            return result
        raise ValueError(f"basic_arithmetic solver handles integer + - * only: {ast.dump(node)}")

    value(ast.parse(str(meta["expression"]), mode="eval").body)
    return "\n".join(lines)


SOLVERS: dict[str, SolverFn] = {
    "chain_sum": chain_sum,
    "decimal_chain_sum": decimal_chain_sum,
    "letter_counting": letter_counting,
    "count_bits": count_bits,
    "basic_arithmetic": basic_arithmetic,
    "leg_counting": leg_counting,
}


class SolverRationales:
    """A rationale source (like a teacher LM): one solver-written solution per question."""

    def __init__(self, task: str) -> None:
        if task not in SOLVERS:
            raise DataError(
                f"rationales.source solver: no programmatic solver for task {task!r} "
                f"(have: {', '.join(sorted(SOLVERS))}); use a teacher LM instead"
            )
        self.task = task
        self.solver = SOLVERS[task]
        self.name = f"solver:{task} (programmatic stand-in for a large teacher)"

    def candidates(self, examples: Sequence[Example], seed: int) -> list[list[str]]:
        out = []
        for e in examples:
            if not e.meta:
                raise DataError(f"example {e.id} has no metadata for the {self.task} solver")
            out.append([f"{self.solver(e.meta)}\n{ANSWER_MARKER} {e.answer}"])
        return out
