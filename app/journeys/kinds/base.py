"""The designer's half of a node type or a condition: what the editor and the diagram need to know.

One `NodeKind` per engine node type (`app/journeys/kinds/nodes/<type>.py`) and one `ConditionKind`
per engine condition (`app/journeys/kinds/conditions/<name>.py`), each with one template under
`templates/journeys/kinds/`. Pure: no Flask, so the diagram and the editing functions can use them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.engine.nodes import NODE_TYPES, NodeType
from app.journeys.forms import Form

UNKNOWN_STYLE = ("#f8f9fa", "#868e96", "rect")


class NodeKind:
    """Form fields, form parsing, diagram style and summary of one node type."""

    name: ClassVar[str]
    style: ClassVar[tuple[str, str, str]]  # fill, stroke, shape (a shape `diagram.svg` draws)
    open_add_edge: ClassVar[bool] = False  # nodes that usually have several edges show "Add an edge" open
    weighted_edges: ClassVar[bool] = False  # its edges have a weight field
    tools: ClassVar[tuple[str, ...]] = ()  # extra panel templates shown under the node's edges

    @property
    def engine(self) -> NodeType:
        return NODE_TYPES[self.name]

    @property
    def title(self) -> str:
        return self.engine.title

    @property
    def template(self) -> str:
        return f"journeys/kinds/nodes/{self.name}.html"

    @property
    def allows_edges(self) -> bool:
        return bool(self.engine.conditions)

    def summary(self, node: dict) -> str:
        """One line saying what a node does, under its name in the diagram and the node list."""
        raise NotImplementedError

    def from_form(self, form: Form, node: dict) -> None:
        """Set the type's keys of `node` from its form (the other keys are already there)."""

    def edge_label(self, edge: dict, source: dict, siblings: list[dict], text: str) -> str:
        """An edge's label on the diagram; `text` is what its condition says."""
        return text

    def preview(self, node: dict, sample: dict) -> dict | None:
        """What the node would send to the sample contact, for the editor's preview."""
        return None


class UnknownNodeKind(NodeKind):
    """A draft's node whose type no module defines: drawn grey, refused when saved."""

    name = ""
    style = UNKNOWN_STYLE

    @property
    def title(self) -> str:
        return "unknown type"

    @property
    def template(self) -> str:
        return "journeys/kinds/unknown.html"

    @property
    def allows_edges(self) -> bool:
        return True

    def summary(self, node: dict) -> str:
        return f"unknown type {node.get('type')!r}"


class ConditionKind:
    """Form fields, form parsing and diagram label of one edge condition."""

    name: ClassVar[str]
    title: ClassVar[str]  # in the edge form's "When" select
    blank: ClassVar[Any] = None  # the `when` an empty form shows

    @property
    def template(self) -> str:
        return f"journeys/kinds/conditions/{self.name}.html"

    def from_form(self, form: Form) -> Any:
        """The `when` an edge form describes (None = unconditional)."""
        return self.name

    def label(self, when: Any) -> str:
        """What the condition says on the diagram: `yes, sim`, `else`…"""
        return self.name
