"""The journey store (`app.journeys.store`) and its JSON API: drafts, immutable versions, concurrency, import/export."""

import copy
import json

import pytest

from app.extensions import db
from app.journeys import store as journeys
from app.models import Journey, JourneyVersion, Run
from tests.examples import EXAMPLES_DIR

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
WELCOME = json.loads((EXAMPLES_DIR / "welcome.json").read_text())


def welcome(**changes) -> dict:
    doc = copy.deepcopy(WELCOME)
    doc.update(changes)
    return doc


def broken_doc() -> dict:
    """Two errors: an unknown node type and an edge to a missing node."""
    doc = welcome()
    doc["nodes"][1]["type"] = "telegram"
    doc["edges"].append({"from": "thanks", "to": "nowhere"})
    return doc


def journey_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(Journey))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_export_round_trip_equals_the_example(app, example):
    doc = json.loads(example.read_text())
    journey = journeys.import_document(doc)
    exported = journeys.export_document(journey)
    assert exported.pop("id") == journey.id
    assert exported == doc
    version = journeys.publish(journey)
    from_version = journeys.export_document(version)
    assert from_version.pop("id") == journey.id
    assert from_version == doc


def test_create_update_publish_and_versions_stay_immutable(app):
    journey = journeys.create_journey(welcome())
    assert journey.name == "Delivery check"
    assert journey.draft_revision == 1
    assert journeys.status_of(journey) == ("draft", None)

    first = journeys.publish(journey, note="first")
    assert first.number == 1 and first.note == "first"
    assert journeys.status_of(journey) == ("published", 1)
    assert journeys.publish(journey).id == first.id, "publishing an unchanged draft makes no new version"

    edited = welcome(name="Delivery check v2")
    edited["nodes"][1]["body"] = "Hello <<name|there>>, did order <<order_id>> arrive?"
    journeys.update_draft(journey, edited)
    assert journey.name == "Delivery check v2"
    assert journey.draft_revision == 2
    assert journeys.status_of(journey) == ("changed", 1)

    db.session.expire_all()
    stored_first = db.session.get(JourneyVersion, first.id)
    assert stored_first.definition == WELCOME, "editing the draft never changes a published version"

    second = journeys.publish(journey)
    assert second.number == 2
    assert second.definition["nodes"][1]["body"].startswith("Hello")
    assert journeys.status_of(journey) == ("published", 2)
    assert [version.number for version in journey.versions] == [1, 2]


def test_version_for_run_publishes_the_draft_or_reuses_the_latest(app, user):
    journey = journeys.create_journey(welcome())
    version = journeys.version_for_run(journey, user=user)
    assert version.number == 1 and version.created_by_id == user.id
    assert journeys.version_for_run(journey).id == version.id


def test_stale_revision_is_refused_and_the_draft_kept(app):
    journey = journeys.create_journey(welcome())
    journeys.update_draft(journey, welcome(name="Tab one"), expected_revision=1)
    with pytest.raises(journeys.StaleDraft) as refused:
        journeys.update_draft(journey, welcome(name="Tab two"), expected_revision=1)
    assert refused.value.current_revision == 2
    db.session.expire_all()
    assert journey.draft["name"] == "Tab one" and journey.draft_revision == 2
    with pytest.raises(journeys.StaleDraft):
        journeys.save_draft_unchecked(journey, welcome(name="Tab two"), expected_revision=1)


def test_invalid_update_leaves_the_draft_unchanged_and_names_the_node(app):
    journey = journeys.create_journey(welcome())
    with pytest.raises(journeys.InvalidJourney) as refused:
        journeys.update_draft(journey, broken_doc())
    problems = refused.value.problems
    assert {problem.node_id for problem in problems} >= {"hello"}
    assert all(problem.severity == "error" for problem in problems)
    db.session.expire_all()
    assert journey.draft == WELCOME and journey.draft_revision == 1


def test_designer_drafts_may_have_errors_but_never_publish(app):
    journey = journeys.create_journey(welcome())
    journeys.save_draft_unchecked(journey, broken_doc(), expected_revision=1)
    assert journey.draft_revision == 2 and journey.draft == broken_doc()
    with pytest.raises(journeys.InvalidJourney):
        journeys.publish(journey)
    with pytest.raises(journeys.InvalidJourney):
        journeys.version_for_run(journey)
    assert journey.versions == []
    with pytest.raises(journeys.InvalidJourney) as refused:
        journeys.save_draft_unchecked(journey, {"name": "x", "nodes": {}}, expected_revision=2)
    assert {problem.field for problem in refused.value.problems} == {"nodes", "edges"}


def test_import_is_all_or_nothing(app):
    with pytest.raises(journeys.InvalidJourney) as refused:
        journeys.import_document(broken_doc())
    assert len(refused.value.problems) >= 2
    assert journey_count() == 0


