"""Designer half of `audience`: an optional `where` condition on the contact's fields."""

from __future__ import annotations

from app.journeys.forms import Form
from app.journeys.kinds.base import NodeKind
from app.journeys.kinds.conditions.var import var_condition, var_label


class AudienceKind(NodeKind):
    name = "audience"
    style = ("#e6fcf5", "#0ca678", "pill")

    def summary(self, node):
        where = node.get("where")
        who = (
            "every contact" if not isinstance(where, dict) else "where " + (var_label(where) if "var" in where else "?")
        )
        triggers = node.get("triggered_by")  # the journey's keyword triggers, added by the diagram
        return f"text {', '.join(triggers)} or {who}" if triggers else who

    def from_form(self, form: Form, node: dict) -> None:
        var = form.get("where_var", "").strip()
        if var:
            node["where"] = var_condition(var, form.get("where_op", "eq"), form.get("where_value", ""))


NODE_KIND = AudienceKind()
