"""The runs JSON API: bad input named by field, unknown ids, invalid journeys, pagination, auth."""

import pytest

from app.extensions import db
from app.journeys import store as journeys
from app.models import Contact, Run
from tests.runs.test_runs_helpers import create_journey, example, linear_journey, phones, settle, start


@pytest.fixture
def journey_id(app):
    return create_journey(linear_journey("hi <<name>>")).id


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "JSON object"),
        ([1, 2], "JSON object"),
        ({}, "exactly one of audience_id or contacts"),
        ({"audience_id": 1, "contacts": [{"phone": "+15005550000"}]}, "exactly one of audience_id or contacts"),
        ({"audience_id": "7"}, "audience_id must be a whole number"),
        ({"audience_id": True}, "audience_id must be a whole number"),
        ({"contacts": []}, "contacts must be a non-empty list"),
        ({"contacts": "+15005550000"}, "contacts must be a non-empty list"),
        ({"contacts": [{"phone": "+15005550000"}, 5]}, "contacts[1] must be an object"),
        ({"contacts": [{"phone": "+15005550000"}, {"name": "no phone"}]}, "contacts[1].phone is missing"),
        ({"contacts": [{"phone": "+15005550000"}, {"phone": "12"}]}, "contact 2"),
    ],
)
def test_bad_start_requests_name_the_field(app, api, journey_id, body, message):
    response = (
        api.post(f"/api/journeys/{journey_id}/runs", json=body)
        if body is not None
        else api.post(f"/api/journeys/{journey_id}/runs", data="not json", content_type="application/json")
    )
    assert response.status_code == 400
    assert message in response.json["error"]
    assert db.session.query(Run).count() == 0
    assert db.session.query(Contact).count() == 0  # nothing half-written


def test_unknown_journey_audience_and_run_are_404(app, api, journey_id):
    assert api.post("/api/journeys/999/runs", json={"audience_id": 1}).status_code == 404
    response = api.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": 999})
    assert response.status_code == 404 and "no audience 999" in response.json["error"]
    for path in ("/api/runs/999", "/api/runs/999/contacts"):
        assert api.get(path).status_code == 404
    assert api.post("/api/runs/999/stop").status_code == 404


def test_journey_with_errors_is_422_with_its_problems(app, api):
    journey = create_journey(example("welcome"))
    broken = example("welcome")
    broken["edges"].append({"from": "done", "to": "nowhere"})
    journeys.save_draft_unchecked(journey, broken, expected_revision=None)
    response = api.post(f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": phones(1)[0]}]})
    assert response.status_code == 422
    assert response.json["problems"] and all("message" in problem for problem in response.json["problems"])
    assert db.session.query(Run).count() == 0


def test_runs_api_needs_a_token(app, journey_id):
    client = app.test_client()
    assert client.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": 1}).status_code == 401
    assert client.get("/api/runs/1").status_code == 401


def test_contacts_are_paginated(app, api, journey_id, fake_twilio):
    numbers = phones(7)
    run_id = start(api, journey_id, [{"phone": phone, "name": f"n{n}"} for n, phone in enumerate(numbers)])
    settle()
    first = api.get(f"/api/runs/{run_id}/contacts?per_page=3").json
    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 3, 7, 3)
    assert [contact["phone"] for contact in first["contacts"]] == numbers[:3]
    last = api.get(f"/api/runs/{run_id}/contacts?per_page=3&page=3").json
    assert [contact["phone"] for contact in last["contacts"]] == numbers[6:]
    assert last["contacts"][0]["messages"][0]["body"] == "hi n6"
    assert last["contacts"][0]["messages"][0]["status"] == "sent"
    assert api.get(f"/api/runs/{run_id}/contacts?page=0").status_code == 400
    assert api.get(f"/api/runs/{run_id}/contacts?per_page=abc").status_code == 400
    assert len(api.get(f"/api/runs/{run_id}/contacts").json["contacts"]) == 7


def test_stopping_a_finished_run_changes_nothing(app, api, journey_id, fake_twilio):
    run_id = start(api, journey_id, [{"phone": phones(1)[0]}])
    settle()
    response = api.post(f"/api/runs/{run_id}/stop")
    assert response.status_code == 200
    assert response.json == {"id": run_id, "status": "completed", "stopped": 0}
