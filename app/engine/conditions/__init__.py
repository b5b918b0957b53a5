"""Edge conditions (`when`): a registry keyed by the JSON name, one module per condition.

Every module of this package that defines `CONDITION` (a `base.Condition`
subclass) is a condition, placed by its `order`. The node types say which
conditions their edges allow (`NodeType.conditions`). `fallback` never holds
by itself: the node type takes it when nothing else held, wherever it stands.
Helpers: `base` (Context, word matching), `safe_regex` (patterns that cannot
hang a worker), `var` (variable comparisons, also used by `audience.where`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .base import REPLY_LIMIT, Condition, Context, normalize_words
from .safe_regex import REGEX_BUDGET, SafeRegex, compile_regex
from .var import OPS, Var, as_number, compare


def _discover() -> dict[str, type[Condition]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        condition = getattr(importlib.import_module(f"{__name__}.{info.name}"), "CONDITION", None)
        if condition is not None:
            found.append(condition)
    return {condition.name: condition for condition in sorted(found, key=lambda condition: condition.order)}


CONDITIONS: dict[str, type[Condition]] = _discover()
REPLY_CONDITIONS = frozenset(name for name, condition in CONDITIONS.items() if condition.reply)


def condition_name(when: Any) -> str:
    """Which registry entry a `when` value is; ValueError for anything else."""
    if when is None:
        return "always"
    if isinstance(when, str):
        if when in CONDITIONS and CONDITIONS[when].bare:
            return when
        raise ValueError(f"unknown condition {when!r}")
    if isinstance(when, dict):
        if "var" in when:
            return "var"
        names = [key for key in when if key in CONDITIONS and not CONDITIONS[key].bare]
        if len(names) == 1 and len(when) == 1:
            return names[0]
        if len(names) > 1:
            raise ValueError(f"a condition has one of keywords, regex, payload or var, not {' and '.join(names)}")
        raise ValueError(f"unknown condition {when!r}")
    raise ValueError(f"unknown condition {when!r}")


def condition_problems(when: Any) -> list[str]:
    """Plain-words problems of one `when` value, regardless of the node it is on."""
    try:
        name = condition_name(when)
    except ValueError as error:
        return [str(error)]
    return CONDITIONS[name].problems(when)


def compile_condition(when: Any) -> Condition:
    """The compiled condition of a valid `when` value."""
    return CONDITIONS[condition_name(when)].compile(when)


__all__ = [
    "CONDITIONS",
    "OPS",
    "REGEX_BUDGET",
    "REPLY_CONDITIONS",
    "REPLY_LIMIT",
    "Condition",
    "Context",
    "SafeRegex",
    "Var",
    "as_number",
    "compare",
    "compile_condition",
    "compile_regex",
    "condition_name",
    "condition_problems",
    "normalize_words",
]
