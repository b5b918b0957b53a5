"""`wait`: wait for a reply (matched by `keywords`, `regex`, `payload`, else `fallback`) or a `timeout`."""

from __future__ import annotations

from .. import effects, events
from ..conditions import REPLY_CONDITIONS, Context
from ..durations import parse_duration
from ..problems import never_taken, warning
from .base import NodeType, duration_problem, first_edge


class Wait(NodeType):
    name = "wait"
    title = "wait for a reply"
    order = 30
    keys = ("timeout",)
    conditions = frozenset({"keywords", "regex", "payload", "fallback", "timeout"})
    pauses = True
    resumes_on = {events.Reply: "waiting", events.TimerFired: "waiting"}

    def check(self, data):
        return duration_problem(data, "timeout", required=False)

    def compile(self, data):
        return {"seconds": parse_duration(data["timeout"]) if "timeout" in data else None}

    def lint(self, journey, node):
        edges = journey.outgoing(node.id)
        return _missing_edges(node, edges) + _shadowed_edges(edges)

    def enter(self, walk, node):
        walk.status = "waiting"
        if node.settings["seconds"] is not None:
            walk.emit(effects.ScheduleWake(node.id, walk.visits[node.id], walk.now + node.settings["seconds"]))
        return None

    def resume(self, walk, node, event):
        if isinstance(event, events.TimerFired):
            walk.log({"kind": "timer", "node": node.id, "visit": event.visit})
            edge = first_edge(walk.journey.outgoing(node.id), Context(timed_out=True), allowed={"timeout"})
            return edge or walk.no_way_out(node)
        walk.set_variable("reply", event.text)
        walk.set_variable("payload", event.payload)
        edge = reply_edge(walk.journey.outgoing(node.id), event.text, event.payload)
        walk.log(
            {
                "kind": "reply",
                "text": event.text,
                "payload": event.payload,
                "matched": edge is not None and edge.when != "fallback",
            }
        )
        if edge is not None and node.settings["seconds"] is not None:
            walk.emit(effects.ScheduleWake(node.id, walk.visits[node.id], None))
        return edge


def reply_edge(edges, text: str, payload: str | None = None):
    """The edge a reply takes out of a wait (a `fallback` when nothing else matches), or None: still waiting.

    The designer's replies test bench calls this too, so what it shows is what a run does.
    """
    return first_edge(edges, Context(reply=text, payload=payload), allowed=REPLY_CONDITIONS, fallback=True)


def _missing_edges(node, edges) -> list:
    """A wait with no fallback, no timeout, or a timeout and its edge not both there."""
    warnings = []
    whens = [edge.when for edge in edges]
    if "fallback" not in whens:
        warnings.append(
            warning(
                f"wait {node.id!r} has no fallback edge: a reply that matches nothing leaves the contact waiting",
                node.id,
                field="edges",
            )
        )
    if node.settings["seconds"] is None:
        warnings.append(
            warning(
                f"wait {node.id!r} has no timeout: a contact who never replies waits until the run is stopped",
                node.id,
                field="timeout",
            )
        )
        warnings += [never_taken(edge, "the wait has no timeout") for edge in edges if edge.when == "timeout"]
    elif "timeout" not in whens:
        warnings.append(
            warning(
                f"wait {node.id!r} has a timeout but no timeout edge: when it passes the contact finishes as completed",
                node.id,
                field="edges",
            )
        )
    return warnings


def _shadowed_edges(edges) -> list:
    """Edges an earlier edge always beats: the same payload or pattern, keywords already matched, a second
    fallback or timeout."""
    warnings = []
    keywords: list[str] = []
    seen: set = set()
    for edge in edges:
        if edge.when in ("fallback", "timeout"):
            if edge.when in seen:
                warnings.append(never_taken(edge, f"an earlier {edge.when} edge of the node is always taken first"))
            seen.add(edge.when)
        elif edge.when == "keywords":
            words = edge.condition.keywords
            shadowed = [word for word in words if any(f" {earlier} " in f" {word} " for earlier in keywords)]
            if len(shadowed) == len(words):
                warnings.append(never_taken(edge, "earlier edges of the node already match all its keywords"))
            else:
                warnings += [
                    warning(
                        f"edge #{edge.index} ({edge.source} -> {edge.target}): keyword {word!r} is already "
                        "matched by an earlier edge of the node",
                        edge.source,
                        edge.index,
                        "when",
                    )
                    for word in shadowed
                ]
            keywords += words
        else:
            if (edge.when, edge.condition) in seen:
                warnings.append(never_taken(edge, f"an earlier edge of the node has the same {edge.when}"))
            seen.add((edge.when, edge.condition))
    return warnings


NODE_TYPE = Wait()
