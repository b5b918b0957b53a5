"""`branch`: follow the first edge whose variable condition holds, else the `fallback` edge."""

from __future__ import annotations

from ..conditions import Context
from ..problems import never_taken
from .base import NodeType, first_edge


class Branch(NodeType):
    name = "branch"
    title = "branch on variables"
    order = 70
    conditions = frozenset({"always", "fallback", "var"})

    def lint(self, journey, node):
        warnings = []
        covered: set = set()
        fallback_seen = False
        for edge in journey.outgoing(node.id):
            if "always" in covered:
                warnings.append(never_taken(edge, "an earlier unconditional edge of the node is always taken"))
            elif edge.when == "fallback":
                if fallback_seen:
                    warnings.append(never_taken(edge, "an earlier fallback edge of the node is always taken first"))
                fallback_seen = True
            elif edge.when == "always":
                covered.add("always")
            elif (edge.when, edge.condition) in covered:
                warnings.append(never_taken(edge, "an earlier edge of the node has the same condition"))
            else:
                covered.add((edge.when, edge.condition))
        return warnings

    def enter(self, walk, node):
        context = Context(scope=walk.scope())
        return first_edge(walk.journey.outgoing(node.id), context, fallback=True) or walk.no_way_out(node)


NODE_TYPE = Branch()
