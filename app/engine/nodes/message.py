"""`message`: send an SMS or WhatsApp message, then follow `success` / `failure` by the send's outcome."""

from __future__ import annotations

import re

from .. import effects, events
from ..conditions import Context
from .base import CHANNELS, NodeType, first_edge, never_taken_by_outcome, render_value, template_map

CONTENT_SID_RE = re.compile(r"HX[0-9a-fA-F]{32}\Z")
OUTCOMES = {"always": {"ok"}, "success": {"ok"}, "failure": {"failed"}}


class Message(NodeType):
    name = "message"
    title = "send a message"
    order = 20
    keys = ("body", "content_sid", "content_variables", "channel", "media_url")
    defaults = {"body": ""}
    conditions = frozenset({"always", "success", "failure"})
    resumes_on = {events.MessageOutcome: "sending"}

    def check(self, data):
        problems = []
        if "body" not in data and "content_sid" not in data:
            problems.append(("body", "needs a body (or a WhatsApp content_sid)"))
        body = data.get("body")
        if "body" in data and (not isinstance(body, str) or not body.strip()):
            problems.append(("body", "body must be non-empty text"))
        sid = data.get("content_sid")
        if "content_sid" in data and (not isinstance(sid, str) or not CONTENT_SID_RE.match(sid)):
            problems.append(("content_sid", f"content_sid {sid!r} must be 'HX' followed by 32 hex digits"))
        variables = data.get("content_variables")
        if "content_variables" in data and (
            not isinstance(variables, dict) or not all(isinstance(text, str) for text in variables.values())
        ):
            problems.append(("content_variables", "content_variables must be an object of text templates"))
        if "channel" in data and data["channel"] not in CHANNELS:
            problems.append(("channel", f"channel {data['channel']!r} must be one of {', '.join(CHANNELS)}"))
        if "media_url" in data and (not isinstance(data["media_url"], str) or not data["media_url"].strip()):
            problems.append(("media_url", "media_url must be a non-empty text template"))
        return problems

    def templates(self, data):
        found = [(key, data[key]) for key in ("body", "media_url") if isinstance(data.get(key), str)]
        return found + template_map(data, "content_variables")

    def lint(self, journey, node):
        return never_taken_by_outcome(journey.outgoing(node.id), OUTCOMES)

    def enter(self, walk, node):
        data, scope, missing = node.data, walk.scope(), {}
        content_variables = data.get("content_variables")
        walk.status = "sending"
        walk.emit(
            effects.SendMessage(
                node_id=node.id,
                visit=walk.visits[node.id],
                channel=data.get("channel") or walk.journey.channel,
                body=render_value(data["body"], scope, missing) if "body" in data else None,
                content_sid=data.get("content_sid"),
                content_variables=render_value(content_variables, scope, missing)
                if content_variables is not None
                else None,
                media_url=render_value(data["media_url"], scope, missing) if "media_url" in data else None,
                missing=tuple(missing),
            )
        )
        return None

    def resume(self, walk, node, event):
        walk.log({"kind": "outcome", "ok": bool(event.ok), "error": event.error})
        edges = walk.journey.outgoing(node.id)
        if event.ok:
            return first_edge(edges, Context(ok=True)) or walk.no_way_out(node)
        edge = first_edge(edges, Context(ok=False), allowed={"failure"})
        if edge is None:
            walk.finish("failed", f"message {node.id!r} could not be sent: {event.error or 'no reason given'}")
        return edge


NODE_TYPE = Message()
