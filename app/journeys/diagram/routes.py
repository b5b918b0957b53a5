"""How each edge of a laid-out journey runs: ports along node sides, curves, loops, and label spots."""

from __future__ import annotations

from app.journeys.diagram.layout import NODE_HEIGHT, NODE_WIDTH, Item, LaidEdge, top_of

FONT_WIDTH = 6.4  # average glyph width of the 11 px label font, for label backgrounds


def edge_ports(edges: list[LaidEdge], items: dict[str, Item]) -> dict[tuple[int, str], float]:
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


def edge_routes(edges: list[LaidEdge], items: dict[str, Item], ports) -> dict[int, tuple[list, tuple]]:
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


def place_labels(edges: list[LaidEdge], routes, texts: dict[int, str]) -> dict[int, tuple[float, float]]:
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


def _forward_route(edge, items, ports):
    source, target = items[edge.source], items[edge.target]
    start = (ports.get((edge.index, "out"), source.x), top_of(source) + NODE_HEIGHT)
    end = (ports.get((edge.index, "in"), target.x), top_of(target) - 2)
    waypoints = [(items[key].x, top_of(items[key]) + NODE_HEIGHT / 2) for key in edge.chain[1:-1]]
    following = (waypoints[0][0], top_of(items[edge.chain[1]])) if waypoints else end
    return [start, *waypoints, end], (start, following)


def _back_route(edge, items):
    """A loop leaves the lower node on the side away from its target and enters the upper node on that side."""
    source, target = items[edge.source], items[edge.target]
    middle = [(items[key].x, top_of(items[key]) + NODE_HEIGHT / 2) for key in reversed(edge.chain[1:-1])]
    towards = middle[0][0] if middle else target.x
    side = -1 if towards > source.x + 1 else 1  # bulge away from the target: outwards
    start = (source.x + side * NODE_WIDTH / 2, top_of(source) + NODE_HEIGHT / 2)
    end = (target.x + side * (NODE_WIDTH / 2 + 2), top_of(target) + NODE_HEIGHT / 2)
    if not middle:
        outer = max(start[0], end[0]) + 34 if side > 0 else min(start[0], end[0]) - 34
        middle = [(outer, (start[1] + end[1]) / 2)]
    points = [start, *middle, end]
    centre = middle[len(middle) // 2]
    return points, (centre, centre)


def _self_loop(item):
    right = item.x + NODE_WIDTH / 2
    top = top_of(item)
    points = [
        (right, top + NODE_HEIGHT * 0.7),
        (right + 30, top + NODE_HEIGHT / 2),
        (right + 2, top + NODE_HEIGHT * 0.3),
    ]
    spot = (right + 30, top + NODE_HEIGHT / 2)
    return points, (spot, spot)
