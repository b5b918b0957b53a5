"""`var`: a comparison of a journey variable (`branch` edges, and `audience.where`).

`op` is one of `OPS`. When both sides parse as numbers they compare as
numbers; otherwise as text, ignoring case (`to_text` of the value, so `true`
equals True). `contains` on a list holds when an element equals the value; on
text it is a substring test. A missing variable (absent or null) satisfies
only `ne`; `exists` needs a value that is neither missing nor the empty string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..placeholders import lookup, to_text
from .base import Condition, Context
from .safe_regex import SafeRegex, compile_regex

OPS = ("eq", "ne", "contains", "gt", "gte", "lt", "lte", "exists", "regex")

_NUMBER_RE = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


def as_number(value: Any) -> Decimal | None:
    """The number a value means, or None (bools and non-numeric text are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) < 100 and _NUMBER_RE.fullmatch(value):
        return Decimal(value.strip())
    return None


def _equal(left: Any, right: Any) -> bool:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    return to_text(left).casefold() == to_text(right).casefold()


def _order(left: Any, right: Any) -> int:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is None or right_number is None:
        left_number, right_number = to_text(left).casefold(), to_text(right).casefold()
    return (left_number > right_number) - (left_number < right_number)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, (list, tuple)):
        return any(_equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return any(_equal(key, item) for key in container)
    return to_text(item).casefold() in to_text(container).casefold()


def compare(value: Any, op: str, expected: Any, regex: SafeRegex | None = None) -> bool:
    """Whether `value <op> expected` holds, with the rules of the module docstring."""
    if op == "exists":
        return value is not None and value != ""
    if value is None:
        return op == "ne"
    if op == "eq":
        return _equal(value, expected)
    if op == "ne":
        return not _equal(value, expected)
    if op == "contains":
        return _contains(value, expected)
    if op == "regex":
        return regex is not None and regex.search(to_text(value))
    order = _order(value, expected)
    return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]


class Var(Condition):
    name = "var"
    order = 50
    bare = False
    keys = frozenset({"var", "op", "value"})

    def __init__(self, var: str, op: str, value: Any, regex: SafeRegex | None):
        self.var, self.op, self.value, self.regex = var, op, value, regex

    @classmethod
    def problems(cls, when: Any) -> list[str]:
        problems = []
        var, op = when.get("var"), when.get("op")
        if not isinstance(var, str) or not var.strip() or any(not part.strip() for part in var.split(".")):
            problems.append(f"var must be a variable name or dotted path, not {var!r}")
        if "op" not in when:
            problems.append(f"op is missing (use one of {', '.join(OPS)})")
        elif op not in OPS:
            problems.append(f"op {op!r} does not exist (use one of {', '.join(OPS)})")
        elif op != "exists":
            value = when.get("value")
            if value is None or isinstance(value, (dict, list)):
                problems.append(f"op {op!r} needs a text or number value")
            elif op == "regex":
                try:
                    compile_regex(value)
                except ValueError as error:
                    problems.append(f"regex {value!r}: {error}")
        extra = sorted(key for key in when if key not in cls.keys)
        if extra:
            problems.append(f"unknown key(s) {', '.join(map(repr, extra))} in a variable condition")
        return problems

    @classmethod
    def compile(cls, when: Any) -> Condition:
        op = when["op"]
        return cls(when["var"].strip(), op, when.get("value"), compile_regex(when["value"]) if op == "regex" else None)

    def holds(self, context: Context) -> bool:
        return compare(lookup(context.scope, self.var), self.op, self.value, self.regex)


CONDITION = Var
