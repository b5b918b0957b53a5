"""Designer half of `delay`: its duration."""

from __future__ import annotations

from app.journeys.forms import Form, duration
from app.journeys.kinds.base import NodeKind


class DelayKind(NodeKind):
    name = "delay"
    style = ("#e3fafc", "#1098ad", "delay")

    def summary(self, node):
        return f"wait {node.get('duration', '?')}"

    def from_form(self, form: Form, node: dict) -> None:
        node["duration"] = duration(form.get("duration", ""))


NODE_KIND = DelayKind()
