"""A journey as an SVG diagram, laid out on the server.

Operators never place nodes by hand: every render lays the graph out anew, so
a journey imported from a file, edited in a form or restored from an old
version always reads the same way. The layout is a small Sugiyama pipeline:

1. *Back edges* (loops) are found by a depth-first walk from the audience
   node; they are laid out reversed and drawn dashed on the right side.
2. *Layers*: longest path from the roots, so every edge points down.
3. Edges that span several layers get invisible *waypoints*, one per layer.
4. *Order* within layers: a few barycenter sweeps down and up, keeping the
   order with the fewest crossings.
5. *Coordinates*: each item is pulled towards the mean position of its
   neighbours, then pushed apart to keep the order and a gap.

Pure: the document dict in, SVG text out (no Flask, no database), so the run
page and the simulator reuse it with counts and a highlighted path. Drafts may
be invalid: unknown types, dangling edges and missing keys never raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

NODE_WIDTH = 184
NODE_HEIGHT = 54
WAYPOINT_WIDTH = 16
H_GAP = 36
LAYER_GAP = 96
MARGIN = 24
SWEEPS = 4
LABEL_MAX = 28
FONT_WIDTH = 6.4  # average glyph width of the 11 px label font, for label backgrounds

# type: (fill, stroke, shape)
STYLES = {
    "audience": ("#e6fcf5", "#0ca678", "pill"),
    "message": ("#e7f0ff", "#3b5bdb", "bubble"),
    "wait": ("#fff9db", "#f08c00", "hexagon"),
    "api": ("#f3f0ff", "#7048e8", "api"),
    "delay": ("#e3fafc", "#1098ad", "delay"),
    "split": ("#fff0f6", "#d6336c", "diamond"),
    "branch": ("#fff4e6", "#e8590c", "diamond"),
    "set": ("#f1f3f5", "#495057", "set"),
    "end": ("#fff5f5", "#c92a2a", "pill"),
}
UNKNOWN_STYLE = ("#f8f9fa", "#868e96", "rect")
OPERATORS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "contains": "contains", "regex": "~"}


@dataclass
class _Item:
    """A node or a waypoint of a long edge, placed in one layer."""

    key: str
    layer: int
    width: float
    node: dict | None = None
    x: float = 0.0  # centre
    up: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)


@dataclass
class _Edge:
    index: int
    source: str
    target: str
    edge: dict
    back: bool
    label: str = ""
    chain: list[str] = field(default_factory=list)  # item keys from the upper to the lower end


def render_svg(
    doc: dict,
    *,
    selected: str | None = None,
    node_counts: dict[str, dict] | None = None,
    edge_counts: dict[int, int] | None = None,
    path: list[str] | None = None,
    link_template: str | None = None,
    path_edges: list[int] | None = None,
) -> str:
    """The SVG of `doc`.

    `node_counts` ({node_id: {"here", "visits"}}) and `edge_counts` ({edge
    index: n}) annotate a run; `path` (node ids in visiting order) highlights
    what a simulated contact went through, its last node as the current one,
    and `path_edges` (edge indexes, as taken) the edges it took: only those are
    highlighted, so of two edges between the same nodes only the one taken is
    (without it, every edge between consecutive path nodes is);
    `link_template` ("/journeys/3/nodes/{id}") makes each node a focusable
    link that also carries `hx-get`, so HTMX opens it in the page's target.
    """
    nodes, edges = _graph(doc)
    items, layers = _layout(nodes, edges)
    width = max((item.x + item.width / 2 for item in items.values()), default=0) + MARGIN
    height = len(layers) * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP + 2 * MARGIN if layers else 2 * MARGIN
    has_back = any(edge.back for edge in edges)
    if has_back:
        width += 40
    width = max(width, 240)
    visited_pairs = set(zip(path or [], (path or [])[1:]))
    taken = set(path_edges) if path_edges is not None else None
    visited = set(path or [])
    current = path[-1] if path else None
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="jd-diagram" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="group" aria-label="Journey diagram: '
        f'{len(nodes)} nodes, {len(edges)} edges" font-family="system-ui, sans-serif">',
        _DEFS,
    ]
    routes = _routes(edges, items, _ports(edges, items))
    texts = {edge.index: _edge_text(edge, edge_counts) for edge in edges}
    spots = _place_labels(edges, routes, texts)
    for edge in edges:
        on_path = edge.index in taken if taken is not None else (edge.source, edge.target) in visited_pairs
        count = (edge_counts or {}).get(edge.index)
        out.append(_edge_svg(edge, routes[edge.index][0], spots.get(edge.index), texts[edge.index], count, on_path))
    for key, node in nodes.items():
        out.append(_node_svg(node, items[key], selected, node_counts, visited, current, link_template))
    if not nodes:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 16}" fill="#667085" font-size="13">No nodes yet.</text>')
    out.append("</svg>")
    return "".join(out)


def edge_label(edge: dict, doc: dict) -> str:
    """What an edge's condition says, in the words of the diagram: `yes, sim`, `else`, `timeout 2h`…"""
    source = next((node for node in _nodes_of(doc) if node.get("id") == edge.get("from")), {})
    siblings = [other for other in _edges_of(doc) if other.get("from") == edge.get("from")]
    return _label_of(edge, source, siblings)


