"""Path analysis for pre-flight: which `message` nodes a contact can pass, least and most.

Pure (stdlib only). Every simple path from the `audience` node is followed
(each node at most once per path); a path ends at a node with no way on, at
a `wait` (the contact may never reply), or where it would loop back (a loop
always passes a `wait` or `delay`, so a contact going round it is counted
once and `loops` says more are possible).
"""

from __future__ import annotations

from dataclasses import dataclass

from .definitions import Definition

MAX_PATHS = 2000  # distinct paths followed; a journey with more is summarised from these


@dataclass(frozen=True)
class PathSummary:
    """The message node ids along each distinct path, in order."""

    paths: tuple[tuple[str, ...], ...]
    loops: bool  # some path can go round a loop (more messages than counted)
    truncated: bool  # more than MAX_PATHS paths: the figures come from the first ones


def message_paths(journey: Definition) -> PathSummary:
    """Follow every simple path from the audience node and list the messages on each."""
    found: set[tuple[str, ...]] = set()
    loops, explored = False, 0
    stack = [(journey.audience.id, (journey.audience.id,), ())]
    while stack and explored < MAX_PATHS * 20:
        explored += 1
        node_id, visited, messages = stack.pop()
        node = journey.node(node_id)
        if node.type == "message":
            messages = (*messages, node_id)
        targets = [edge.target for edge in journey.outgoing(node_id)]
        if node.type == "wait" or not targets:
            found.add(messages)
        for target in dict.fromkeys(targets):
            if target in visited:
                loops = True
                found.add(messages)
            elif len(found) < MAX_PATHS:
                stack.append((target, (*visited, target), messages))
    return PathSummary(tuple(sorted(found, key=lambda path: (len(path), path))), loops, bool(stack))


def messages_before_a_reply(journey: Definition) -> list[str]:
    """Message nodes a contact can reach without having replied (through a `wait` only by its timeout).

    On WhatsApp these go outside a 24-hour session unless the contact wrote
    lately, so they must be approved templates.
    """
    seen, stack, found = set(), [journey.audience.id], []
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = journey.node(node_id)
        if node.type == "message":
            found.append(node_id)
        edges = journey.outgoing(node_id)
        if node.type == "wait":
            edges = [edge for edge in edges if edge.when == "timeout"]
        stack.extend(edge.target for edge in edges)
    return sorted(found)
