"""`journey/v1` definitions: validation, and the immutable `Definition` that `parse` builds.

`validate` never raises on any JSON value; it returns every problem at once,
each naming the node (by id, or `#index` when the id is unusable) or the edge
(by index, `#0` first) and saying what is wrong. `parse` refuses a definition
with errors (`JourneyInvalid`) and otherwise builds a `Definition` whose
`to_json()` gives back exactly the document it was built from, unknown keys,
`label` and `position` included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .conditions import Condition, compile_condition, condition_name, condition_problems
from .nodes import CHANNELS, NODE_TYPES, NodeType, a_or_an
from .placeholders import template_problems
from .problems import JourneyInvalid, Problem
from .triggers import trigger_problems
from .windows import SendWindow, parse_window, window_problems

FORMAT = "journey/v1"
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
NAME_MAX = 200


def freeze(value: Any) -> Any:
    """A read-only copy of a JSON value: dicts become mapping proxies, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON value `freeze` was given."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    data: Mapping  # the node's JSON, read-only
    settings: dict = field(compare=False)  # worked out once by the node type

    @property
    def kind(self) -> NodeType:
        return NODE_TYPES[self.type]

    @property
    def label(self) -> str | None:
        return self.data.get("label")


@dataclass(frozen=True)
class Edge:
    index: int  # position in the definition's edge list
    source: str
    target: str
    when: str  # the condition's registry name
    condition: Condition = field(compare=False)
    weight: int
    data: Mapping

    @property
    def label(self) -> str | None:
        return self.data.get("label")


@dataclass(frozen=True)
class Definition:
    """A valid definition, ready to step contacts through."""

    name: str
    channel: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    document: Mapping = field(repr=False, compare=False)
    audience: Node = field(init=False, repr=False, compare=False)
    _by_id: dict = field(init=False, repr=False, compare=False)
    _outgoing: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        outgoing: dict[str, list[Edge]] = {node.id: [] for node in self.nodes}
        for edge in self.edges:
            outgoing[edge.source].append(edge)
        object.__setattr__(self, "audience", next(node for node in self.nodes if node.type == "audience"))
        object.__setattr__(self, "_by_id", {node.id: node for node in self.nodes})
        object.__setattr__(self, "_outgoing", {key: tuple(value) for key, value in outgoing.items()})

    @property
    def description(self) -> str | None:
        return self.document.get("description")

    @property
    def send_window(self) -> SendWindow | None:
        """The journey's quiet hours (`send_window`), None when it may send at any time."""
        return parse_window(thaw(self.document.get("send_window")))

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def outgoing(self, node_id: str) -> tuple[Edge, ...]:
        return self._outgoing.get(node_id, ())

    def to_json(self) -> dict:
        """The definition as given to `parse` (a new, mutable copy)."""
        return thaw(self.document)


def _node_name(node: Any, index: int) -> str:
    node_id = node.get("id") if isinstance(node, dict) else None
    return f"node {node_id!r}" if isinstance(node_id, str) and node_id else f"node #{index}"


def _edge_name(edge: Any, index: int) -> str:
    if isinstance(edge, dict) and isinstance(edge.get("from"), str) and isinstance(edge.get("to"), str):
        return f"edge #{index} ({edge['from']} -> {edge['to']})"
    return f"edge #{index}"