def _label_of(edge: dict, source: dict, siblings: list[dict]) -> str:
    """`edge_label` with its source node and the source's edges already looked up."""
    when = edge.get("when")
    if when in (None, "always"):
        if source.get("type") == "split":
            return f"split {_split_share(edge, siblings)}%"
        return ""
    if when == "fallback":
        return "else"
    if when == "timeout":
        timeout = source.get("timeout")
        return f"timeout {timeout}" if timeout not in (None, "") else "timeout"
    if isinstance(when, str):
        return when
    if not isinstance(when, dict):
        return "?"
    if "keywords" in when:
        keywords = when["keywords"]
        return ", ".join(str(word) for word in keywords) if isinstance(keywords, list) else str(keywords)
    if "regex" in when:
        return f"/{when['regex']}/"
    if "payload" in when:
        return f"button {when['payload']}"
    if "var" in when:
        op = when.get("op", "eq")
        if op == "exists":
            return f"{when['var']} exists"
        return f"{when['var']} {OPERATORS.get(op, op)} {when.get('value', '')}".strip()
    return "?"


def _split_share(edge: dict, siblings: list[dict]) -> str:
    total = sum(_weight(other) for other in siblings)
    if total <= 0:
        return "0"
    share = 100 * _weight(edge) / total
    return f"{share:.0f}" if share.is_integer() or share >= 10 else f"{share:.1f}"


def _weight(edge: dict) -> float:
    weight = edge.get("weight", 1)
    return weight if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0 else 0


def _nodes_of(doc: dict) -> list[dict]:
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def _edges_of(doc: dict) -> list[dict]:
    edges = doc.get("edges") if isinstance(doc, dict) else None
    return [edge for edge in edges if isinstance(edge, dict)] if isinstance(edges, list) else []


def _graph(doc: dict) -> tuple[dict[str, dict], list[_Edge]]:
    """Nodes by id (first of duplicate ids wins) and the drawable edges, back edges marked."""
    nodes: dict[str, dict] = {}
    for node in _nodes_of(doc):
        key = str(node.get("id", ""))
        if key and key not in nodes:
            nodes[key] = node
    raw = doc.get("edges") if isinstance(doc.get("edges"), list) else []
    by_source: dict[str, list[dict]] = {}
    for edge in raw:
        if isinstance(edge, dict):
            by_source.setdefault(str(edge.get("from")), []).append(edge)
    edges = [
        _Edge(
            index,
            str(edge["from"]),
            str(edge["to"]),
            edge,
            back=False,
            label=_label_of(edge, nodes[str(edge["from"])], by_source[str(edge["from"])]),
        )
        for index, edge in enumerate(raw)
        if isinstance(edge, dict) and str(edge.get("from")) in nodes and str(edge.get("to")) in nodes
    ]
    _mark_back_edges(nodes, edges)
    return nodes, edges


def _mark_back_edges(nodes: dict[str, dict], edges: list[_Edge]) -> None:
    """Depth-first from the audience node(s), then other roots: an edge into the walk's stack is a loop."""
    outgoing: dict[str, list[_Edge]] = {key: [] for key in nodes}
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


