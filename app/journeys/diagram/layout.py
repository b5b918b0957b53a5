"""Where every node and waypoint of a journey goes: a small Sugiyama pipeline.

1. *Back edges* (loops) are found by a depth-first walk from the audience
   node; they are laid out reversed and drawn dashed on the right side.
2. *Layers*: longest path from the roots, so every edge points down.
3. Edges that span several layers get invisible *waypoints*, one per layer.
4. *Order* within layers: a few barycenter sweeps down and up, keeping the
   order with the fewest crossings.
5. *Coordinates*: each item is pulled towards the mean position of its
   neighbours, then pushed apart to keep the order and a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.journeys.kinds import edge_label

NODE_WIDTH = 184

NODE_HEIGHT = 54

WAYPOINT_WIDTH = 16

H_GAP = 36

LAYER_GAP = 96

MARGIN = 24

SWEEPS = 4


@dataclass
class Item:
    """A node or a waypoint of a long edge, placed in one layer."""

    key: str
    layer: int
    width: float
    node: dict | None = None
    x: float = 0.0  # centre
    up: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)


@dataclass
class LaidEdge:
    index: int
    source: str
    target: str
    edge: dict
    back: bool
    label: str = ""
    chain: list[str] = field(default_factory=list)  # item keys from the upper to the lower end


def nodes_of(doc: dict) -> list[dict]:
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def edges_of(doc: dict) -> list[dict]:
    edges = doc.get("edges") if isinstance(doc, dict) else None
    return [edge for edge in edges if isinstance(edge, dict)] if isinstance(edges, list) else []


def trigger_words(doc: dict) -> list[str]:
    """The keyword triggers as the entry node shows them (`JOIN`), whatever their channel."""
    words = []
    for trigger in doc.get("triggers") if isinstance(doc.get("triggers"), list) else []:
        if isinstance(trigger, dict) and isinstance(trigger.get("keywords"), list):
            words += [str(word).upper() for word in trigger["keywords"] if isinstance(word, str) and word.strip()]
    return list(dict.fromkeys(words))


def graph(doc: dict) -> tuple[dict[str, dict], list[LaidEdge]]:
    """Nodes by id (first of duplicate ids wins) and the drawable edges, back edges marked."""
    nodes: dict[str, dict] = {}
    triggers = trigger_words(doc)
    for node in nodes_of(doc):
        key = str(node.get("id", ""))
        if key and key not in nodes:
            nodes[key] = {**node, "triggered_by": triggers} if triggers and node.get("type") == "audience" else node
    raw = doc.get("edges") if isinstance(doc.get("edges"), list) else []
    by_source: dict[str, list[dict]] = {}
    for edge in raw:
        if isinstance(edge, dict):
            by_source.setdefault(str(edge.get("from")), []).append(edge)
    edges = [
        LaidEdge(
            index,
            str(edge["from"]),
            str(edge["to"]),
            edge,
            back=False,
            label=edge_label(edge, nodes[str(edge["from"])], by_source[str(edge["from"])]),
        )
        for index, edge in enumerate(raw)
        if isinstance(edge, dict) and str(edge.get("from")) in nodes and str(edge.get("to")) in nodes
    ]
    _mark_back_edges(nodes, edges)
    return nodes, edges


def _mark_back_edges(nodes: dict[str, dict], edges: list[LaidEdge]) -> None:
    """Depth-first from the audience node(s), then other roots: an edge into the walk's stack is a loop."""
    outgoing: dict[str, list[LaidEdge]] = {key: [] for key in nodes}
    incoming: dict[str, int] = dict.fromkeys(nodes, 0)
    for edge in edges:
        outgoing[edge.source].append(edge)
        incoming[edge.target] += 1
    audience = [key for key, node in nodes.items() if node.get("type") == "audience"]
    roots = audience + [key for key in nodes if incoming[key] == 0 and key not in audience] + list(nodes)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(outgoing[root]))]
        while stack:
            key, pending = stack[-1]
            edge = next(pending, None)
            if edge is None:
                state[key] = 2
                stack.pop()
                continue
            seen = state.get(edge.target)
            if seen == 1:
                edge.back = True
            elif seen is None:
                state[edge.target] = 1
                stack.append((edge.target, iter(outgoing[edge.target])))