class _Checker:
    def __init__(self):
        self.problems: list[Problem] = []

    def error(self, message: str, node_id: str | None = None, edge_index: int | None = None, field: str | None = None):
        self.problems.append(Problem("error", message, node_id, edge_index, field))

    def top_level(self, doc: dict) -> None:
        if doc.get("format") != FORMAT:
            self.error(f"format must be {FORMAT!r}, not {doc.get('format')!r}", field="format")
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip():
            self.error("name is missing: give the journey a name of 1 to 200 characters", field="name")
        elif len(name) > NAME_MAX:
            self.error(f"name is {len(name)} characters long; at most {NAME_MAX} are allowed", field="name")
        if doc.get("description") is not None and not isinstance(doc["description"], str):
            self.error("description must be text", field="description")
        if "channel" in doc and doc["channel"] not in CHANNELS:
            self.error(f"channel {doc['channel']!r} must be one of {', '.join(CHANNELS)}", field="channel")
        for field_name, message in trigger_problems(doc.get("triggers")):
            self.error(message, field=field_name)
        for field_name, message in window_problems(doc.get("send_window")):
            self.error(message, field=field_name)

    def nodes(self, nodes: list) -> dict[str, str | None]:
        """Check every node; return id -> type (None if unknown) for the nodes edges may refer to."""
        types: dict[str, str | None] = {}
        first_index: dict[str, int] = {}
        audiences = []
        for index, node in enumerate(nodes):
            where = _node_name(node, index)
            if not isinstance(node, dict):
                self.error(f"{where} must be an object", field="nodes")
                continue
            node_id = self.node_id(node, index, where, first_index)
            node_type = self.node_type(node, node_id, where)
            self.label_and_position(node, node_id, where)
            if node_id is not None and node_id not in types:
                types[node_id] = node_type.name if node_type else None
            if node_type is None:
                continue
            for field_name, message in node_type.check(node):
                self.error(f"{where}: {message}", node_id=node_id, field=field_name)
            for field_name, text in node_type.templates(node):
                for message in template_problems(text):
                    self.error(f"{where}: {field_name}: {message}", node_id=node_id, field=field_name)
            if node_type.name == "audience" and node_id is not None and first_index.get(node_id) == index:
                audiences.append(node_id)
        self.audiences(audiences)
        return types

    def node_id(self, node: dict, index: int, where: str, first_index: dict[str, int]) -> str | None:
        """The node's id if it is text (checked, duplicates reported); `first_index` records where each was first."""
        node_id = node.get("id") if isinstance(node.get("id"), str) else None
        if "id" not in node:
            self.error(f"{where}: id is missing", field="id")
        elif node_id is None or not ID_RE.match(node_id):
            self.error(
                f"{where}: id {node.get('id')!r} must be 1 to 64 letters, digits, _ or -", node_id=node_id, field="id"
            )
        if node_id is not None:
            if node_id in first_index:
                self.error(
                    f"{where}: duplicate id (node #{first_index[node_id]} has it too)", node_id=node_id, field="id"
                )
            else:
                first_index[node_id] = index
        return node_id

    def node_type(self, node: dict, node_id: str | None, where: str) -> NodeType | None:
        node_type = NODE_TYPES.get(node.get("type")) if isinstance(node.get("type"), str) else None
        if node_type is None:
            known = ", ".join(NODE_TYPES)
            message = (
                f"{where}: type is missing" if "type" not in node else f"{where}: unknown type {node.get('type')!r}"
            )
            self.error(f"{message} (use one of {known})", node_id=node_id, field="type")
        return node_type

    def label_and_position(self, node: dict, node_id: str | None, where: str) -> None:
        if "label" in node and node["label"] is not None and not isinstance(node["label"], str):
            self.error(f"{where}: label must be text", node_id=node_id, field="label")
        position = node.get("position")
        if "position" in node and not (
            isinstance(position, dict)
            and all(
                isinstance(position.get(axis), (int, float)) and not isinstance(position.get(axis), bool)
                for axis in ("x", "y")
            )
        ):
            self.error(f'{where}: position must be {{"x": number, "y": number}}', node_id=node_id, field="position")

    def audiences(self, audiences: list[str]) -> None:
        if not audiences:
            self.error("the journey needs one audience node (its entry point); it has none", field="nodes")
        for node_id in audiences[1:]:
            self.error(
                f"node {node_id!r}: the journey has {len(audiences)} audience nodes "
                f"({', '.join(audiences)}); it needs exactly one",
                node_id=node_id,
                field="type",
            )

    def edges(self, edges: list, types: dict[str, str | None]) -> dict[str, list[tuple[int, str]]]:
        """Check every edge; return node id -> [(edge index, condition name)] of usable edges."""
        outgoing: dict[str, list[tuple[int, str]]] = {node_id: [] for node_id in types}
        for index, edge in enumerate(edges):
            where = _edge_name(edge, index)
            if not isinstance(edge, dict):
                self.error(f"{where} must be an object", edge_index=index, field="edges")
                continue
            source = edge.get("from") if isinstance(edge.get("from"), str) and edge.get("from") in types else None
            ends_ok = self.edge_ends(edge, index, where, source, types)
            when_problems = condition_problems(edge.get("when"))
            for message in when_problems:
                self.error(f"{where}: {message}", node_id=source, edge_index=index, field="when")
            self.weight_and_label(edge, index, where, source)
            if not ends_ok or when_problems or types[source] is None:
                continue
            when = condition_name(edge.get("when"))
            if self.condition_allowed(when, types[source], index, where, source):
                outgoing[source].append((index, when))
        return outgoing

    def edge_ends(self, edge: dict, index: int, where: str, source: str | None, types: dict) -> bool:
        """Whether `from` and `to` both name nodes of the journey (each problem reported)."""
        ends_ok = True
        for end in ("from", "to"):
            target = edge.get(end)
            if end not in edge:
                self.error(f"{where}: {end} is missing", node_id=source, edge_index=index, field=end)
                ends_ok = False
            elif not isinstance(target, str) or target not in types:
                self.error(
                    f"{where}: {end} {target!r} is not a node of this journey",
                    node_id=source,
                    edge_index=index,
                    field=end,
                )
                ends_ok = False
        return ends_ok

    def weight_and_label(self, edge: dict, index: int, where: str, source: str | None) -> None:
        if "weight" in edge:
            weight = edge["weight"]
            if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
                self.error(
                    f"{where}: weight {weight!r} must be a whole number above 0",
                    node_id=source,
                    edge_index=index,
                    field="weight",
                )
        if "label" in edge and edge["label"] is not None and not isinstance(edge["label"], str):
            self.error(f"{where}: label must be text", node_id=source, edge_index=index, field="label")

    def condition_allowed(self, when: str, node_type: str, index: int, where: str, source: str) -> bool:
        allowed = NODE_TYPES[node_type].conditions
        if not allowed:
            self.error(
                f"{where}: {a_or_an(node_type)} node has no edges out", node_id=source, edge_index=index, field="from"
            )
            return False
        if when not in allowed:
            self.error(
                f"{where}: condition {when!r} is not allowed on {a_or_an(node_type)} node "
                f"(allowed: {', '.join(sorted(allowed))})",
                node_id=source,
                edge_index=index,
                field="when",
            )
            return False
        return True

    def edge_counts(self, types: dict[str, str | None], outgoing: dict[str, list[tuple[int, str]]]) -> None:
        for node_id, node_type in types.items():
            if node_type is None:
                continue
            for edge_index, message in NODE_TYPES[node_type].check_edges(outgoing[node_id]):
                self.error(f"node {node_id!r}: {message}", node_id=node_id, edge_index=edge_index, field="edges")


