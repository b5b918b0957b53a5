"""The pure journey-editing functions behind the designer's forms (no Flask, no database)."""

import pytest
from werkzeug.datastructures import MultiDict

from app.journeys import editing
from app.journeys.forms import Refused


def form(**fields) -> MultiDict:
    return MultiDict(fields)


@pytest.fixture
def doc():
    return {
        "format": "journey/v1",
        "name": "Edit me",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "ask", "type": "message", "body": "Hi?", "position": {"x": 1, "y": 2}},
            {"id": "wait", "type": "wait", "timeout": "1h"},
            {"id": "done", "type": "end"},
        ],
        "edges": [
            {"from": "start", "to": "ask"},
            {"from": "ask", "to": "wait"},
            {"from": "wait", "to": "done", "when": {"keywords": ["yes"]}},
            {"from": "wait", "to": "done", "when": "fallback"},
            {"from": "wait", "to": "done", "when": "timeout"},
        ],
    }


def test_add_node_takes_the_next_free_id_its_defaults_and_an_edge_from_after(doc):
    assert editing.add_node(doc, "delay", after="ask") == "delay1"
    assert editing.find_node(doc, "delay1") == {"id": "delay1", "type": "delay", "duration": "1h"}
    assert doc["edges"][-1] == {"from": "ask", "to": "delay1"}
    assert editing.add_node(doc, "delay") == "delay2"
    assert doc["edges"][-1] == {"from": "ask", "to": "delay1"}, "no `after`: not connected"


def test_new_nodes_do_not_share_their_defaults(doc):
    editing.add_node(doc, "set", "one")
    editing.add_node(doc, "set", "two")
    editing.find_node(doc, "one")["vars"]["x"] = "1"
    assert editing.find_node(doc, "two")["vars"] == {}


@pytest.mark.parametrize(
    ("kind", "node_id", "says"),
    [
        ("message", "ask", "already a node 'ask'"),
        ("message", "no spaces", "use 1 to 64"),
        ("email", "t", "unknown node type"),
    ],
)
def test_add_node_refuses_what_cannot_be_stored(doc, kind, node_id, says):
    before = [dict(node) for node in doc["nodes"]]
    with pytest.raises(Refused, match=says):
        editing.add_node(doc, kind, node_id)
    assert doc["nodes"] == before


def test_renaming_a_node_carries_its_edges_and_keeps_unknown_keys(doc):
    new_id = editing.apply_node_form(doc, "ask", form(id="greet", type="message", body="Hello", label="Greeting"))
    assert new_id == "greet"
    assert editing.find_node(doc, "greet") == {
        "id": "greet",
        "type": "message",
        "position": {"x": 1, "y": 2},
        "label": "Greeting",
        "body": "Hello",
    }
    assert {"from": "start", "to": "greet"} in doc["edges"] and {"from": "greet", "to": "wait"} in doc["edges"]


def test_switching_type_drops_the_old_types_keys(doc):
    editing.apply_node_form(doc, "ask", form(id="ask", type="delay", duration="2h"))
    assert editing.find_node(doc, "ask") == {
        "id": "ask",
        "type": "delay",
        "position": {"x": 1, "y": 2},
        "duration": "2h",
    }
    shown = editing.switch_type({"id": "w", "type": "wait", "timeout": "1h", "label": "L"}, "api")
    assert shown == {"id": "w", "type": "api", "label": "L"}