def layout(nodes: dict[str, dict], edges: list[LaidEdge]) -> tuple[dict[str, Item], list[list[str]]]:
    layer = _longest_path_layers(nodes, edges)
    items = {key: Item(key, layer[key], NODE_WIDTH, node) for key, node in nodes.items()}
    for edge in edges:
        upper, lower = (edge.target, edge.source) if edge.back else (edge.source, edge.target)
        if upper == lower:
            edge.chain = [upper, lower]
            continue
        chain = [upper]
        for depth in range(layer[upper] + 1, layer[lower]):
            key = f"~{edge.index}~{depth}"
            items[key] = Item(key, depth, WAYPOINT_WIDTH)
            chain.append(key)
        chain.append(lower)
        edge.chain = chain
        for above, below in zip(chain, chain[1:]):
            items[above].down.append(below)
            items[below].up.append(above)
    layers: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for key, item in items.items():
        layers[item.layer].append(key)
    _order(layers, items)
    _place(layers, items)
    return items, layers


def _longest_path_layers(nodes: dict[str, dict], edges: list[LaidEdge]) -> dict[str, int]:
    """Layer of each node: the longest forward path from a root (Kahn's order over the acyclic part)."""
    forward = [(edge.source, edge.target) for edge in edges if not edge.back and edge.source != edge.target]
    indegree = dict.fromkeys(nodes, 0)
    children: dict[str, list[str]] = {key: [] for key in nodes}
    for source, target in forward:
        indegree[target] += 1
        children[source].append(target)
    layer = dict.fromkeys(nodes, 0)
    ready = [key for key in nodes if indegree[key] == 0]
    while ready:
        key = ready.pop()
        for child in children[key]:
            layer[child] = max(layer[child], layer[key] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return layer


def _order(layers: list[list[str]], items: dict[str, Item]) -> None:
    """Barycenter sweeps down and up; keep the ordering with the fewest crossings."""
    best = [list(layer) for layer in layers]
    best_crossings = _crossings(layers, items)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for depth in sequence:
            fixed = layers[depth - 1] if downward else layers[depth + 1]
            position = {key: index for index, key in enumerate(fixed)}
            current = {key: index for index, key in enumerate(layers[depth])}

            def barycenter(key: str) -> float:
                neighbours = items[key].up if downward else items[key].down
                places = [position[other] for other in neighbours if other in position]
                return sum(places) / len(places) if places else current[key]

            layers[depth].sort(key=lambda key: (barycenter(key), current[key]))
        crossings = _crossings(layers, items)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], crossings
    layers[:] = best


def _crossings(layers: list[list[str]], items: dict[str, Item]) -> int:
    total = 0
    for upper, lower in zip(layers, layers[1:]):
        position = {key: index for index, key in enumerate(lower)}
        pairs = sorted(
            (index, position[below])
            for index, key in enumerate(upper)
            for below in items[key].down
            if below in position
        )
        for first in range(len(pairs)):
            for second in range(first + 1, len(pairs)):
                if pairs[first][0] < pairs[second][0] and pairs[first][1] > pairs[second][1]:
                    total += 1
    return total


def _place(layers: list[list[str]], items: dict[str, Item]) -> None:
    """Centres along each layer: pack, then pull towards neighbours a few times, keeping order and gaps."""
    for layer in layers:
        x = MARGIN
        for key in layer:
            items[key].x = x + items[key].width / 2
            x += items[key].width + H_GAP
    for sweep in range(6):
        downward = sweep % 2 == 0
        sequence = layers[1:] if downward else layers[-2::-1]
        for layer in sequence:
            desired = []
            for key in layer:
                neighbours = items[key].up if downward else items[key].down
                xs = [items[other].x for other in neighbours]
                desired.append(sum(xs) / len(xs) if xs else items[key].x)
            _fit(layer, desired, items)
    low = min((item.x - item.width / 2 for item in items.values()), default=MARGIN)
    for item in items.values():
        item.x += MARGIN - low


def _fit(layer: list[str], desired: list[float], items: dict[str, Item]) -> None:
    """Positions as near to `desired` as the order and the gaps allow (push right, then left, average)."""

    def gap(left: str, right: str) -> float:
        return (items[left].width + items[right].width) / 2 + H_GAP

    rightward = list(desired)
    for index in range(1, len(layer)):
        rightward[index] = max(rightward[index], rightward[index - 1] + gap(layer[index - 1], layer[index]))
    leftward = list(desired)
    for index in range(len(layer) - 2, -1, -1):
        leftward[index] = min(leftward[index], leftward[index + 1] - gap(layer[index], layer[index + 1]))
    for index, key in enumerate(layer):
        items[key].x = (rightward[index] + leftward[index]) / 2
    for index in range(1, len(layer)):  # averaging can undo a gap when both passes moved: restore it
        minimum = items[layer[index - 1]].x + gap(layer[index - 1], layer[index])
        items[layer[index]].x = max(items[layer[index]].x, minimum)


def top_of(item: Item) -> float:
    return MARGIN + item.layer * (NODE_HEIGHT + LAYER_GAP)
