"""`split`: send each contact down one edge at random, in proportion to the edges' weights (A/B tests)."""

from __future__ import annotations

from .base import NodeType


class Split(NodeType):
    name = "split"
    title = "random split by weight"
    order = 60
    conditions = frozenset({"always"})

    def check_edges(self, edges):
        if len(edges) < 2:
            return [(None, f"a split node needs two or more edges out, it has {len(edges)}")]
        return []

    def enter(self, walk, node):
        edges = walk.journey.outgoing(node.id)
        if not edges:
            return walk.no_way_out(node)
        pick = walk.rng.randrange(sum(edge.weight for edge in edges))
        for edge in edges:
            pick -= edge.weight
            if pick < 0:
                return edge
        return edges[-1]


NODE_TYPE = Split()
