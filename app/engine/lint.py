"""Lint: warnings about a valid journey that will probably not do what its author meant.

- nodes no contact can reach from the audience node;
- nodes other than `end` with no edge out (a contact there finishes `completed`);
- a `wait` with no `fallback` edge (an unmatched reply leaves the contact
  waiting), with no `timeout` (a silent contact waits until the run is
  stopped), with a timeout but no `timeout` edge, or the reverse;
- edges that can never be taken: a keyword, payload or pattern an earlier edge
  of the node already matches (a keyword phrase containing an earlier keyword
  counts), a second `fallback` or `timeout`, anything after an edge that
  always holds;
- placeholders without a default that no known variable fills, when a sample
  of contact fields is given (`reply`, `payload`, `phone`, `name`, `set`
  variables, `save_as` names and `<save_as>_status` are always known).
"""

from __future__ import annotations

from collections.abc import Iterable

from .definitions import Definition, Edge, Node
from .placeholders import placeholders
from .problems import Problem

ALWAYS_KNOWN = ("reply", "payload", "phone", "name")


def lint(journey: Definition, sample_fields: Iterable[str] | None = None) -> list[Problem]:
    """Warnings for `journey`; `sample_fields` (names, or a sample contact dict) enables the placeholder check."""
    warnings: list[Problem] = []
    warnings += _unreachable(journey)
    warnings += _dead_ends(journey)
    warnings += _waits(journey)
    for node in journey.nodes:
        warnings += _never_taken(node, journey.outgoing(node.id))
    if sample_fields is not None:
        warnings += _unknown_placeholders(journey, sample_fields)
    return warnings


def _warning(message: str, node_id: str | None = None, edge_index: int | None = None, field: str | None = None):
    return Problem("warning", message, node_id, edge_index, field)


def _unreachable(journey: Definition) -> list[Problem]:
    seen = {journey.audience.id}
    todo = [journey.audience.id]
    while todo:
        for edge in journey.outgoing(todo.pop()):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return [
        _warning(f"node {node.id!r} cannot be reached from the audience node", node.id)
        for node in journey.nodes
        if node.id not in seen
    ]


def _dead_ends(journey: Definition) -> list[Problem]:
    return [
        _warning(
            f"node {node.id!r} has no edge out: a contact reaching it finishes as completed", node.id, field="edges"
        )
        for node in journey.nodes
        if node.type != "end" and not journey.outgoing(node.id)
    ]


def _waits(journey: Definition) -> list[Problem]:
    warnings = []
    for node in journey.nodes:
        if node.type != "wait":
            continue
        whens = [edge.when for edge in journey.outgoing(node.id)]
        has_timeout = node.settings["seconds"] is not None
        if "fallback" not in whens:
            warnings.append(
                _warning(
                    f"wait {node.id!r} has no fallback edge: a reply that matches nothing leaves the contact waiting",
                    node.id,
                    field="edges",
                )
            )
        if not has_timeout:
            warnings.append(
                _warning(
                    f"wait {node.id!r} has no timeout: a contact who never replies waits until the run is stopped",
                    node.id,
                    field="timeout",
                )
            )
            warnings += [
                _never(edge, "the wait has no timeout") for edge in journey.outgoing(node.id) if edge.when == "timeout"
            ]
        elif "timeout" not in whens:
            warnings.append(
                _warning(
                    f"wait {node.id!r} has a timeout but no timeout edge: when it passes "
                    "the contact finishes as completed",
                    node.id,
                    field="edges",
                )
            )
    return warnings


def _never(edge: Edge, reason: str) -> Problem:
    return _warning(
        f"edge #{edge.index} ({edge.source} -> {edge.target}) can never be taken: {reason}",
        edge.source,
        edge.index,
        "when",
    )


def _never_taken(node: Node, edges: tuple[Edge, ...]) -> list[Problem]:
    if node.type == "wait":
        return _never_taken_wait(edges)
    if node.type in ("message", "api", "branch"):
        return _never_taken_by_outcome(node.type, edges)
    return []


