"""What changed between two versions (`app.journeys.diff`)."""

import copy
import json

from app.journeys.diff import diff
from tests.examples import EXAMPLES_DIR

WELCOME = json.loads((EXAMPLES_DIR / "welcome.json").read_text())


def test_same_document_has_no_changes():
    result = diff(WELCOME, copy.deepcopy(WELCOME))
    assert result.empty and result.summary() == "no changes"


def test_nodes_and_edges_added_removed_changed():
    after = copy.deepcopy(WELCOME)
    after["nodes"].append({"id": "bye", "type": "end"})
    after["edges"].append({"from": "again", "to": "bye"})
    after["nodes"][3]["body"] = "Cheers!"
    after["nodes"][1]["position"] = {"x": 5, "y": 9}  # a layout hint is not a change
    after["nodes"] = [node for node in after["nodes"] if node["id"] != "sorry"]
    after["edges"] = [edge for edge in after["edges"] if "sorry" not in (edge["from"], edge["to"])]
    after["edges"][2]["when"] = {"keywords": ["yes"]}
    after["name"] = "New name"
    result = diff(WELCOME, after)
    assert result.nodes_added == ["bye"] and result.nodes_removed == ["sorry"]
    assert [(change.node_id, change.fields) for change in result.nodes_changed] == [("thanks", ["body"])]
    assert result.edges_added == ["again → bye"]
    assert "ask → sorry [timeout]" in result.edges_removed and "sorry → done" in result.edges_removed
    [changed] = result.edges_changed
    assert (changed.source, changed.target) == ("ask", "thanks") and changed.after == '{"keywords": ["yes"]}'
    assert result.settings == ["name"]
    assert result.summary().startswith("1 node added, 1 node removed, 1 node changed, 1 edge added, 3 edges removed")


def test_renamed_node_and_reordered_edges():
    after = copy.deepcopy(WELCOME)
    for node in after["nodes"]:
        if node["id"] == "again":
            node["id"] = "retry"
    for edge in after["edges"]:
        edge["from"] = "retry" if edge["from"] == "again" else edge["from"]
        edge["to"] = "retry" if edge["to"] == "again" else edge["to"]
    after["edges"][2], after["edges"][3] = after["edges"][3], after["edges"][2]
    result = diff(WELCOME, after)
    assert result.nodes_renamed == [("again", "retry")]
    assert not result.nodes_added and not result.nodes_removed and not result.edges_added
    assert result.edges_reordered == ["ask"]
    assert "1 node's edges reordered" in result.summary()