def test_unknown_keys_are_kept_and_an_id_in_the_document_is_ignored(app):
    doc = welcome(id=999, x_owner="growth team")
    doc["nodes"][0]["x_note"] = {"colour": "blue"}
    doc["edges"][0]["x_weight_hint"] = 3
    journey = journeys.import_document(doc)
    exported = journeys.export_document(journey)
    assert exported["id"] == journey.id != 999
    assert exported["x_owner"] == "growth team"
    assert exported["nodes"][0]["x_note"] == {"colour": "blue"}
    assert exported["edges"][0]["x_weight_hint"] == 3
    assert journeys.publish(journey).definition["x_owner"] == "growth team"


def test_duplicate_copies_the_draft_not_the_versions(app):
    journey = journeys.create_journey(welcome())
    journeys.publish(journey)
    copied = journeys.duplicate(journey)
    assert copied.id != journey.id
    assert copied.name == "Copy of Delivery check" == copied.draft["name"]
    assert copied.versions == []
    assert copied.draft["nodes"] == journey.draft["nodes"]


def test_delete_is_refused_while_a_run_is_active(app):
    journey = journeys.create_journey(welcome())
    version = journeys.publish(journey)
    run = Run(journey_id=journey.id, version_id=version.id, status="active")
    db.session.add(run)
    db.session.commit()
    with pytest.raises(journeys.JourneyInUse):
        journeys.delete(journey)
    assert journey_count() == 1

    run.status = "completed"
    db.session.commit()
    journeys.delete(journey)
    assert journey_count() == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(JourneyVersion)) == 0


def test_warnings_are_separate_from_errors(app):
    doc = welcome()
    doc["nodes"].append({"id": "orphan", "type": "end"})
    assert journeys.problems_of(doc) == []
    warnings = journeys.warnings_of(doc)
    assert any(warning.node_id == "orphan" for warning in warnings)
    assert all(warning.severity == "warning" for warning in warnings)
    assert journeys.warnings_of(broken_doc()) == []
    assert journeys.problems_of("not an object")[0].severity == "error"


# --- JSON API ---------------------------------------------------------------------------------


def test_api_create_get_put(api):
    created = api.post("/api/journeys", json=WELCOME)
    assert created.status_code == 201, created.json
    journey_id = created.json["id"]

    fetched = api.get(f"/api/journeys/{journey_id}")
    assert fetched.status_code == 200
    assert fetched.json == {"id": journey_id, **WELCOME}

    replaced = api.put(f"/api/journeys/{journey_id}", json=welcome(name="Renamed"))
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["revision"] == 2 and replaced.json["name"] == "Renamed"
    assert api.get(f"/api/journeys/{journey_id}").json["name"] == "Renamed"

    listed = api.get("/api/journeys").json
    assert [(row["id"], row["status"]) for row in listed] == [(journey_id, "draft")]


def test_api_invalid_journey_is_422_with_every_problem(api):
    response = api.post("/api/journeys", json=broken_doc())
    assert response.status_code == 422
    assert response.json["error"]
    problems = response.json["problems"]
    assert len(problems) >= 2
    assert set(problems[0]) == {"message", "node_id", "edge_index", "field", "severity"}
    assert any(problem["node_id"] == "hello" for problem in problems)
    assert any(problem["edge_index"] == len(WELCOME["edges"]) for problem in problems)
    assert journey_count() == 0


def test_api_put_invalid_keeps_the_draft(api):
    journey_id = api.post("/api/journeys", json=WELCOME).json["id"]
    response = api.put(f"/api/journeys/{journey_id}", json=broken_doc())
    assert response.status_code == 422
    assert any(problem["node_id"] == "hello" for problem in response.json["problems"])
    assert api.get(f"/api/journeys/{journey_id}").json == {"id": journey_id, **WELCOME}


def test_api_errors(api, app):
    assert api.post("/api/journeys", data="[1, 2]", content_type="application/json").status_code == 400
    assert api.post("/api/journeys", data="not json", content_type="application/json").status_code == 400
    assert api.get("/api/journeys/12345").status_code == 404
    assert api.put("/api/journeys/12345", json=WELCOME).status_code == 404
    assert app.test_client().get("/api/journeys").status_code == 401


def test_api_put_with_stale_if_match_is_409(api):
    journey_id = api.post("/api/journeys", json=WELCOME).json["id"]
    assert api.put(f"/api/journeys/{journey_id}", json=welcome(name="A"), headers={"If-Match": "1"}).status_code == 200
    stale = api.put(f"/api/journeys/{journey_id}", json=welcome(name="B"), headers={"If-Match": "1"})
    assert stale.status_code == 409 and stale.json["revision"] == 2
    assert api.get(f"/api/journeys/{journey_id}").json["name"] == "A"


def test_api_publish_and_delete(api):
    journey_id = api.post("/api/journeys", json=WELCOME).json["id"]
    published = api.post(f"/api/journeys/{journey_id}/publish", json={"note": "go"})
    assert published.status_code == 200 and published.json["version"] == 1
    assert api.post(f"/api/journeys/{journey_id}/publish").json["version"] == 1
    assert api.delete(f"/api/journeys/{journey_id}").status_code == 200
    assert api.get(f"/api/journeys/{journey_id}").status_code == 404
