"""Designer half of `wait`: an optional timeout; its timeout edge is labelled with it."""

from __future__ import annotations

from app.journeys.forms import Form, duration
from app.journeys.kinds.base import NodeKind


class WaitKind(NodeKind):
    name = "wait"
    style = ("#fff9db", "#f08c00", "hexagon")
    open_add_edge = True
    tools = ("journeys/_partials/testbench.html",)

    def summary(self, node):
        return f"reply, timeout {node['timeout']}" if node.get("timeout") not in (None, "") else "reply, no timeout"

    def from_form(self, form: Form, node: dict) -> None:
        timeout = form.get("timeout", "").strip()
        if timeout:
            node["timeout"] = duration(timeout)

    def edge_label(self, edge, source, siblings, text):
        if edge.get("when") == "timeout" and source.get("timeout") not in (None, ""):
            return f"timeout {source['timeout']}"
        return text


NODE_KIND = WaitKind()
