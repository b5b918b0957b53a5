"""Designer half of `api`: method, URL, headers, body, timeout and where to save the answer."""

from __future__ import annotations

from app.journeys.forms import Form, json_or_text, number, pairs
from app.journeys.kinds.base import NodeKind


class ApiKind(NodeKind):
    name = "api"
    style = ("#f3f0ff", "#7048e8", "api")
    open_add_edge = True

    def summary(self, node):
        return f"{str(node.get('method') or 'GET').upper()} {node.get('url') or ''}".strip()

    def from_form(self, form: Form, node: dict) -> None:
        node["url"] = form.get("url", "").strip()
        node["method"] = form.get("method", "GET")
        headers = pairs(form.get("headers", ""), ":")
        if headers:
            node["headers"] = headers
        body = form.get("body", "")
        if body.strip():
            node["body"] = json_or_text(body)
        timeout = form.get("timeout", "").strip()
        if timeout:
            node["timeout"] = number(timeout, "timeout")
        save_as = form.get("save_as", "").strip()
        if save_as:
            node["save_as"] = save_as


NODE_KIND = ApiKind()
