"""`set`: store journey variables rendered from templates, then follow its one edge."""

from __future__ import annotations

from collections.abc import Mapping

from ..placeholders import render
from .base import NodeType, template_map, variable_name_problem

SCOPES = ("run", "contact")  # `contact`: the values are saved as the contact's fields too


class Set(NodeType):
    name = "set"
    title = "set variables"
    order = 80
    keys = ("vars", "scope")
    defaults = {"vars": {}}
    conditions = frozenset({"always"})
    one_unconditional_edge = True

    def check(self, data):
        variables = data.get("vars")
        if not isinstance(variables, dict) or not variables:
            return [("vars", "vars must be an object of variable name to text template, with at least one entry")]
        problems = []
        for name, template in variables.items():
            problem = variable_name_problem(name, "variable")
            if problem:
                problems.append(("vars", problem))
            if not isinstance(template, str):
                problems.append((f"vars.{name}", f"the value of {name!r} must be a text template"))
        if data.get("scope", "run") not in SCOPES:
            problems.append(("scope", f"scope {data.get('scope')!r} must be one of {', '.join(SCOPES)}"))
        return problems

    def templates(self, data):
        return template_map(data, "vars")

    def stored_variables(self, data):
        return list(data["vars"]) if isinstance(data.get("vars"), Mapping) else []

    def enter(self, walk, node):
        stored = {}
        for name, template in node.data["vars"].items():
            stored[name] = render(template, walk.scope()).text
            walk.set_variable(name, stored[name])
        entry = {"kind": "set", "node": node.id, "vars": stored}
        if node.data.get("scope") == "contact":
            entry["scope"] = "contact"  # the shell saves these as the contact's fields too
        walk.log(entry)
        return self.only_edge(walk, node)


NODE_TYPE = Set()
