"""Designer half of `split`: no fields; its edges carry weights, labelled with their share."""

from __future__ import annotations

from app.journeys.kinds.base import NodeKind


class SplitKind(NodeKind):
    name = "split"
    style = ("#fff0f6", "#d6336c", "diamond")
    open_add_edge = True
    weighted_edges = True

    def summary(self, node):
        return "random split"

    def edge_label(self, edge, source, siblings, text):
        if edge.get("when") in (None, "always"):
            return f"split {_share(edge, siblings)}%"
        return text


def _share(edge: dict, siblings: list[dict]) -> str:
    total = sum(_weight(other) for other in siblings)
    if total <= 0:
        return "0"
    share = 100 * _weight(edge) / total
    return f"{share:.0f}" if share.is_integer() or share >= 10 else f"{share:.1f}"


def _weight(edge: dict) -> float:
    weight = edge.get("weight", 1)
    return weight if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0 else 0


NODE_KIND = SplitKind()
