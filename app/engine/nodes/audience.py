"""`audience`: the entry point; an optional `where` condition filters contacts out before anything is sent."""

from __future__ import annotations

from ..conditions import Context
from ..conditions.var import Var
from .base import NodeType


class Audience(NodeType):
    name = "audience"
    title = "entry point of the journey"
    order = 10
    keys = ("where",)
    conditions = frozenset({"always"})
    one_unconditional_edge = True

    def check(self, data):
        where = data.get("where")
        if where is None:
            return []
        if not isinstance(where, dict) or "var" not in where:
            return [("where", 'where must be a variable condition like {"var": "city", "op": "eq", "value": "Lisbon"}')]
        return [("where", f"where: {problem}") for problem in Var.problems(where)]

    def compile(self, data):
        where = data.get("where")
        return {"where": Var.compile(where) if where is not None else None}

    def enter(self, walk, node):
        where = node.settings["where"]
        if where is not None and not where.holds(Context(scope=walk.scope())):
            walk.finish("filtered", f"contact does not meet the audience condition ({where.var} {where.op})")
            return None
        return self.only_edge(walk, node)


NODE_TYPE = Audience()
