"""The server-side diagram: layout, edge labels, loops, counts, the simulator's path, robustness."""

import json
import re
import time

import pytest

from app.journeys import diagram
from tests.examples import EXAMPLES_DIR


def example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def node_boxes(svg: str) -> dict[str, tuple[float, float]]:
    """Top-left corner of each node's shape, read back from the SVG."""
    boxes = {}
    for match in re.finditer(r'<g class="node[^"]*" data-node="([^"]+)".*?</g>', svg, re.S):
        texts = re.findall(r'<text x="([\d.]+)" y="([\d.]+)"', match.group(0))
        x, y = map(float, texts[0])
        boxes[match.group(1)] = (x - diagram.NODE_WIDTH / 2, y - 22)
    return boxes


def wide_journey(size: int) -> dict:
    """A hub wait node with many replies, chains and loops back: a stress shape for the layout."""
    nodes = [{"id": "start", "type": "audience"}, {"id": "hub", "type": "wait", "timeout": "1h"}]
    edges = [{"from": "start", "to": "hub"}]
    for number in range(size - 3):
        node_id = f"n{number}"
        nodes.append({"id": node_id, "type": "message", "body": f"Message {number}"})
        source = "hub" if number % 4 == 0 else f"n{number - 1}"
        when = {"keywords": [f"k{number}"]} if source == "hub" else None
        edges.append({"from": source, "to": node_id, **({"when": when} if when else {})})
        if number % 4 == 3:
            edges.append({"from": node_id, "to": "hub"})
    nodes.append({"id": "done", "type": "end"})
    edges += [{"from": "hub", "to": "done", "when": "timeout"}, {"from": "hub", "to": "done", "when": "fallback"}]
    return {"format": "journey/v1", "name": "wide", "nodes": nodes, "edges": edges}


@pytest.mark.parametrize("name", ["welcome", "order-status", "whatsapp-survey"])
def test_every_node_and_edge_of_the_examples_is_drawn(name):
    doc = example(name)
    svg = diagram.render_svg(doc)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert set(re.findall(r'data-node="([^"]+)"', svg)) == {node["id"] for node in doc["nodes"]}
    assert len(re.findall(r'<g class="edge[^"]*" data-edge=', svg)) == len(doc["edges"])


def test_edge_labels_say_the_condition():
    doc = {
        "nodes": [{"id": "w", "type": "wait", "timeout": "2h"}, {"id": "s", "type": "split"}],
        "edges": [{"from": "s", "to": "w", "weight": 1}, {"from": "s", "to": "w", "weight": 3}],
    }
    label = lambda when: diagram.edge_label({"from": "w", "to": "x", "when": when}, doc)  # noqa: E731
    assert label({"keywords": ["yes", "sim"]}) == "yes, sim"
    assert label({"regex": r"^\d+$"}) == r"/^\d+$/"
    assert label({"payload": "VEG"}) == "button VEG"
    assert label("fallback") == "else"
    assert label("timeout") == "timeout 2h"
    assert label({"var": "order.status", "op": "eq", "value": "shipped"}) == "order.status = shipped"
    assert label({"var": "age", "op": "gte", "value": 18}) == "age ≥ 18"
    assert label({"var": "order_id", "op": "exists"}) == "order_id exists"
    assert label("success") == "success" and label("failure") == "failure"
    assert label(None) == ""
    assert diagram.edge_label(doc["edges"][0], doc) == "split 25%"
    assert diagram.edge_label(doc["edges"][1], doc) == "split 75%"


def test_layers_flow_down_from_the_audience_and_loops_are_back_edges():
    doc = example("welcome")
    svg = diagram.render_svg(doc)
    boxes = node_boxes(svg)
    assert boxes["start"][1] < boxes["hello"][1] < boxes["ask"][1] < boxes["again"][1] < boxes["done"][1]
    assert boxes["thanks"][1] == boxes["sorry"][1] == boxes["again"][1]
    back = re.findall(r'<g class="edge edge-back" data-edge="(\d+)">', svg)
    assert back == ["6"]  # again -> ask
    assert 'stroke-dasharray="6 4"' in svg


def test_fifty_nodes_do_not_overlap_and_render_fast():
    doc = wide_journey(50)
    started = time.perf_counter()
    svg = diagram.render_svg(doc)
    elapsed = time.perf_counter() - started
    boxes = list(node_boxes(svg).items())
    assert len(boxes) == 50
    for index, (first, (x1, y1)) in enumerate(boxes):
        for second, (x2, y2) in boxes[index + 1 :]:
            apart = abs(x1 - x2) >= diagram.NODE_WIDTH or abs(y1 - y2) >= diagram.NODE_HEIGHT
            assert apart, f"{first} overlaps {second}"
    width, height = map(float, re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())
    assert all(x >= 0 and x + diagram.NODE_WIDTH <= width and 0 <= y <= height for _, (x, y) in boxes)
    assert elapsed < 5  # a sanity bound only; bench/bench_designer.py measures


def test_selection_counts_path_and_links():
    doc = example("welcome")
    svg = diagram.render_svg(
        doc,
        selected="ask",
        node_counts={"ask": {"here": 3, "visits": 7}},
        edge_counts={2: 5},
        path=["start", "hello", "ask", "again", "ask"],
        link_template="/journeys/3/nodes/{id}",
    )
    assert 'class="node node-wait node-path node-current node-selected"' in svg
    assert "3 here" in svg and "7 visits" in svg
    assert "yes, y, sim · 5" in svg
    assert '<g class="edge edge-back edge-path" data-edge="6">' in svg
    assert '<a href="/journeys/3/nodes/hello" hx-get="/journeys/3/nodes/hello"' in svg and 'class="node-link"' in svg
    assert "node-path" not in re.search(r'<g class="node[^"]*" data-node="thanks"', svg).group(0)


def test_drafts_that_are_not_valid_still_render():
    doc = {
        "nodes": [
            {"id": "a", "type": "mystery"},
            {"id": "a", "type": "end"},
            "junk",
            {"type": "message"},
            {"id": "b<script>", "type": "message", "body": "<b>&"},
        ],
        "edges": [{"from": "a", "to": "ghost"}, {"from": "a", "to": "a"}, 7, {"from": "b<script>", "to": "a"}],
    }
    svg = diagram.render_svg(doc)
    assert "<script>" not in svg and "b&lt;script&gt;" in svg
    assert "unknown type" in svg
    assert diagram.render_svg({}).count("No nodes yet") == 1
    assert diagram.render_svg({"nodes": "x", "edges": None}).startswith("<svg")
