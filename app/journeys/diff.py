"""What changed between two versions of a journey, for the versions page.

Operators publish with a note, but the note is what they meant to change;
the diff is what did change: nodes and edges added, removed or changed, in
words they can check before restoring an old version. Pure: two `journey/v1`
dicts in, a `JourneyDiff` out.

Edges have no ids, so an edge is known by its source, target and condition;
an edge whose condition or weight changed between the same two nodes is
*changed*, and a node whose edges kept their set but not their order is
reported as *reordered* (order is priority). A node that kept its content
under a new id is reported as *renamed*. `position` is a layout hint and is
ignored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

IGNORED_NODE_KEYS = {"id", "position"}
TOP_LEVEL_KEYS = ("name", "description", "channel")


@dataclass
class NodeChange:
    node_id: str
    fields: list[str]


@dataclass
class EdgeChange:
    source: str
    target: str
    before: str
    after: str


@dataclass
class JourneyDiff:
    """Every difference, each list in document order; `empty` when nothing changed."""

    settings: list[str] = field(default_factory=list)
    nodes_added: list[str] = field(default_factory=list)
    nodes_removed: list[str] = field(default_factory=list)
    nodes_renamed: list[tuple[str, str]] = field(default_factory=list)
    nodes_changed: list[NodeChange] = field(default_factory=list)
    edges_added: list[str] = field(default_factory=list)
    edges_removed: list[str] = field(default_factory=list)
    edges_changed: list[EdgeChange] = field(default_factory=list)
    edges_reordered: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)

    def summary(self) -> str:
        """One line such as `2 nodes added, 1 edge changed`."""
        parts = []
        for count, what in (
            (len(self.nodes_added), "node added"),
            (len(self.nodes_removed), "node removed"),
            (len(self.nodes_renamed), "node renamed"),
            (len(self.nodes_changed), "node changed"),
            (len(self.edges_added), "edge added"),
            (len(self.edges_removed), "edge removed"),
            (len(self.edges_changed), "edge changed"),
            (len(self.edges_reordered), "node's edges reordered"),
            (len(self.settings), "setting changed"),
        ):
            if count:
                noun, _, rest = what.partition(" ")
                if count != 1:
                    noun = "nodes'" if noun == "node's" else noun + "s"
                parts.append(f"{count} {noun} {rest}")
        return ", ".join(parts) or "no changes"


def diff(before: dict, after: dict) -> JourneyDiff:
    """The changes that turn `before` into `after`."""
    result = JourneyDiff()
    for key in TOP_LEVEL_KEYS:
        if before.get(key) != after.get(key):
            result.settings.append(key)
    old_nodes, new_nodes = _nodes(before), _nodes(after)
    added = [key for key in new_nodes if key not in old_nodes]
    removed = [key for key in old_nodes if key not in new_nodes]
    renames = _renames(removed, added, old_nodes, new_nodes)
    result.nodes_renamed = list(renames.items())
    result.nodes_added = [key for key in added if key not in renames.values()]
    result.nodes_removed = [key for key in removed if key not in renames]
    for key, node in new_nodes.items():
        if key in old_nodes:
            fields = _changed_fields(old_nodes[key], node)
            if fields:
                result.nodes_changed.append(NodeChange(key, fields))
    _diff_edges(before, after, renames, result)
    return result


def _nodes(doc: dict) -> dict[str, dict]:
    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
    return {str(node.get("id")): node for node in nodes if isinstance(node, dict)}


def _content(node: dict) -> dict:
    return {key: value for key, value in node.items() if key not in IGNORED_NODE_KEYS}


def _changed_fields(old: dict, new: dict) -> list[str]:
    keys = [key for key in {**old, **new} if key not in IGNORED_NODE_KEYS]
    return [key for key in keys if old.get(key) != new.get(key)]


def _renames(removed: list[str], added: list[str], old: dict, new: dict) -> dict[str, str]:
    """Old id -> new id for removed nodes whose exact content reappears under an added id."""
    renames = {}
    available = list(added)
    for key in removed:
        match = next((other for other in available if _content(old[key]) == _content(new[other])), None)
        if match is not None:
            renames[key] = match
            available.remove(match)
    return renames


def _edges(doc: dict) -> list[dict]:
    edges = doc.get("edges") if isinstance(doc.get("edges"), list) else []
    return [edge for edge in edges if isinstance(edge, dict)]


def _condition(edge: dict) -> str:
    """The edge's condition and weight in a canonical text form."""
    when = edge.get("when")
    if when in (None, "always"):
        text = "always"
    else:
        text = when if isinstance(when, str) else json.dumps(when, sort_keys=True, ensure_ascii=False)
    if "weight" in edge:
        text += f" (weight {edge['weight']})"
    return text


def describe_edge(source: str, target: str, condition: str) -> str:
    return f"{source} → {target}" + ("" if condition == "always" else f" [{condition}]")


def _diff_edges(before: dict, after: dict, renames: dict[str, str], result: JourneyDiff) -> None:
    def key(edge: dict, rename: dict[str, str]) -> tuple[str, str, str]:
        source, target = str(edge.get("from")), str(edge.get("to"))
        return rename.get(source, source), rename.get(target, target), _condition(edge)

    old_keys = [key(edge, renames) for edge in _edges(before)]
    new_keys = [key(edge, {}) for edge in _edges(after)]
    removed = list((Counter(old_keys) - Counter(new_keys)).elements())
    added = list((Counter(new_keys) - Counter(old_keys)).elements())
    for source, target, condition in list(removed):
        partner = next((item for item in added if item[:2] == (source, target)), None)
        if partner is not None:
            result.edges_changed.append(EdgeChange(source, target, condition, partner[2]))
            removed.remove((source, target, condition))
            added.remove(partner)
    result.edges_added = [describe_edge(*item) for item in _in_order(added, new_keys)]
    result.edges_removed = [describe_edge(*item) for item in _in_order(removed, old_keys)]
    for source in dict.fromkeys(item[0] for item in new_keys):
        old_order = [item for item in old_keys if item[0] == source]
        new_order = [item for item in new_keys if item[0] == source]
        if sorted(old_order) == sorted(new_order) and old_order != new_order:
            result.edges_reordered.append(source)


def _in_order(items: list, order: list) -> list:
    pending = Counter(items)
    ordered = []
    for item in order:
        if pending[item]:
            ordered.append(item)
            pending[item] -= 1
    return ordered
