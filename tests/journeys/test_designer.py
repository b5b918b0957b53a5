"""The designer pages through the Flask test client: list, editor edits, conflicts, import, publish, versions."""

import io
import json
import re
from html import unescape

import pytest

from app.extensions import db
from app.journeys import store as journeys
from app.models import Audience, AudienceContact, Contact, Journey, JourneyVersion, Run
from tests.examples import EXAMPLES_DIR

HX = {"HX-Request": "true"}


def load_example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def revision_of(html: str) -> int:
    return int(re.search(r'id="draft-revision" name="draft_revision" value="(\d+)"', html).group(1))


def draft_of(journey) -> dict:
    db.session.expire_all()
    return db.session.get(Journey, journey.id).draft


def post(client, path, journey, /, **form):
    """An HTMX post based on the journey's current revision."""
    db.session.expire_all()
    data = {"draft_revision": db.session.get(Journey, journey.id).draft_revision, **form}
    return client.post(path, data=data, headers=HX)


@pytest.fixture
def welcome(client):
    return journeys.import_document(load_example("welcome"))


def edges_from(doc, node_id):
    return [(edge["to"], edge.get("when")) for edge in doc["edges"] if edge["from"] == node_id]


# --- the list ---------------------------------------------------------------------------------------------


def test_list_shows_status_edits_and_runs(client, welcome):
    page = client.get("/journeys/")
    assert page.status_code == 200
    assert "Delivery check" in page.text and "draft, never published" in page.text
    journeys.publish(welcome, note="first")
    assert "published version 1" in client.get("/journeys/").text
    welcome.draft = {**welcome.draft, "name": "Delivery check 2"}
    db.session.commit()
    assert "version 1, changed since publishing" in client.get("/journeys/").text


def test_create_starts_a_valid_journey(client):
    response = client.post("/journeys/new", data={"name": "Survey"})
    assert response.status_code == 303
    journey = db.session.scalars(db.select(Journey)).one()
    assert journey.name == "Survey"
    assert journeys.problems_of(journey.draft) == []
    assert response.headers["Location"].endswith(f"/journeys/{journey.id}")


def test_duplicate_and_delete(client, welcome):
    response = client.post(f"/journeys/{welcome.id}/duplicate")
    assert response.status_code == 303
    names = sorted(journey.name for journey in db.session.scalars(db.select(Journey)))
    assert names == ["Copy of Delivery check", "Delivery check"]
    response = client.post(f"/journeys/{welcome.id}/delete", headers=HX)
    assert response.status_code == 204 and response.headers["HX-Redirect"].endswith("/journeys/")
    assert db.session.get(Journey, welcome.id) is None


def test_delete_is_refused_while_a_run_is_active(client, welcome):
    version = journeys.publish(welcome)
    db.session.add(Run(journey_id=welcome.id, version_id=version.id, status="active"))
    db.session.commit()
    response = client.post(f"/journeys/{welcome.id}/delete", headers=HX)
    assert response.status_code == 409
    assert "active run" in response.text and response.headers["HX-Retarget"] == "#list-message"
    plain = client.post(f"/journeys/{welcome.id}/delete", follow_redirects=True)
    assert "active run" in plain.text
    assert db.session.get(Journey, welcome.id) is not None


def test_import_export_round_trip(client):
    example = load_example("whatsapp-survey")
    response = client.post("/journeys/import", data={"file": (io.BytesIO(json.dumps(example).encode()), "s.json")})
    assert response.status_code == 303
    journey = db.session.scalars(db.select(Journey)).one()
    exported = client.get(f"/journeys/{journey.id}/export")
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    assert exported.json == {"id": journey.id, **example}


def test_import_problems_are_listed_by_node_and_nothing_is_saved(client):
    broken = load_example("welcome")
    broken["nodes"][2]["timeout"] = "soon"
    broken["edges"].append({"from": "thanks", "to": "nowhere"})
    response = client.post("/journeys/import", data={"file": (io.BytesIO(json.dumps(broken).encode()), "bad.json")})
    assert response.status_code == 422
    assert "bad.json was not imported" in response.text
    assert "Node <code>ask</code>" in response.text and "soon" in response.text
    assert "nowhere" in response.text
    assert db.session.scalars(db.select(Journey)).all() == []
    not_json = client.post("/journeys/import", data={"file": (io.BytesIO(b"{oops"), "x.json")})
    assert not_json.status_code == 422 and "not a JSON file" in not_json.text