def _layout(nodes: dict[str, dict], edges: list[_Edge]) -> tuple[dict[str, _Item], list[list[str]]]:
    layer = _longest_path_layers(nodes, edges)
    items = {key: _Item(key, layer[key], NODE_WIDTH, node) for key, node in nodes.items()}
    for edge in edges:
        upper, lower = (edge.target, edge.source) if edge.back else (edge.source, edge.target)
        if upper == lower:
            edge.chain = [upper, lower]
            continue
        chain = [upper]
        for depth in range(layer[upper] + 1, layer[lower]):
            key = f"~{edge.index}~{depth}"
            items[key] = _Item(key, depth, WAYPOINT_WIDTH)
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


def _longest_path_layers(nodes: dict[str, dict], edges: list[_Edge]) -> dict[str, int]:
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


def _order(layers: list[list[str]], items: dict[str, _Item]) -> None:
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


def _crossings(layers: list[list[str]], items: dict[str, _Item]) -> int:
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


def _place(layers: list[list[str]], items: dict[str, _Item]) -> None:
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


def _fit(layer: list[str], desired: list[float], items: dict[str, _Item]) -> None:
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


def _top(item: _Item) -> float:
    return MARGIN + item.layer * (NODE_HEIGHT + LAYER_GAP)


def _ports(edges: list[_Edge], items: dict[str, _Item]) -> dict[tuple[int, str], float]:
    """Where each forward edge leaves its source and enters its target, spread along the side by direction."""
    ends: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for edge in edges:
        if edge.back or edge.source == edge.target:
            continue
        after_source, before_target = items[edge.chain[1]], items[edge.chain[-2]]
        ends.setdefault((edge.source, "out"), []).append((after_source.x, edge.index))
        ends.setdefault((edge.target, "in"), []).append((before_target.x, edge.index))
    ports = {}
    for (key, side), entries in ends.items():
        entries.sort()
        span = min(NODE_WIDTH - 40, 26 * (len(entries) - 1))
        for rank, (_, index) in enumerate(entries):
            offset = 0 if len(entries) == 1 else -span / 2 + span * rank / (len(entries) - 1)
            ports[(index, side)] = items[key].x + offset
    return ports


def _routes(edges: list[_Edge], items: dict[str, _Item], ports) -> dict[int, tuple[list, tuple]]:
    """Each edge's points and the segment its label slides along."""
    routes = {}
    for edge in edges:
        if edge.source == edge.target:
            routes[edge.index] = _self_loop(items[edge.source])
        elif edge.back:
            routes[edge.index] = _back_route(edge, items)
        else:
            routes[edge.index] = _forward_route(edge, items, ports)
    return routes


def _place_labels(edges: list[_Edge], routes, texts: dict[int, str]) -> dict[int, tuple[float, float]]:
    """Label centres: along each edge's label segment, at the first spot that overlaps no earlier label."""
    placed: list[tuple[float, float, float, float]] = []
    spots = {}
    by_source: dict[str, int] = {}
    for edge in edges:
        text = texts.get(edge.index)
        if not text:
            continue
        (ax, ay), (bx, by) = routes[edge.index][1]
        rank = by_source.get(edge.source, 0)
        by_source[edge.source] = rank + 1
        first = 0.34 if rank % 2 == 0 else 0.66
        half_width = (len(text) * FONT_WIDTH + 10) / 2
        candidates = [first, 0.5, 0.2, 0.8, 0.12, 0.9, 0.42, 0.58, 0.27, 0.73]
        chosen = None
        for t in candidates:
            x, y = ax + (bx - ax) * t, ay + (by - ay) * t
            box = (x - half_width, y - 9, x + half_width, y + 9)
            if not any(_overlap(box, other) for other in placed):
                chosen = (x, y, box)
                break
        if chosen is None:
            x, y = ax + (bx - ax) * first, ay + (by - ay) * first
            chosen = (x, y, (x - half_width, y - 9, x + half_width, y + 9))
        placed.append(chosen[2])
        spots[edge.index] = chosen[:2]
    return spots


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _edge_svg(edge, points, label_at, text, count, on_path) -> str:
    classes = ["edge"]
    if edge.back:
        classes.append("edge-back")
    if on_path:
        classes.append("edge-path")
    stroke = "#2f9e44" if on_path else ("#e8590c" if edge.back else "#868e96")
    width = 3 if on_path else 1.6
    if count:
        width = max(width, min(7, 1.6 + math.log2(1 + count)))
    marker = "jd-arrow-path" if on_path else ("jd-arrow-back" if edge.back else "jd-arrow")
    dash = ' stroke-dasharray="6 4"' if edge.back else ""
    title = f"{edge.source} → {edge.target}" + (f": {edge.label}" if edge.label else "")
    if count is not None:
        title += f" ({count})"
    parts = [
        f'<g class="{" ".join(classes)}" data-edge="{edge.index}"><title>{escape(title)}</title>',
        f'<path d="{_smooth(points)}" fill="none" stroke="{stroke}" stroke-width="{width:.1f}"{dash} '
        f'marker-end="url(#{marker})"/>',
    ]
    if text and label_at:
        parts.append(_label(text, label_at, edge.back))
    parts.append("</g>")
    return "".join(parts)


