"""`end`: the contact finishes as `completed`."""

from __future__ import annotations

from .base import NodeType


class End(NodeType):
    name = "end"
    title = "finish"
    order = 90
    finishes = True

    def enter(self, walk, node):
        walk.finish("completed", f"reached end node {node.id!r}")
        return None


NODE_TYPE = End()
