"""Designer half of `branch`: no fields; its edges test variables."""

from __future__ import annotations

from app.journeys.kinds.base import NodeKind


class BranchKind(NodeKind):
    name = "branch"
    style = ("#fff4e6", "#e8590c", "diamond")
    open_add_edge = True

    def summary(self, node):
        return "branch on variables"


NODE_KIND = BranchKind()