def _edge_text(edge: _Edge, edge_counts: dict[int, int] | None) -> str:
    text = _truncate(edge.label, LABEL_MAX)
    count = (edge_counts or {}).get(edge.index)
    if count is not None:
        text = f"{text} · {count}" if text else str(count)
    return text


def _forward_route(edge, items, ports):
    source, target = items[edge.source], items[edge.target]
    start = (ports.get((edge.index, "out"), source.x), _top(source) + NODE_HEIGHT)
    end = (ports.get((edge.index, "in"), target.x), _top(target) - 2)
    waypoints = [(items[key].x, _top(items[key]) + NODE_HEIGHT / 2) for key in edge.chain[1:-1]]
    following = (waypoints[0][0], _top(items[edge.chain[1]])) if waypoints else end
    return [start, *waypoints, end], (start, following)


def _back_route(edge, items):
    """A loop leaves the lower node on the side away from its target and enters the upper node on that side."""
    source, target = items[edge.source], items[edge.target]
    middle = [(items[key].x, _top(items[key]) + NODE_HEIGHT / 2) for key in reversed(edge.chain[1:-1])]
    towards = middle[0][0] if middle else target.x
    side = -1 if towards > source.x + 1 else 1  # bulge away from the target: outwards
    start = (source.x + side * NODE_WIDTH / 2, _top(source) + NODE_HEIGHT / 2)
    end = (target.x + side * (NODE_WIDTH / 2 + 2), _top(target) + NODE_HEIGHT / 2)
    if not middle:
        outer = max(start[0], end[0]) + 34 if side > 0 else min(start[0], end[0]) - 34
        middle = [(outer, (start[1] + end[1]) / 2)]
    points = [start, *middle, end]
    centre = middle[len(middle) // 2]
    return points, (centre, centre)


def _self_loop(item):
    right = item.x + NODE_WIDTH / 2
    top = _top(item)
    points = [
        (right, top + NODE_HEIGHT * 0.7),
        (right + 30, top + NODE_HEIGHT / 2),
        (right + 2, top + NODE_HEIGHT * 0.3),
    ]
    spot = (right + 30, top + NODE_HEIGHT / 2)
    return points, (spot, spot)


def _smooth(points: list[tuple[float, float]]) -> str:
    """A path through the points: straight for two, vertical-tangent cubic curves otherwise."""
    (x0, y0), rest = points[0], points[1:]
    out = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        middle = (y0 + y1) / 2
        if abs(y1 - y0) < 1:
            out.append(f"L{x1:.1f},{y1:.1f}")
        else:
            out.append(f"C{x0:.1f},{middle:.1f} {x1:.1f},{middle:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(out)


def _label(text: str, at: tuple[float, float], back: bool) -> str:
    width = len(text) * FONT_WIDTH + 10
    x, y = at
    colour = "#a34a00" if back else "#344054"
    return (
        f'<rect class="edge-label-bg" x="{x - width / 2:.1f}" y="{y - 9:.1f}" width="{width:.1f}" height="17" '
        f'rx="8" fill="#fff" stroke="#dee2e6"/>'
        f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-size="11" fill="{colour}">{escape(text)}</text>'
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_summary(node: dict) -> str:
    """One line saying what a node does, under its name in the diagram and the node list."""
    kind = node.get("type")
    if kind == "message":
        if node.get("content_sid"):
            return f"template {node['content_sid']}"
        return " ".join(str(node.get("body") or "").split()) or "(empty message)"
    if kind == "wait":
        return f"reply, timeout {node['timeout']}" if node.get("timeout") not in (None, "") else "reply, no timeout"
    if kind == "api":
        return f"{str(node.get('method') or 'GET').upper()} {node.get('url') or ''}".strip()
    if kind == "delay":
        return f"wait {node.get('duration', '?')}"
    if kind == "set":
        variables = node.get("vars")
        return "set " + ", ".join(variables) if isinstance(variables, dict) and variables else "set (nothing)"
    if kind == "audience":
        where = node.get("where")
        return "where " + edge_label({"when": where}, {}) if isinstance(where, dict) else "every contact"
    if kind in ("split", "branch", "end"):
        return {"split": "random split", "branch": "branch on variables", "end": "finish"}[kind]
    return f"unknown type {kind!r}"


def _shape(kind: str, left: float, top: float, fill: str, stroke: str, stroke_width: float) -> str:
    w, h = NODE_WIDTH, NODE_HEIGHT
    right, bottom, middle = left + w, top + h, top + h / 2
    common = f'class="shape" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"'
    if kind == "pill":
        return f'<rect {common} x="{left}" y="{top}" width="{w}" height="{h}" rx="{h / 2}"/>'
    if kind == "hexagon":
        points = [
            (left + 14, top),
            (right - 14, top),
            (right, middle),
            (right - 14, bottom),
            (left + 14, bottom),
            (left, middle),
        ]
        return f'<polygon {common} points="{_points(points)}"/>'
    if kind == "diamond":
        points = [(left + w / 2, top - 6), (right, middle), (left + w / 2, bottom + 6), (left, middle)]
        return f'<polygon {common} points="{_points(points)}"/>'
    if kind == "bubble":
        return (
            f'<path {common} d="M{left + 8},{top} H{right - 8} Q{right},{top} {right},{top + 8} V{bottom - 8} '
            f"Q{right},{bottom} {right - 8},{bottom} H{left + 30} L{left + 16},{bottom + 8} L{left + 18},{bottom} "
            f'H{left + 8} Q{left},{bottom} {left},{bottom - 8} V{top + 8} Q{left},{top} {left + 8},{top} Z"/>'
        )
    if kind == "api":
        return (
            f'<rect {common} x="{left}" y="{top}" width="{w}" height="{h}" rx="3"/>'
            f'<path d="M{left + 9},{top} V{bottom} M{right - 9},{top} V{bottom}" stroke="{stroke}" fill="none"/>'
        )
    if kind == "delay":
        return f'<rect {common} x="{left}" y="{top}" width="{w}" height="{h}" rx="14" stroke-dasharray="5 3"/>'
    if kind == "set":
        return (
            f'<path {common} d="M{left},{top} H{right - 14} L{right},{top + 14} V{bottom} H{left} Z"/>'
            f'<path d="M{right - 14},{top} V{top + 14} H{right}" stroke="{stroke}" fill="none"/>'
        )
    return f'<rect {common} x="{left}" y="{top}" width="{w}" height="{h}" rx="4" stroke-dasharray="3 3"/>'


def _points(points) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _node_svg(node, item, selected, node_counts, visited, current, link_template) -> str:
    key = item.key
    kind = str(node.get("type", ""))
    fill, stroke, shape = STYLES.get(kind, UNKNOWN_STYLE)
    left, top = item.x - NODE_WIDTH / 2, _top(item)
    classes = ["node", f"node-{escape(kind)}"]
    stroke_width = 1.6
    if key in visited:
        classes.append("node-path")
        stroke, stroke_width = "#2f9e44", 3
    if key == current:
        classes.append("node-current")
        fill = "#d3f9d8"
    if key == selected:
        classes.append("node-selected")
        stroke_width = 3.5
    title = str(node.get("label") or key)
    summary = node_summary(node)
    heading = _truncate(title, 24)
    subtitle = _truncate(f"{kind}: {summary}" if kind else summary, 26)
    parts = [f'<g class="{" ".join(classes)}" data-node="{escape(key)}" id="diagram-node-{escape(key)}">']
    accessible = f"{title} ({kind}): {summary}"
    counts = (node_counts or {}).get(key)
    # The tooltip stays on the group: a link is named by its visible text (heading, subtitle, badges).
    parts.append(f"<title>{escape(accessible)}</title>")
    if link_template:
        href = escape(link_template.replace("{id}", key))
        # An SVG <a> is no HTMLAnchorElement, so htmx would not cancel its navigation: static/app.js does.
        parts.append(f'<a href="{href}" hx-get="{href}" class="node-link">')
    if key == selected:
        parts.append(
            f'<rect x="{left - 6}" y="{top - 8}" width="{NODE_WIDTH + 12}" height="{NODE_HEIGHT + 16}" rx="12" '
            f'fill="none" stroke="#3b5bdb" stroke-width="2" stroke-dasharray="4 3"/>'
        )
    parts.append(_shape(shape, left, top, fill, stroke, stroke_width))
    parts.append(
        f'<text x="{item.x:.1f}" y="{top + 22:.1f}" text-anchor="middle" font-size="13" font-weight="600" '
        f'fill="#1d2433">{escape(heading)}</text>'
        f'<text x="{item.x:.1f}" y="{top + 39:.1f}" text-anchor="middle" font-size="11" fill="#475467">'
        f"{escape(subtitle)}</text>"
    )
    if counts:
        parts.append(_count_badges(counts, left, top))
    if link_template:
        parts.append("</a>")
    parts.append("</g>")
    return "".join(parts)


def _count_texts(counts: dict) -> list[str]:
    """The badges' words: `N here` and `M visits`, each only when not zero."""
    here, visits = int(counts.get("here") or 0), int(counts.get("visits") or 0)
    return [
        text
        for number, text in ((here, f"{here} here"), (visits, f"{visits} visit{'s' if visits != 1 else ''}"))
        if number
    ]


def _count_badges(counts: dict, left: float, top: float) -> str:
    """`N here` in a filled pill at the node's top right, `M visits` in an outlined one at its top left."""
    out = []
    for text in _count_texts(counts):
        if text.endswith("here"):
            out.append(_pill("count-here", text, left + NODE_WIDTH + 6 - _pill_width(text), top, "#3b5bdb", "#fff"))
        else:
            out.append(_pill("count-visits", text, left - 6, top, "#fff", "#3b5bdb"))
    return "".join(out)


def _pill_width(text: str) -> float:
    return len(text) * FONT_WIDTH + 12


def _pill(css_class: str, text: str, left: float, top: float, fill: str, colour: str) -> str:
    width = _pill_width(text)
    return (
        f'<g class="{css_class}"><rect x="{left:.1f}" y="{top - 11}" width="{width:.1f}" height="18" rx="9" '
        f'fill="{fill}" stroke="#3b5bdb"/><text x="{left + width / 2:.1f}" y="{top + 2}" text-anchor="middle" '
        f'font-size="11" font-weight="600" fill="{colour}">{escape(text)}</text></g>'
    )


_MARKER = (
    '<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" '
    'markerWidth="{size}" markerHeight="{size}" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
)
_DEFS = (
    "<defs>"
    + _MARKER.format(id="jd-arrow", size=9, colour="#868e96")
    + _MARKER.format(id="jd-arrow-back", size=9, colour="#e8590c")
    + _MARKER.format(id="jd-arrow-path", size=10, colour="#2f9e44")
    + "</defs><style>"
    ".jd-diagram .node-link{cursor:pointer;outline:none}"
    ".jd-diagram .node-link:focus-visible .shape,.jd-diagram .node-link:hover .shape{stroke:#1c3faa;stroke-width:3.5}"
    ".jd-diagram .node-link:focus-visible .shape{filter:drop-shadow(0 0 4px #3b5bdb)}"
    "</style>"
)
