"""Designer half of `set`: `name = template` lines."""

from __future__ import annotations

from app.journeys.forms import Form, pairs
from app.journeys.kinds.base import NodeKind


class SetKind(NodeKind):
    name = "set"
    style = ("#f1f3f5", "#495057", "set")

    def summary(self, node):
        variables = node.get("vars")
        return "set " + ", ".join(variables) if isinstance(variables, dict) and variables else "set (nothing)"

    def from_form(self, form: Form, node: dict) -> None:
        node["vars"] = pairs(form.get("vars", ""), "=")


NODE_KIND = SetKind()
