"""`api`: call an HTTP API, optionally save its JSON answer, then follow `success` / `failure`."""

from __future__ import annotations

from .. import effects, events
from ..conditions import Context
from .base import (
    NodeType,
    first_edge,
    json_strings,
    never_taken_by_outcome,
    render_url_value,
    render_value,
    template_map,
    variable_name_problem,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
API_TIMEOUT_DEFAULT = 10
API_TIMEOUT_MAX = 30
OUTCOMES = {"always": {"ok", "failed"}, "success": {"ok"}, "failure": {"failed"}}


class Api(NodeType):
    name = "api"
    title = "call an HTTP API"
    order = 40
    keys = ("url", "method", "headers", "body", "timeout", "save_as")
    defaults = {"url": ""}
    conditions = frozenset({"always", "success", "failure"})
    resumes_on = {events.ApiResponse: "active"}

    def check(self, data):
        problems = []
        url = data.get("url")
        if not isinstance(url, str) or not url.strip():
            problems.append(("url", "url is missing" if url is None else "url must be non-empty text"))
        elif not url.strip().lower().startswith(("http://", "https://", "<<")):
            problems.append(("url", f"url {url!r} must start with http:// or https://"))
        method = data.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            problems.append(("method", f"method {method!r} must be one of {', '.join(METHODS)}"))
        headers = data.get("headers")
        if "headers" in data and (
            not isinstance(headers, dict) or not all(isinstance(value, str) and key for key, value in headers.items())
        ):
            problems.append(("headers", "headers must be an object of header name to text template"))
        timeout = data.get("timeout", API_TIMEOUT_DEFAULT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= API_TIMEOUT_MAX:
            problems.append(
                ("timeout", f"timeout {timeout!r} must be a number of seconds above 0 and at most {API_TIMEOUT_MAX}")
            )
        if "save_as" in data:
            problem = variable_name_problem(data["save_as"], "save_as")
            if problem:
                problems.append(("save_as", problem))
        return problems

    def templates(self, data):
        found = [("url", data["url"])] if isinstance(data.get("url"), str) else []
        return found + template_map(data, "headers") + list(json_strings(data.get("body"), "body"))

    def stored_variables(self, data):
        save_as = data.get("save_as")
        return [save_as, f"{save_as}_status"] if save_as else []

    def lint(self, journey, node):
        return never_taken_by_outcome(journey.outgoing(node.id), OUTCOMES)

    def compile(self, data):
        return {"method": data.get("method", "GET").upper(), "timeout": data.get("timeout", API_TIMEOUT_DEFAULT)}

    def enter(self, walk, node):
        data, scope, missing = node.data, walk.scope(), {}
        walk.status = "active"
        walk.emit(
            effects.CallApi(
                node_id=node.id,
                visit=walk.visits[node.id],
                method=node.settings["method"],
                url=render_url_value(data["url"], scope, missing),
                headers=render_value(data.get("headers") or {}, scope, missing),
                body=render_value(data.get("body"), scope, missing),
                timeout=node.settings["timeout"],
                save_as=data.get("save_as"),
            )
        )
        return None

    def resume(self, walk, node, event):
        ok = event.error is None and isinstance(event.status, int) and 200 <= event.status < 300
        save_as = node.data.get("save_as")
        if save_as:
            walk.set_variable(save_as, event.body)
            walk.set_variable(f"{save_as}_status", event.status)
        walk.log({"kind": "api", "status": event.status, "error": event.error, "duration_ms": event.duration_ms})
        edge = first_edge(walk.journey.outgoing(node.id), Context(ok=ok))
        if edge is not None:
            return edge
        if ok:
            return walk.no_way_out(node)
        walk.finish(
            "failed",
            f"api call of {node.id!r} failed ({event.error or f'HTTP {event.status}'}) and it has no failure edge",
        )
        return None


NODE_TYPE = Api()
