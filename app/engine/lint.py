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
  variables, `save_as` names and `<save_as>_status` are always known;
  `trigger` too when the journey has keyword triggers);
- templates written in the predecessor's `{{name}}` spelling: read like
  `<<name>>`, and said so, so the author knows which spelling was read.
"""

from __future__ import annotations

from collections.abc import Iterable

from .definitions import Definition
from .placeholders import BRACES, placeholders, spellings
from .problems import Problem, warning

ALWAYS_KNOWN = ("reply", "payload", "phone", "name")


def lint(journey: Definition, sample_fields: Iterable[str] | None = None) -> list[Problem]:
    """Warnings for `journey`; `sample_fields` (names, or a sample contact dict) enables the placeholder check."""
    warnings: list[Problem] = []
    warnings += _unreachable(journey)
    warnings += _dead_ends(journey)
    for node in journey.nodes:
        warnings += node.kind.lint(journey, node)
    if sample_fields is not None:
        warnings += _unknown_placeholders(journey, sample_fields)
    warnings += _predecessor_spelling(journey)
    return warnings


def _predecessor_spelling(journey: Definition) -> list[Problem]:
    return [
        warning(
            f"node {node.id!r}: {field_name} uses the predecessor's {{{{name}}}} spelling; "
            "it is read exactly like <<name>>",
            node.id,
            field=field_name,
        )
        for node in journey.nodes
        for field_name, text in node.kind.templates(node.data)
        if BRACES in spellings(text)
    ]


def _unreachable(journey: Definition) -> list[Problem]:
    seen = {journey.audience.id}
    todo = [journey.audience.id]
    while todo:
        for edge in journey.outgoing(todo.pop()):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return [
        warning(f"node {node.id!r} cannot be reached from the audience node", node.id)
        for node in journey.nodes
        if node.id not in seen
    ]


def _dead_ends(journey: Definition) -> list[Problem]:
    return [
        warning(
            f"node {node.id!r} has no edge out: a contact reaching it finishes as completed", node.id, field="edges"
        )
        for node in journey.nodes
        if not node.kind.finishes and not journey.outgoing(node.id)
    ]


def _unknown_placeholders(journey: Definition, sample_fields: Iterable[str]) -> list[Problem]:
    known = {str(name).casefold() for name in sample_fields} | set(ALWAYS_KNOWN)
    if journey.document.get("triggers"):
        known.add("trigger")
    for node in journey.nodes:
        known |= {name.casefold() for name in node.kind.stored_variables(node.data)}
    warnings = []
    for node in journey.nodes:
        for field_name, text in node.kind.templates(node.data):
            unknown = dict.fromkeys(
                placeholder.path
                for placeholder in placeholders(text)
                if placeholder.default is None and placeholder.path.split(".")[0].strip().casefold() not in known
            )
            warnings += [
                warning(
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
                warning(
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
            warning(
                f"node {journey.audience.id!r}: where tests {where.var!r}, which no known variable fills",
                journey.audience.id,
                field="where",
            )
        )
    return warnings