def validate(doc: Any) -> list[Problem]:
    """Every error in a definition; an empty list means `parse` will accept it."""
    checker = _Checker()
    if not isinstance(doc, dict):
        checker.error("a journey definition must be a JSON object")
        return checker.problems
    checker.top_level(doc)
    nodes, edges = doc.get("nodes"), doc.get("edges")
    if not isinstance(nodes, list):
        checker.error("nodes is missing" if nodes is None else "nodes must be a list", field="nodes")
        nodes = []
    if not isinstance(edges, list):
        checker.error("edges is missing" if edges is None else "edges must be a list", field="edges")
        edges = []
    types = checker.nodes(nodes)
    outgoing = checker.edges(edges, types)
    checker.edge_counts(types, outgoing)
    for names in pause_free_loops(types, edges, outgoing):
        checker.error(
            f"nodes {', '.join(names)} form a loop with no wait or delay: a contact would go round it "
            "without pause (and could be sent messages without end); put a wait or a delay in it",
            node_id=names[0],
            field="edges",
        )
    return checker.problems


PAUSING_TYPES = ("wait", "delay")


def pause_free_loops(types: dict[str, str | None], edges: list, outgoing: dict[str, list[tuple[int, str]]]):
    """The cycles a contact can go round without passing a `wait` or `delay`: each a list of node ids.

    Strongly connected components (iterative Tarjan) of the graph of usable
    edges between the other nodes; a component counts when it has two nodes
    or more, or one node with an edge to itself. Ids in definition order.
    """
    keep = [node_id for node_id, node_type in types.items() if node_type not in PAUSING_TYPES]
    kept = set(keep)
    successors = {
        node_id: [edges[index]["to"] for index, _when in outgoing.get(node_id, ()) if edges[index]["to"] in kept]
        for node_id in keep
    }
    order = {node_id: position for position, node_id in enumerate(keep)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops = []
    for root in keep:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node_id, position = work.pop()
            if position == 0:
                index[node_id] = low[node_id] = len(index)
                stack.append(node_id)
                on_stack.add(node_id)
            targets = successors[node_id]
            if position < len(targets):
                work.append((node_id, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node_id] = min(low[node_id], index[target])
                continue
            if low[node_id] == index[node_id]:
                component = []
                while not component or component[-1] != node_id:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                if len(component) > 1 or node_id in successors[node_id]:
                    loops.append(sorted(component, key=order.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node_id])
    return sorted(loops, key=lambda names: order[names[0]])


def parse(doc: Any) -> Definition:
    """The parsed `Definition` of a valid document; raises `JourneyInvalid` listing every error."""
    problems = validate(doc)
    if problems:
        raise JourneyInvalid(problems)
    document = freeze(doc)
    nodes = tuple(
        Node(data["id"], data["type"], data, NODE_TYPES[data["type"]].compile(data)) for data in document["nodes"]
    )
    edges = tuple(
        Edge(
            index=index,
            source=data["from"],
            target=data["to"],
            when=condition_name(thaw(data.get("when"))),
            condition=compile_condition(thaw(data.get("when"))),
            weight=data.get("weight", 1),
            data=data,
        )
        for index, data in enumerate(document["edges"])
    )
    return Definition(name=doc["name"], channel=doc.get("channel", "sms"), nodes=nodes, edges=edges, document=document)