# --- the editor -------------------------------------------------------------------------------------------


def test_editor_and_node_panel(client, welcome):
    page = client.get(f"/journeys/{welcome.id}")
    assert page.status_code == 200
    for node_id in ("start", "hello", "ask", "thanks", "sorry", "again", "done"):
        assert f'data-node="{node_id}"' in page.text
    assert revision_of(page.text) == 1
    fragment = client.get(f"/journeys/{welcome.id}/nodes/ask", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="panel"' in fragment.text and 'hx-swap-oob="true"' in fragment.text
    assert 'name="new_keyword"' in fragment.text and 'value="sim"' in fragment.text
    full = client.get(f"/journeys/{welcome.id}/nodes/ask")
    assert "<html" in full.text and "node-selected" in full.text
    assert client.get("/journeys/999").status_code == 404


def test_node_and_condition_field_swaps(client, welcome):
    fields = client.get(f"/journeys/{welcome.id}/node-fields?type=api&node_id=hello")
    assert 'name="url"' in fields.text and 'name="save_as"' in fields.text
    condition = client.get(f"/journeys/{welcome.id}/condition-fields?kind=regex&prefix=edge-3")
    assert 'id="edge-3-regex"' in condition.text and "Try it" in condition.text


def test_add_rename_and_delete_nodes(client, welcome):
    response = post(client, f"/journeys/{welcome.id}/nodes", welcome, type="wait", id="confirm", after="thanks")
    assert response.status_code == 200
    doc = draft_of(welcome)
    assert {"id": "confirm", "type": "wait"} in doc["nodes"]
    assert ("confirm", None) in edges_from(doc, "thanks")
    assert 'data-node="confirm"' in response.text and 'id="problems"' in response.text
    assert revision_of(response.text) == 2

    duplicate = post(client, f"/journeys/{welcome.id}/nodes", welcome, type="end", id="done")
    assert duplicate.status_code == 422 and "already a node 'done'" in unescape(duplicate.text)

    renamed = post(client, f"/journeys/{welcome.id}/nodes/ask", welcome, id="question", type="wait", timeout="3h")
    assert renamed.status_code == 200
    doc = draft_of(welcome)
    assert {"id": "question", "type": "wait", "timeout": "3h"} in doc["nodes"]
    assert all("ask" not in (edge["from"], edge["to"]) for edge in doc["edges"])
    assert len(edges_from(doc, "question")) == 4 and ("question", None) in edges_from(doc, "again")

    deleted = post(client, f"/journeys/{welcome.id}/nodes/question/delete", welcome)
    assert deleted.status_code == 200
    doc = draft_of(welcome)
    assert "question" not in [node["id"] for node in doc["nodes"]]
    assert all("question" not in (edge["from"], edge["to"]) for edge in doc["edges"])
    assert "Journey settings" in deleted.text


def test_type_specific_node_forms_store_journey_v1(client, welcome):
    post(client, f"/journeys/{welcome.id}/nodes", welcome, type="api", id="lookup")
    response = post(
        client,
        f"/journeys/{welcome.id}/nodes/lookup",
        welcome,
        id="lookup",
        type="api",
        method="POST",
        url="http://127.0.0.1:9/o/<<order_id>>",
        headers="Accept: application/json",
        body='{"id": "<<order_id>>"}',
        timeout="5",
        save_as="order",
        label="Shop",
    )
    assert response.status_code == 200
    node = next(node for node in draft_of(welcome)["nodes"] if node["id"] == "lookup")
    assert node == {
        "id": "lookup",
        "type": "api",
        "label": "Shop",
        "method": "POST",
        "url": "http://127.0.0.1:9/o/<<order_id>>",
        "headers": {"Accept": "application/json"},
        "body": {"id": "<<order_id>>"},
        "timeout": 5,
        "save_as": "order",
    }
    bad = post(
        client, f"/journeys/{welcome.id}/nodes/lookup", welcome, id="lookup", type="api", url="x", body="{not json"
    )
    assert bad.status_code == 422 and "API body" in bad.text
    post(
        client,
        f"/journeys/{welcome.id}/nodes/hello",
        welcome,
        id="hello",
        type="message",
        mode="template",
        content_sid="HX123",
        content_variables="1 = <<name|friend>>",
        channel="whatsapp",
    )
    node = next(node for node in draft_of(welcome)["nodes"] if node["id"] == "hello")
    assert node == {
        "id": "hello",
        "type": "message",
        "channel": "whatsapp",
        "content_sid": "HX123",
        "content_variables": {"1": "<<name|friend>>"},
    }
    post(client, f"/journeys/{welcome.id}/nodes", welcome, type="set", id="tag")
    post(client, f"/journeys/{welcome.id}/nodes/tag", welcome, id="tag", type="set", vars="seen = yes\nwho = <<name>>")
    node = next(node for node in draft_of(welcome)["nodes"] if node["id"] == "tag")
    assert node["vars"] == {"seen": "yes", "who": "<<name>>"}
    post(
        client,
        f"/journeys/{welcome.id}/nodes/start",
        welcome,
        id="start",
        type="audience",
        where_var="order_id",
        where_op="exists",
    )
    node = next(node for node in draft_of(welcome)["nodes"] if node["id"] == "start")
    assert node["where"] == {"var": "order_id", "op": "exists"}


def test_edges_add_edit_reorder_delete(client, welcome):
    url = f"/journeys/{welcome.id}"
    response = post(client, f"{url}/nodes/ask/edges", welcome, to="done", kind="regex", regex=r"^\d+$")
    assert response.status_code == 200
    doc = draft_of(welcome)
    index = len(doc["edges"]) - 1
    assert doc["edges"][index] == {"from": "ask", "to": "done", "when": {"regex": r"^\d+$"}}

    post(
        client,
        f"{url}/edges/2",
        welcome,
        to="thanks",
        kind="keywords",
        keywords=["yes", "y", "sim"],
        new_keyword="yep, ok",
    )
    assert draft_of(welcome)["edges"][2]["when"] == {"keywords": ["yes", "y", "sim", "yep", "ok"]}
    post(
        client,
        f"{url}/edges/2",
        welcome,
        to="thanks",
        kind="keywords",
        keywords=["yes", "y", "sim", "yep", "ok"],
        remove_keyword="y",
    )
    assert draft_of(welcome)["edges"][2]["when"] == {"keywords": ["yes", "sim", "yep", "ok"]}

    post(client, f"{url}/edges/{index}/move", welcome, direction="up")
    doc = draft_of(welcome)
    order = [edge.get("when") for edge in doc["edges"] if edge["from"] == "ask"]
    assert order[-2:] == [{"regex": r"^\d+$"}, "fallback"]
    post(client, f"{url}/edges/2/move", welcome, direction="up")  # already first: unchanged
    assert draft_of(welcome)["edges"][2]["to"] == "thanks"

    post(client, f"{url}/edges/3", welcome, to="sorry", kind="var", var="order.status", op="eq", value="late")
    assert draft_of(welcome)["edges"][3]["when"] == {"var": "order.status", "op": "eq", "value": "late"}

    before = len(draft_of(welcome)["edges"])
    post(client, f"{url}/edges/3/delete", welcome)
    assert len(draft_of(welcome)["edges"]) == before - 1


def test_split_weights(client):
    journey = journeys.import_document(load_example("whatsapp-survey"))
    post(client, f"/journeys/{journey.id}/edges/1", journey, to="invite_a", kind="always", weight="3")
    assert draft_of(journey)["edges"][1] == {"from": "ab", "to": "invite_a", "weight": 3}
    panel = client.get(f"/journeys/{journey.id}/nodes/ab", headers=HX)
    assert "split 75%" in panel.text and 'name="weight"' in panel.text


def test_stale_revision_is_refused_with_409_and_nothing_is_saved(client, welcome):
    first = client.post(
        f"/journeys/{welcome.id}/nodes/ask",
        data={"draft_revision": 1, "id": "ask", "type": "wait", "timeout": "1h"},
        headers=HX,
    )
    assert first.status_code == 200
    second = client.post(
        f"/journeys/{welcome.id}/nodes/ask",
        data={"draft_revision": 1, "id": "ask", "type": "wait", "timeout": "5h"},
        headers=HX,
    )
    assert second.status_code == 409
    assert second.headers["HX-Retarget"] == "#conflict"
    assert "changed in another tab" in second.text and "Reload" in second.text
    assert next(node for node in draft_of(welcome)["nodes"] if node["id"] == "ask")["timeout"] == "1h"
    publish = client.post(f"/journeys/{welcome.id}/publish", data={"draft_revision": 1}, headers=HX)
    assert publish.status_code == 409
    missing = client.post(f"/journeys/{welcome.id}/edges/2/delete", headers=HX)
    assert missing.status_code == 400


def test_problems_update_and_link_to_their_node(client, welcome):
    response = post(client, f"/journeys/{welcome.id}/nodes/ask", welcome, id="ask", type="wait", timeout="soon")
    assert response.status_code == 200
    problems = re.search(r'<section id="problems".*?</section>', response.text, re.S).group(0)
    assert "error" in problems and "soon" in problems
    assert f'hx-get="/journeys/{welcome.id}/nodes/ask"' in problems
    check = client.post(
        f"/journeys/{welcome.id}/nodes/hello/check",
        data={"id": "hello", "type": "message", "body": "Hi <<name"},
        headers=HX,
    )
    assert "'<<' without a matching '>>'" in unescape(check.text)
    clash = client.post(f"/journeys/{welcome.id}/nodes/hello/check", data={"id": "ask", "type": "message"})
    assert "already a node" in clash.text


def test_publish_refused_with_errors_then_published(client, welcome):
    post(client, f"/journeys/{welcome.id}/nodes/ask", welcome, id="ask", type="wait", timeout="soon")
    refused = post(client, f"/journeys/{welcome.id}/publish", welcome, note="try")
    assert refused.status_code == 422 and "Not published" in refused.text
    assert db.session.scalars(db.select(JourneyVersion)).all() == []
    post(client, f"/journeys/{welcome.id}/nodes/ask", welcome, id="ask", type="wait", timeout="2h")
    published = post(client, f"/journeys/{welcome.id}/publish", welcome, note="first cut")
    assert published.status_code == 204
    version = db.session.scalars(db.select(JourneyVersion)).one()
    assert (version.number, version.note) == (1, "first cut")
    assert "published version 1" in client.get(f"/journeys/{welcome.id}").text


def test_versions_diff_view_and_restore(client, welcome):
    journeys.publish(welcome, note="v1")
    post(client, f"/journeys/{welcome.id}/nodes", welcome, type="end", id="bye", after="again")
    post(client, f"/journeys/{welcome.id}/nodes/thanks", welcome, id="thanks", type="message", body="Cheers!")
    journeys.publish(db.session.get(Journey, welcome.id), note="v2")
    page = client.get(f"/journeys/{welcome.id}/versions")
    assert page.status_code == 200
    assert "v2" in page.text and "1 node added" in page.text and "1 node changed" in page.text
    assert "+ node <code>bye</code>" in page.text and "again → bye" in page.text
    old = client.get(f"/journeys/{welcome.id}/versions/1")
    assert old.status_code == 200 and "read-only" in old.text and 'data-node="bye"' not in old.text
    assert "hx-get" not in old.text.split('class="diagram-scroll readonly"')[1].split("</svg>")[0]
    assert client.get(f"/journeys/{welcome.id}/export?version=1").json["nodes"] == load_example("welcome")["nodes"]
    stale = client.post(f"/journeys/{welcome.id}/versions/1/restore", data={"draft_revision": 1})
    assert stale.status_code == 303 and "/versions/1" in stale.headers["Location"]
    revision = db.session.get(Journey, welcome.id).draft_revision
    restored = client.post(f"/journeys/{welcome.id}/versions/1/restore", data={"draft_revision": revision})
    assert restored.status_code == 303
    assert draft_of(welcome)["nodes"] == load_example("welcome")["nodes"]
    assert client.get(f"/journeys/{welcome.id}/versions/9").status_code == 404


def test_settings(client, welcome):
    post(client, f"/journeys/{welcome.id}/settings", welcome, name="Renamed", description="", channel="whatsapp")
    doc = draft_of(welcome)
    assert doc["name"] == "Renamed" and doc["channel"] == "whatsapp" and "description" not in doc
    assert db.session.get(Journey, welcome.id).name == "Renamed"


# --- preview, sample contact, try it -------------------------------------------------------------------------


def test_preview_for_sample_contact(client, welcome):
    url = f"/journeys/{welcome.id}"
    empty = client.post(f"{url}/preview", data={"body": "Hi <<name>>, order <<order_id|?>> 😀"})
    assert "«name»" in empty.text and "UCS-2" in empty.text and "No value for name" in empty.text
    client.post(f"{url}/sample", data={"fields": "name = Ana\norder_id = 77"})
    filled = client.post(f"{url}/preview", data={"body": "Hi <<name>>, order <<order_id>> " + "x" * 150})
    assert "Hi Ana, order 77" in filled.text and "GSM-7" in filled.text and "2 SMS segments" in filled.text
    template = client.post(
        f"{url}/preview",
        data={"mode": "template", "content_sid": "HXabc", "content_variables": "1 = <<name>>\n2 = <<city>>"},
    )
    assert "HXabc" in template.text and "Ana" in template.text and "«city»" in template.text
    bad = client.post(f"{url}/sample", data={"fields": "name = Ana\nno separator"})
    assert bad.status_code == 422 and "line 2" in bad.text
    assert "Hi Ana" in client.post(f"{url}/preview", data={"body": "Hi <<name>>"}).text  # the sample was kept


def test_sample_from_an_audience_contact(client, welcome):
    audience = Audience(name="Buyers", columns=["phone", "name", "order_id"], total=1)
    contact = Contact(
        phone="+15550001111", name="Bea", fields={"phone": "+15550001111", "name": "Bea", "order_id": "42"}
    )
    db.session.add_all([audience, contact])
    db.session.flush()
    db.session.add(AudienceContact(audience_id=audience.id, contact_id=contact.id))
    db.session.commit()
    panel = client.get(f"/journeys/{welcome.id}/sample?audience_id={audience.id}")
    assert "+15550001111" in panel.text
    chosen = client.post(
        f"/journeys/{welcome.id}/sample", data={"use": "contact", "contact_id": contact.id, "audience_id": audience.id}
    )
    assert chosen.headers["HX-Trigger"] == "sample-changed" and "order_id = 42" in chosen.text
    preview = client.post(f"/journeys/{welcome.id}/preview", data={"body": "Hi <<name>> #<<order_id>>"})
    assert "Hi Bea #42" in preview.text


def test_try_regex(client, welcome):
    url = f"/journeys/{welcome.id}/try-regex"
    assert "matches" in client.post(url, data={"regex": r"^\d{5}$", "try": "12345"}).text
    assert "no match" in client.post(url, data={"regex": r"^\d{5}$", "try": "1234"}).text
    assert "error-text" in client.post(url, data={"regex": "(", "try": "x"}).text


# --- the simulator -----------------------------------------------------------------------------------------


def test_simulator_endpoints_walk_the_journey(client, welcome):
    url = f"/journeys/{welcome.id}"
    client.post(f"{url}/sample", data={"fields": "name = Ana\norder_id = 9"})
    started = client.post(f"{url}/simulator", data={"api_mode": "typed"}, headers=HX)
    assert "Hi Ana! Did order 9 arrive?" in started.text and "waiting" in started.text
    assert 'class="node node-wait node-path node-current"' in started.text  # diagram out of band
    token = re.search(r'name="token" value="([^"]+)"', started.text).group(1)
    unclear = client.post(f"{url}/simulator/reply", data={"token": token, "text": "hmm"}, headers=HX)
    assert "Please answer YES or NO." in unclear.text
    timer = client.post(f"{url}/simulator/timer", data={"token": token}, headers=HX)
    assert "Sorry about that!" in timer.text and "completed" in timer.text
    assert "Hi Ana" in client.get(f"{url}").text  # the editor keeps showing the simulation
    gone = client.post(f"{url}/simulator/reply", data={"token": "nope", "text": "yes"}, headers=HX)
    assert "expired" in gone.text
    reset = client.post(f"{url}/simulator-reset", headers=HX)
    assert "Start simulation" in reset.text


def test_simulator_typed_api_answer(client):
    journey = journeys.import_document(load_example("order-status"))
    url = f"/journeys/{journey.id}"
    client.post(f"{url}/sample", data={"fields": "name = Ana\norder_id = 5"})
    started = client.post(f"{url}/simulator", data={"api_mode": "typed"}, headers=HX)
    assert "API call:" in started.text and "/orders/5" in started.text
    token = re.search(r'name="token" value="([^"]+)"', started.text).group(1)
    bad = client.post(f"{url}/simulator/api", data={"token": token, "status": "200", "body": "{x"}, headers=HX)
    assert "not JSON" in bad.text
    answered = client.post(
        f"{url}/simulator/api",
        data={"token": token, "status": "200", "body": '{"status": "shipped", "tracking": "T9"}'},
        headers=HX,
    )
    assert "shipped with our courier: track T9" in answered.text


def test_simulator_refuses_a_draft_with_errors(client, welcome):
    post(client, f"/journeys/{welcome.id}/nodes/ask", welcome, id="ask", type="wait", timeout="soon")
    response = client.post(f"/journeys/{welcome.id}/simulator", headers=HX)
    assert "Fix the errors" in response.text
