"""Keyword triggers: a published journey listens; a text whose first word matches starts it for the sender."""

import copy

from sqlalchemy import select

from app.extensions import db
from app.models import Contact, Participation, Run
from tests.runs.test_runs_helpers import (
    bodies_to,
    create_journey,
    inbound_outcome,
    linear_journey,
    reply,
    run_row,
    settle,
    start,
)

STRANGER = "+15005550777"


def trigger_journey(
    *keywords: str, name: str = "Join", channel: str | None = None, body: str = "Welcome! You said <<trigger>>"
) -> dict:
    doc = linear_journey(body)
    doc["name"] = name
    doc["triggers"] = [{"keywords": list(keywords or ("join",)), **({"channel": channel} if channel else {})}]
    return doc


def publish(api, journey_id: int):
    return api.post(f"/api/journeys/{journey_id}/publish", json={})


def runs_of(api, journey_id: int) -> list[dict]:
    response = api.get(f"/api/journeys/{journey_id}/runs")
    assert response.status_code == 200
    return response.json["runs"]


def test_publishing_opens_a_listening_run_and_a_keyword_starts_an_unknown_number(api, client, fake_twilio):
    journey = create_journey(trigger_journey("join", "entrar"))
    answer = publish(api, journey.id)
    assert answer.status_code == 200 and answer.json["listening_run_id"]
    [listening] = runs_of(api, journey.id)
    assert (listening["kind"], listening["status"], listening["total"]) == ("trigger", "listening", 0)

    sid = reply(client, STRANGER, "Join! pizza club")
    settle()

    assert inbound_outcome(sid).outcome == "triggered"
    contact = db.session.scalar(select(Contact).where(Contact.phone == STRANGER))
    assert contact is not None
    assert bodies_to(fake_twilio, STRANGER) == ["Welcome! You said Join! pizza club"]
    run = run_row(listening["id"])
    assert (run.status, run.total) == ("listening", 1)


def test_replies_and_stop_come_first_and_other_words_do_nothing(api, client, fake_twilio):
    journey = create_journey(trigger_journey("join"))
    publish(api, journey.id)
    waiting_doc = linear_journey("Reply please", tail="ask", extra_nodes=[{"id": "ask", "type": "wait"}])
    waiting_doc["edges"].append({"from": "ask", "to": "done", "when": {"keywords": ["join"]}})
    waiting = create_journey(waiting_doc)
    start(api, waiting.id, [{"phone": STRANGER}])
    settle()

    assert inbound_outcome(reply(client, STRANGER, "join")).outcome == "matched"
    assert inbound_outcome(reply(client, "+15005550778", "hello there")).outcome == "unknown_contact"
    reply(client, "+15005550779", "STOP")
    assert inbound_outcome(reply(client, "+15005550779", "join")).outcome != "triggered"
    settle()
    assert bodies_to(fake_twilio, "+15005550779") == []


def test_a_keyword_another_published_journey_listens_to_is_refused_naming_it(api):
    first = create_journey(trigger_journey("join", name="Pizza club"))
    assert publish(api, first.id).status_code == 200
    second = create_journey(trigger_journey("JOIN", name="Newsletter"))

    refused = publish(api, second.id)

    assert refused.status_code == 409
    assert "Pizza club" in refused.json["problems"][0]["message"]
    assert runs_of(api, second.id) == []
    on_whatsapp = create_journey(trigger_journey("join", name="WhatsApp club", channel="whatsapp"))
    assert publish(api, on_whatsapp.id).status_code == 200


def test_stopping_the_listening_run_turns_the_triggers_off_until_the_next_publish(api, client, fake_twilio):
    journey = create_journey(trigger_journey("join"))
    run_id = publish(api, journey.id).json["listening_run_id"]
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 200

    assert inbound_outcome(reply(client, STRANGER, "join")).outcome == "unknown_contact"
    assert run_row(run_id).status == "stopped"

    reopened = publish(api, journey.id).json["listening_run_id"]
    assert reopened and reopened != run_id
    assert inbound_outcome(reply(client, STRANGER, "join")).outcome == "triggered"


