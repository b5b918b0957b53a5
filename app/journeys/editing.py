"""Editing a journey/v1 document the way the designer's forms ask: pure functions on a dict.

Each function changes the document it is given (the views hand it a copy of the
draft and save it afterwards) and returns the id of the node the editor should
show next, or None for the journey settings. Anything that cannot be stored at
all raises `Refused` with the reason in plain words; a document that is merely
invalid (a message with no body yet) is stored and its problems listed.
"""

from __future__ import annotations

import re

from app.engine.nodes import NODE_TYPES
from app.journeys.forms import Form, Refused, number
from app.journeys.kinds import ALL_TYPE_KEYS, CONDITION_KINDS, NODE_KINDS
from app.journeys.settings import SECTIONS

NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
NODE_KEYS = ("id", "type", "label")

__all__ = ["Refused"]


def find_node(doc: dict, node_id: str | None) -> dict | None:
    return next((node for node in doc.get("nodes", []) if isinstance(node, dict) and node.get("id") == node_id), None)


def edge_at(doc: dict, index: int) -> dict:
    edges = doc.get("edges", [])
    if not 0 <= index < len(edges) or not isinstance(edges[index], dict):
        raise Refused(f"edge {index} no longer exists")
    return edges[index]


def check_new_id(doc: dict, node_id: str) -> None:
    if not NODE_ID_RE.match(node_id):
        raise Refused(f"node id {node_id!r}: use 1 to 64 letters, digits, _ or -")
    if find_node(doc, node_id) is not None:
        raise Refused(f"there is already a node {node_id!r}")


def free_id(doc: dict, kind: str) -> str:
    """`message1`, `message2`…: the first id of this kind no node has."""
    number_ = 1
    while find_node(doc, f"{kind}{number_}") is not None:
        number_ += 1
    return f"{kind}{number_}"


def new_node(kind: str, node_id: str) -> dict:
    """A node just added: its id and type, and the keys its type starts with."""
    node_type = _node_type(kind)
    return {"id": node_id, "type": kind, **{key: _copy(value) for key, value in node_type.defaults.items()}}


def add_node(doc: dict, kind: str, node_id: str = "", after: str = "") -> str:
    """Append a node of `kind` (id given or the next free one), joined from `after` when that node exists."""
    node_id = node_id or free_id(doc, kind)
    check_new_id(doc, node_id)
    doc["nodes"].append(new_node(kind, node_id))
    if after and find_node(doc, after):
        doc["edges"].append({"from": after, "to": node_id})
    return node_id


def rename(doc: dict, old: str, new: str) -> None:
    """Give a node a new id; its edges follow."""
    for edge in doc.get("edges", []):
        if edge.get("from") == old:
            edge["from"] = new
        if edge.get("to") == old:
            edge["to"] = new


def apply_node_form(doc: dict, node_id: str, form: Form) -> str:
    """Replace the node with what its form says (a new id renames it, its edges follow); return its id."""
    old = find_node(doc, node_id)
    if old is None:
        raise Refused(f"node {node_id!r} no longer exists")
    new_id = form.get("id", node_id).strip()
    replacement = node_from_form(old, new_id, form)
    if new_id != node_id:
        check_new_id(doc, new_id)
        rename(doc, node_id, new_id)
    doc["nodes"][doc["nodes"].index(old)] = replacement
    return new_id


def node_from_form(old: dict, node_id: str, form: Form) -> dict:
    """The node a node form describes; keys the form does not know (position…) are kept."""
    kind = form.get("type", old.get("type"))
    node_type = _node_type(kind)
    kept = {key: value for key, value in old.items() if key not in ALL_TYPE_KEYS and key not in NODE_KEYS}
    node = {"id": node_id, "type": node_type.name, **kept}
    label = form.get("label", "").strip()
    if label:
        node["label"] = label
    NODE_KINDS[node_type.name].from_form(form, node)
    return node


def switch_type(node: dict, kind: str) -> dict:
    """A node shown with another type in its form: id, label and position kept, the old type's keys dropped."""
    if node.get("type") == kind:
        return node
    return {**{key: value for key, value in node.items() if key not in ALL_TYPE_KEYS}, "type": kind}


def delete_node(doc: dict, node_id: str) -> None:
    """Remove a node and every edge into or out of it."""
    doc["nodes"] = [node for node in doc["nodes"] if node.get("id") != node_id]
    doc["edges"] = [edge for edge in doc["edges"] if node_id not in (edge.get("from"), edge.get("to"))]


def add_edge(doc: dict, node_id: str, form: Form) -> str:
    if find_node(doc, node_id) is None:
        raise Refused(f"node {node_id!r} no longer exists")
    edge = {"from": node_id, "to": form.get("to", "")}
    _edge_from_form(edge, form)
    doc["edges"].append(edge)
    return node_id


def save_edge(doc: dict, index: int, form: Form) -> str | None:
    edge = edge_at(doc, index)
    edge["to"] = form.get("to", edge.get("to"))
    _edge_from_form(edge, form)
    return edge.get("from")


def delete_edge(doc: dict, index: int) -> str | None:
    edge = edge_at(doc, index)
    doc["edges"].pop(index)
    return edge.get("from")


def move_edge(doc: dict, index: int, direction: str) -> str | None:
    """Swap an edge with the previous (`up`) or next (`down`) edge of the same node: order is priority."""
    edge = edge_at(doc, index)
    siblings = [i for i, other in enumerate(doc["edges"]) if other.get("from") == edge.get("from")]
    place = siblings.index(index)
    other = place - 1 if direction == "up" else place + 1
    if 0 <= other < len(siblings):
        a, b = index, siblings[other]
        doc["edges"][a], doc["edges"][b] = doc["edges"][b], doc["edges"][a]
    return edge.get("from")


def condition_from_form(form: Form):
    """The `when` an edge form describes (None = unconditional)."""
    kind = form.get("kind", "always")
    if kind not in CONDITION_KINDS:
        raise Refused(f"unknown condition {kind!r}")
    return CONDITION_KINDS[kind].from_form(form)


def apply_settings(doc: dict, form: Form) -> None:
    """The journey settings form: every section reads its own fields."""
    for section in SECTIONS:
        section.apply(doc, form)


def _edge_from_form(edge: dict, form: Form) -> None:
    when = condition_from_form(form)
    if when is None:
        edge.pop("when", None)
    else:
        edge["when"] = when
    weight = form.get("weight", "").strip()
    if weight:
        edge["weight"] = number(weight, "weight")
    else:
        edge.pop("weight", None)


def _node_type(kind):
    node_type = NODE_TYPES.get(kind) if isinstance(kind, str) else None
    if node_type is None:
        raise Refused(f"unknown node type {kind!r} (use one of {', '.join(NODE_TYPES)})")
    return node_type


def _copy(value):
    return dict(value) if isinstance(value, dict) else value
