"""A journey as an SVG diagram, laid out on the server.

Operators never place nodes by hand: every render lays the graph out anew
(`layout`), so a journey imported from a file, edited in a form or restored
from an old version always reads the same way; `routes` runs the edges and
places their labels, `svg` draws. Each node type's style and summary and each
condition's label come from its designer module (`app.journeys.kinds`).

Pure: the document dict in, SVG text out (no Flask, no database), so the run
page and the simulator reuse it with counts and a highlighted path. Drafts may
be invalid: unknown types, dangling edges and missing keys never raise.
"""

from __future__ import annotations

from app.journeys import kinds
from app.journeys.diagram.layout import LAYER_GAP, MARGIN, NODE_HEIGHT, NODE_WIDTH, edges_of, graph, layout, nodes_of
from app.journeys.diagram.routes import edge_ports, edge_routes, place_labels
from app.journeys.diagram.svg import DEFS, edge_svg, edge_text, node_svg

__all__ = ["NODE_HEIGHT", "NODE_WIDTH", "edge_label", "node_summary", "render_svg"]


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
    nodes, edges = graph(doc)
    items, layers = layout(nodes, edges)
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
        DEFS,
    ]
    routes = edge_routes(edges, items, edge_ports(edges, items))
    texts = {edge.index: edge_text(edge, edge_counts) for edge in edges}
    spots = place_labels(edges, routes, texts)
    for edge in edges:
        on_path = edge.index in taken if taken is not None else (edge.source, edge.target) in visited_pairs
        count = (edge_counts or {}).get(edge.index)
        out.append(edge_svg(edge, routes[edge.index][0], spots.get(edge.index), texts[edge.index], count, on_path))
    for key, node in nodes.items():
        out.append(node_svg(node, items[key], selected, node_counts, visited, current, link_template))
    if not nodes:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 16}" fill="#667085" font-size="13">No nodes yet.</text>')
    out.append("</svg>")
    return "".join(out)


def edge_label(edge: dict, doc: dict) -> str:
    """What an edge's condition says, in the words of the diagram: `yes, sim`, `else`, `timeout 2h`…"""
    source = next((node for node in nodes_of(doc) if node.get("id") == edge.get("from")), {})
    siblings = [other for other in edges_of(doc) if other.get("from") == edge.get("from")]
    return kinds.edge_label(edge, source, siblings)


def node_summary(node: dict) -> str:
    """One line saying what a node does, under its name in the diagram and the node list."""
    return kinds.node_kind(node.get("type")).summary(node)