def test_node_forms_of_each_type_become_journey_v1(doc):
    api = form(id="ask", type="api", url=" https://x.example/<<id>> ", method="POST", headers="A: 1\n\nB: two")
    api.update({"body": '{"id": "<<id>>"}', "timeout": "5", "save_as": "order"})
    editing.apply_node_form(doc, "ask", api)
    assert editing.find_node(doc, "ask") == {
        "id": "ask",
        "type": "api",
        "position": {"x": 1, "y": 2},
        "url": "https://x.example/<<id>>",
        "method": "POST",
        "headers": {"A": "1", "B": "two"},
        "body": {"id": "<<id>>"},
        "timeout": 5,
        "save_as": "order",
    }
    editing.apply_node_form(doc, "start", form(type="audience", where_var="city", where_op="exists"))
    assert editing.find_node(doc, "start")["where"] == {"var": "city", "op": "exists"}
    template = form(type="message", mode="template", content_sid="HX" + "a" * 32, content_variables="1 = <<name>>")
    editing.apply_node_form(doc, "ask", template)
    assert editing.find_node(doc, "ask")["content_variables"] == {"1": "<<name>>"}
    assert "body" not in editing.find_node(doc, "ask")
    editing.apply_node_form(doc, "wait", form(type="wait", timeout="90"))
    assert editing.find_node(doc, "wait")["timeout"] == 90


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"type": "set", "vars": "name = x\nno separator"}, "line 2"),
        ({"type": "api", "url": "https://x", "body": "{not json"}, "not valid"),
        ({"type": "api", "url": "https://x", "timeout": "soon"}, "timeout 'soon' is not a number"),
        ({"type": "email"}, "unknown node type 'email'"),
    ],
)
def test_bad_node_forms_are_refused_with_the_reason(doc, fields, says):
    with pytest.raises(Refused, match=says):
        editing.apply_node_form(doc, "ask", form(**fields))


def test_a_node_that_is_gone_is_refused(doc):
    with pytest.raises(Refused, match="no longer exists"):
        editing.apply_node_form(doc, "nope", form(type="end"))
    with pytest.raises(Refused, match="no longer exists"):
        editing.add_edge(doc, "nope", form(to="done"))
    with pytest.raises(Refused, match="edge 9 no longer exists"):
        editing.delete_edge(doc, 9)


def test_deleting_a_node_deletes_its_edges(doc):
    editing.delete_node(doc, "wait")
    assert [node["id"] for node in doc["nodes"]] == ["start", "ask", "done"]
    assert doc["edges"] == [{"from": "start", "to": "ask"}]


def test_keyword_tags_are_added_and_removed(doc):
    editing.add_edge(doc, "wait", form(to="done", kind="keywords", new_keyword="no, nao , ,no"))
    assert doc["edges"][-1] == {"from": "wait", "to": "done", "when": {"keywords": ["no", "nao"]}}
    fields = MultiDict([("to", "done"), ("kind", "keywords"), ("keywords", "no"), ("keywords", "nao")])
    fields["remove_keyword"] = "no"
    editing.save_edge(doc, 5, fields)
    assert doc["edges"][5]["when"] == {"keywords": ["nao"]}


def test_saving_an_edge_as_always_drops_its_condition_and_weight_is_a_number(doc):
    assert editing.save_edge(doc, 2, form(to="ask", kind="always", weight="3")) == "wait"
    assert doc["edges"][2] == {"from": "wait", "to": "ask", "weight": 3}
    editing.save_edge(doc, 2, form(to="ask", kind="var", var=" city ", op="eq", value="Porto"))
    assert doc["edges"][2] == {"from": "wait", "to": "ask", "when": {"var": "city", "op": "eq", "value": "Porto"}}
    with pytest.raises(Refused, match="unknown condition 'maybe'"):
        editing.save_edge(doc, 2, form(kind="maybe"))


def test_moving_an_edge_swaps_it_with_its_neighbour_of_the_same_node(doc):
    assert editing.move_edge(doc, 3, "up") == "wait"
    assert [edge.get("when") for edge in doc["edges"][2:]] == ["fallback", {"keywords": ["yes"]}, "timeout"]
    editing.move_edge(doc, 2, "up")  # already first of its node: nothing moves
    editing.move_edge(doc, 4, "down")  # already last
    assert [edge.get("when") for edge in doc["edges"][2:]] == ["fallback", {"keywords": ["yes"]}, "timeout"]


def test_settings_form(doc):
    editing.apply_settings(doc, form(name=" New name ", description="", channel="whatsapp"))
    assert (doc["name"], doc["channel"], "description" in doc) == ("New name", "whatsapp", False)
    editing.apply_settings(doc, form(name="N", description=" About "))
    assert (doc["channel"], doc["description"]) == ("sms", "About")
