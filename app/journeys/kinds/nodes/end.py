"""Designer half of `end`: no fields, no edges out."""

from __future__ import annotations

from app.journeys.kinds.base import NodeKind


class EndKind(NodeKind):
    name = "end"
    style = ("#fff5f5", "#c92a2a", "pill")

    def summary(self, node):
        return "finish"


NODE_KIND = EndKind()
