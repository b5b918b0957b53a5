"""Designer half of `var`: a variable, an operator and a value (also the audience node's `where`)."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import ConditionKind

OPERATORS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "contains": "contains", "regex": "~"}


def var_condition(var: str, op: str, value: str) -> dict:
    """A variable condition as journey/v1 writes it (no value for `exists`)."""
    condition = {"var": var.strip(), "op": op}
    if op != "exists":
        condition["value"] = value
    return condition


def var_label(when: dict) -> str:
    op = when.get("op", "eq")
    if op == "exists":
        return f"{when.get('var')} exists"
    return f"{when.get('var')} {OPERATORS.get(op, op)} {when.get('value', '')}".strip()


class VarKind(ConditionKind):
    name = "var"
    title = "variable"
    blank = {"var": "", "op": "eq", "value": ""}

    def from_form(self, form: Form):
        return var_condition(form.get("var", ""), form.get("op", "eq"), form.get("value", ""))

    def label(self, when):
        return var_label(when)


CONDITION_KIND = VarKind()
