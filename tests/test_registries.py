"""Every node type and condition has all its pieces, found through the registries.

Adding a node type `tag` means: `app/engine/nodes/tag.py` (semantics), `app/journeys/kinds/nodes/tag.py`
(form, diagram style, summary), `templates/journeys/kinds/nodes/tag.html` (its fields) and
`tests/engine/cases/tag.json` (its behaviour). Forgetting any of them fails here, not on a page.
"""

from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from app.engine.conditions import CONDITIONS
from app.engine.nodes import NODE_TYPES
from app.journeys import diagram, editing
from app.journeys import store as journeys
from app.journeys.kinds import CONDITION_KINDS, NODE_KINDS, allowed_conditions
from app.journeys.kinds.base import ConditionKind, NodeKind

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
CASES = ROOT / "tests" / "engine" / "cases"
MINIMAL = {
    "format": "journey/v1",
    "name": "forms",
    "nodes": [{"id": "start", "type": "audience"}, {"id": "done", "type": "end"}],
    "edges": [{"from": "start", "to": "done"}],
}
SHAPES = {"pill", "bubble", "hexagon", "api", "delay", "diamond", "set", "rect"}


def test_registries_hold_the_same_names_in_the_same_order():
    assert list(NODE_KINDS) == list(NODE_TYPES), "every engine node type needs a designer module, and no more"
    assert list(CONDITION_KINDS) == list(CONDITIONS), "every engine condition needs a designer module, and no more"
    assert len({node_type.order for node_type in NODE_TYPES.values()}) == len(NODE_TYPES), (
        "two node types share an order"
    )
    assert len({condition.order for condition in CONDITIONS.values()}) == len(CONDITIONS)


@pytest.mark.parametrize("name", sorted(NODE_TYPES))
def test_node_type_has_every_piece(name):
    node_type, kind = NODE_TYPES[name], NODE_KINDS.get(name)
    assert node_type.title and node_type.name == name
    assert (ROOT / "app" / "engine" / "nodes" / f"{name}.py").exists()
    assert isinstance(kind, NodeKind), f"no app/journeys/kinds/nodes/{name}.py defining NODE_KIND"
    assert (TEMPLATES / kind.template).exists(), f"no templates/{kind.template}"
    assert (CASES / f"{name}.json").exists(), f"no tests/engine/cases/{name}.json"
    fill, stroke, shape = kind.style
    assert fill.startswith("#") and stroke.startswith("#") and shape in SHAPES
    assert set(node_type.defaults) <= set(node_type.keys), "defaults may only hold the type's own keys"
    assert node_type.conditions <= set(CONDITIONS), "a node type allows a condition that does not exist"


@pytest.mark.parametrize("name", sorted(NODE_TYPES))
def test_a_new_node_of_each_type_is_drawn_summarised_and_saved_as_its_type(name):
    doc = {"format": "journey/v1", "name": "x", "nodes": [{"id": "start", "type": "audience"}], "edges": []}
    node_id = editing.add_node(doc, name, after="start")
    node = editing.find_node(doc, node_id)
    summary = diagram.node_summary(node)
    assert summary and "unknown" not in summary
    assert f"node-{name}" in diagram.render_svg(doc)
    editing.apply_node_form(doc, node_id, MultiDict({"id": node_id, "type": name}))
    assert editing.find_node(doc, node_id)["type"] == name
    assert allowed_conditions(name) == [
        condition for condition in CONDITIONS if condition in NODE_TYPES[name].conditions
    ]


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_condition_has_every_piece(name):
    kind = CONDITION_KINDS.get(name)
    assert (ROOT / "app" / "engine" / "conditions" / f"{name}.py").exists()
    assert isinstance(kind, ConditionKind), f"no app/journeys/kinds/conditions/{name}.py defining CONDITION_KIND"
    assert kind.title
    assert (TEMPLATES / kind.template).exists(), f"no templates/{kind.template}"
    assert (CASES / f"{name}.json").exists(), f"no tests/engine/cases/{name}.json"
    assert any(name in node_type.conditions for node_type in NODE_TYPES.values()), "no node type allows it"
    when = kind.from_form(MultiDict({"kind": name}))
    assert isinstance(kind.label(when if when is not None else kind.blank), str)


@pytest.mark.parametrize("name", sorted(NODE_TYPES))
def test_every_node_form_renders_and_saves(client, name):
    journey = journeys.create_journey(MINIMAL)
    added = client.post(
        f"/journeys/{journey.id}/nodes",
        data={"draft_revision": journey.draft_revision, "type": name, "id": "it", "after": "start"},
        headers={"HX-Request": "true"},
    )
    assert added.status_code == 200, added.text
    assert 'id="node-fields"' in added.text
    fields = client.get(f"/journeys/{journey.id}/node-fields", query_string={"type": name, "node_id": "it"})
    assert fields.status_code == 200 and 'id="node-fields"' in fields.text


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_every_condition_form_renders(client, name):
    journey = journeys.create_journey(MINIMAL)
    page = client.get(f"/journeys/{journey.id}/condition-fields", query_string={"kind": name, "prefix": "edge-new"})
    assert page.status_code == 200 and 'id="edge-new-fields"' in page.text