def test_a_new_version_retires_the_old_listening_run(api, client, fake_twilio):
    doc = trigger_journey("join")
    journey = create_journey(doc)
    old_run = publish(api, journey.id).json["listening_run_id"]
    changed = copy.deepcopy(doc)
    changed["nodes"][1]["body"] = "Version two"
    assert api.put(f"/api/journeys/{journey.id}", json=changed).status_code == 200

    new_run = publish(api, journey.id).json["listening_run_id"]

    assert new_run != old_run
    assert run_row(old_run).status == "completed"
    reply(client, STRANGER, "join")
    settle()
    assert bodies_to(fake_twilio, STRANGER) == ["Version two"]


def test_a_contact_who_finished_can_start_again_and_gets_the_message_again(api, client, fake_twilio):
    journey = create_journey(trigger_journey("join"))
    run_id = publish(api, journey.id).json["listening_run_id"]
    reply(client, STRANGER, "join")
    settle()
    reply(client, STRANGER, "join again")
    settle()

    assert bodies_to(fake_twilio, STRANGER) == ["Welcome! You said join", "Welcome! You said join again"]
    rows = db.session.scalars(select(Participation).where(Participation.run_id == run_id)).all()
    assert len(rows) == 1 and rows[0].state == "completed"
    assert db.session.get(Run, run_id).total == 1


def test_a_contact_active_in_another_run_of_the_journey_is_not_started_by_its_keyword(api, client, fake_twilio):
    doc = trigger_journey("join", body="Hi <<trigger|there>>")
    doc["nodes"].insert(-1, {"id": "later", "type": "delay", "duration": "1h"})
    doc["edges"] = [{"from": "start", "to": "m1"}, {"from": "m1", "to": "later"}, {"from": "later", "to": "done"}]
    journey = create_journey(doc)
    listening_id = publish(api, journey.id).json["listening_run_id"]
    start(api, journey.id, [{"phone": STRANGER}])  # now `delayed` in an audience run of the journey
    settle()

    sid = reply(client, STRANGER, "join")
    settle()
    assert inbound_outcome(sid).outcome != "triggered"
    assert bodies_to(fake_twilio, STRANGER) == ["Hi there"]  # not a second time
    assert db.session.scalars(select(Participation).where(Participation.run_id == listening_id)).all() == []


def test_an_opted_out_contact_is_not_started(api, client, fake_twilio):
    journey = create_journey(trigger_journey("join"))
    publish(api, journey.id)
    reply(client, STRANGER, "join")
    settle()
    reply(client, STRANGER, "STOP")
    settle()

    assert inbound_outcome(reply(client, STRANGER, "join")).outcome != "triggered"
    settle()
    assert bodies_to(fake_twilio, STRANGER) == ["Welcome! You said join"]


# --- the designer: settings, diagram, simulator ---------------------------------------------------------------


def test_designer_settings_edit_triggers_and_the_diagram_shows_them(client):
    from tests.journeys.test_designer import draft_of, post

    journey = create_journey(linear_journey("Hi <<trigger>>"))
    post(
        client,
        f"/journeys/{journey.id}/settings",
        journey,
        name="Join",
        channel="sms",
        trigger_sms="join, entrar",
        trigger_whatsapp="",
    )
    doc = draft_of(journey)
    assert doc["triggers"] == [{"keywords": ["join", "entrar"], "channel": "sms"}]
    page = client.get(f"/journeys/{journey.id}")
    assert "text JOIN, ENTRAR or every contact" in page.text
    assert 'value="join, entrar"' in client.get(f"/journeys/{journey.id}/settings").text

    post(
        client,
        f"/journeys/{journey.id}/settings",
        journey,
        name="Join",
        channel="sms",
        trigger_sms="",
        trigger_whatsapp="",
    )
    assert "triggers" not in draft_of(journey)


def test_the_simulator_starts_a_contact_by_text(client):
    journey = create_journey(trigger_journey("join"))
    url = f"/journeys/{journey.id}/simulator"

    started = client.post(url, data={"trigger_text": "JOIN now"})
    assert "Started by the keyword trigger" in started.text
    assert "Welcome! You said JOIN now" in started.text

    client.post(f"/journeys/{journey.id}/simulator-reset")
    refused = client.post(url, data={"trigger_text": "hello"})
    assert "starts no conversation" in refused.text and "join (sms)" in refused.text