def _never_taken_wait(edges: tuple[Edge, ...]) -> list[Problem]:
    warnings = []
    keywords: list[str] = []
    seen: set = set()
    for edge in edges:
        condition = edge.condition
        if edge.when in ("fallback", "timeout"):
            if edge.when in seen:
                warnings.append(_never(edge, f"an earlier {edge.when} edge of the node is always taken first"))
            seen.add(edge.when)
        elif edge.when == "keywords":
            shadowed = [
                word for word in condition.keywords if any(f" {earlier} " in f" {word} " for earlier in keywords)
            ]
            if len(shadowed) == len(condition.keywords):
                warnings.append(_never(edge, "earlier edges of the node already match all its keywords"))
            else:
                warnings += [
                    _warning(
                        f"edge #{edge.index} ({edge.source} -> {edge.target}): keyword {word!r} is already "
                        "matched by an earlier edge of the node",
                        edge.source,
                        edge.index,
                        "when",
                    )
                    for word in shadowed
                ]
            keywords += condition.keywords
        else:
            key = (edge.when, condition.payload if edge.when == "payload" else condition.regex.pattern.pattern)
            if key in seen:
                warnings.append(_never(edge, f"an earlier edge of the node has the same {edge.when}"))
            seen.add(key)
    return warnings


_OUTCOMES = {
    # node type -> condition -> the outcomes under which that condition holds
    "message": {"always": {"ok"}, "success": {"ok"}, "failure": {"failed"}},
    "api": {"always": {"ok", "failed"}, "success": {"ok"}, "failure": {"failed"}},
}


def _never_taken_by_outcome(node_type: str, edges: tuple[Edge, ...]) -> list[Problem]:
    warnings = []
    covered: set = set()
    fallback_seen = False
    for edge in edges:
        if node_type == "branch":
            if "always" in covered:
                warnings.append(_never(edge, "an earlier unconditional edge of the node is always taken"))
            elif edge.when == "fallback":
                if fallback_seen:
                    warnings.append(_never(edge, "an earlier fallback edge of the node is always taken first"))
                fallback_seen = True
            elif edge.when == "always":
                covered.add("always")
            elif (edge.when, edge.condition) in covered:
                warnings.append(_never(edge, "an earlier edge of the node has the same condition"))
            else:
                covered.add((edge.when, edge.condition))
            continue
        outcomes = _OUTCOMES[node_type][edge.when]
        if outcomes <= covered:
            warnings.append(
                _never(
                    edge,
                    "earlier edges of the node already cover "
                    + " and ".join(
                        "success" if outcome == "ok" else "failure" for outcome in sorted(outcomes, reverse=True)
                    ),
                )
            )
        covered |= outcomes
    return warnings


def _unknown_placeholders(journey: Definition, sample_fields: Iterable[str]) -> list[Problem]:
    known = {str(name).casefold() for name in sample_fields} | set(ALWAYS_KNOWN)
    for node in journey.nodes:
        if node.type == "set":
            known |= {name.casefold() for name in node.data["vars"]}
        save_as = node.data.get("save_as") if node.type == "api" else None
        if save_as:
            known |= {save_as.casefold(), f"{save_as}_status".casefold()}
    warnings = []
    for node in journey.nodes:
        for field_name, text in node.kind.templates(node.data):
            unknown = dict.fromkeys(
                placeholder.path
                for placeholder in placeholders(text)
                if placeholder.default is None and placeholder.path.split(".")[0].strip().casefold() not in known
            )
            warnings += [
                _warning(
                    f"node {node.id!r}: <<{path}>> in {field_name} is filled by no known variable "
                    "and has no default, so it renders empty",
                    node.id,
                    field=field_name,
                )
                for path in unknown
            ]
    for edge in journey.edges:
        if edge.when == "var" and edge.condition.var.split(".")[0].strip().casefold() not in known:
            warnings.append(
                _warning(
                    f"edge #{edge.index} ({edge.source} -> {edge.target}) tests "
                    f"{edge.condition.var!r}, which no known variable fills",
                    edge.source,
                    edge.index,
                    "when",
                )
            )
    where = journey.audience.settings["where"]
    if where is not None and where.var.split(".")[0].strip().casefold() not in known:
        warnings.append(
            _warning(
                f"node {journey.audience.id!r}: where tests {where.var!r}, which no known variable fills",
                journey.audience.id,
                field="where",
            )
        )
    return warnings
