"""The SVG of a laid-out journey: node shapes and their styles, edges, labels, count badges."""

from __future__ import annotations

import math
from html import escape

from app.journeys.diagram.layout import NODE_HEIGHT, NODE_WIDTH, LaidEdge, top_of
from app.journeys.diagram.routes import FONT_WIDTH
from app.journeys.kinds import node_kind

LABEL_MAX = 28


def edge_svg(edge, points, label_at, text, count, on_path) -> str:
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


def edge_text(edge: LaidEdge, edge_counts: dict[int, int] | None) -> str:
    text = truncate(edge.label, LABEL_MAX)
    count = (edge_counts or {}).get(edge.index)
    if count is not None:
        text = f"{text} · {count}" if text else str(count)
    return text


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


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def node_svg(node, item, selected, node_counts, visited, current, link_template) -> str:
    key = item.key
    kind = str(node.get("type", ""))
    fill, stroke, shape = node_kind(kind).style
    left, top = item.x - NODE_WIDTH / 2, top_of(item)
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
    summary = node_kind(kind).summary(node)
    heading = truncate(title, 24)
    subtitle = truncate(f"{kind}: {summary}" if kind else summary, 26)
    parts = [f'<g class="{" ".join(classes)}" data-node="{escape(key)}" id="diagram-node-{escape(key)}">']
    accessible = f"{title} ({kind}): {summary}"
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
    counts = (node_counts or {}).get(key)
    if counts:
        parts.append(_count_badges(counts, left, top))
    if link_template:
        parts.append("</a>")
    parts.append("</g>")
    return "".join(parts)


def _count_badges(counts: dict, left: float, top: float) -> str:
    """`N here` in a filled pill at the node's top right, `M visits` in an outlined one at its top left."""
    here, visits = int(counts.get("here") or 0), int(counts.get("visits") or 0)
    out = []
    if here:
        text = f"{here} here"
        out.append(_pill("count-here", text, left + NODE_WIDTH + 6 - _pill_width(text), top, "#3b5bdb", "#fff"))
    if visits:
        text = f"{visits} visit{'s' if visits != 1 else ''}"
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


DEFS = (
    "<defs>"
    + _MARKER.format(id="jd-arrow", size=9, colour="#868e96")
    + _MARKER.format(id="jd-arrow-back", size=9, colour="#e8590c")
    + _MARKER.format(id="jd-arrow-path", size=10, colour="#2f9e44")
    + "</defs>"
)  # the node links' hover and focus styles are in static/app.css: the CSP allows no <style> element
