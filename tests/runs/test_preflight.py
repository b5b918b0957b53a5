"""Pre-flight: POST /api/journeys/<id>/runs/preview and the blockers a start is refused for."""

from datetime import timedelta

from app.contacts import optout
from app.engine import parse
from app.engine.paths import message_paths, messages_before_a_reply
from app.extensions import db
from app.models import InboundMessage, Message, Run, utcnow
from app.runs.preflight import send_rate
from tests.runs.test_runs_helpers import create_journey, example, linear_journey, phones, settle

KEYS = {
    "recipients",
    "suppressed",
    "messages_per_contact",
    "segments_per_contact",
    "estimated_seconds",
    "blockers",
    "warnings",
}


def _branching() -> dict:
    """start -> hi -> ask(wait) -> yes: two more messages, or timeout: done (1 message)."""
    return {
        "format": "journey/v1",
        "name": "Branching",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "hi", "type": "message", "body": "Hi <<name>>, reply YES"},
            {"id": "ask", "type": "wait", "timeout": "1h"},
            {"id": "yes1", "type": "message", "body": "Great! " + "long text " * 20},
            {"id": "yes2", "type": "message", "body": "Bye"},
            {"id": "done", "type": "end"},
        ],
        "edges": [
            {"from": "start", "to": "hi"},
            {"from": "hi", "to": "ask"},
            {"from": "ask", "to": "yes1", "when": {"keywords": ["yes"]}},
            {"from": "ask", "to": "done", "when": "timeout"},
            {"from": "yes1", "to": "yes2"},
            {"from": "yes2", "to": "done"},
        ],
    }


def test_paths_give_least_and_most_messages():
    summary = message_paths(parse(_branching()))
    assert summary.paths == (("hi",), ("hi", "yes1", "yes2"))  # no reply (or timeout), or the yes path
    assert not summary.loops
    survey = parse(example("whatsapp-survey"))
    assert message_paths(survey).loops  # badzip -> zip -> badzip
    assert messages_before_a_reply(survey) == ["invite_a", "invite_b"]


def test_preview_answers_the_contract_and_counts_suppressions(app, api):
    journey_id = create_journey(_branching()).id
    contacts = [
        {"phone": phones(1)[0], "name": "Ann"},
        {"phone": phones(1)[0], "name": "Ann again"},  # duplicate
        {"phone": "12"},  # invalid
        {"phone": phones(1, 1)[0], "name": "Bob " + "x" * 150},  # long name: more segments
        {"phone": phones(1, 2)[0]},  # will opt out
        {"phone": phones(1, 3)[0]},  # already active in a run of this journey
    ]
    api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": [{"phone": phones(1, 3)[0]}]})
    api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": [{"phone": phones(1, 2)[0]}]})
    settle()
    optout.opt_out(phones(1, 2)[0])
    runs_before = db.session.query(Run).count()
    answer = api.post(f"/api/journeys/{journey_id}/runs/preview", json={"contacts": contacts}).json
    print("pre-flight:", answer)
    assert set(answer) == KEYS
    assert answer["suppressed"] == {"opted_out": 1, "invalid": 1, "duplicate": 1, "already_active": 1}
    assert answer["recipients"] == 2
    assert answer["messages_per_contact"] == {"min": 1, "max": 3}
    assert answer["segments_per_contact"] == {"min": 1, "max": 5}
    assert answer["blockers"] == [] and any("already active" in text for text in answer["warnings"])
    assert db.session.query(Run).count() == runs_before  # nothing started


def test_estimate_uses_the_global_and_per_sender_limits(app, api):
    app.config.update(MESSAGE_RATE_LIMIT=50, SENDER_RATE_LIMIT=1, TWILIO_FROM="+15005550001,+15005550003")
    assert send_rate(app.config, "sms") == 2
    app.config["SENDER_RATE_LIMITS"] = "+15005550001=3"
    assert send_rate(app.config, "sms") == 4
    app.config["MESSAGE_RATE_LIMIT"] = 3
    assert send_rate(app.config, "sms") == 3
    journey = create_journey(linear_journey("one", "two"))
    answer = api.post(
        f"/api/journeys/{journey.id}/runs/preview", json={"contacts": [{"phone": p} for p in phones(6)]}
    ).json
    assert answer["estimated_seconds"] == 6 * 2 / 3


def test_estimate_waits_for_the_send_window(app, api):
    app.config["MESSAGE_RATE_LIMIT"] = 10
    doc = linear_journey("hi")
    opens = utcnow() + timedelta(hours=3)
    doc["send_window"] = {
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    journey = create_journey(doc)
    answer = api.post(
        f"/api/journeys/{journey.id}/runs/preview", json={"contacts": [{"phone": p} for p in phones(20)]}
    ).json
    assert 3 * 3600 - 120 < answer["estimated_seconds"] < 3 * 3600 + 60
    assert any("send window is closed" in text for text in answer["warnings"])


def test_whatsapp_free_text_blocks_unless_the_contact_wrote_or_a_template_is_used(app, api):
    survey = example("whatsapp-survey")
    journey = create_journey(survey)
    body = {"contacts": [{"phone": p} for p in phones(3)]}
    db.session.add(InboundMessage(sid="SMrecent", from_phone=phones(1)[0], channel="whatsapp", body="hi"))
    db.session.commit()
    answer = api.post(f"/api/journeys/{journey.id}/runs/preview", json=body).json
    assert len(answer["blockers"]) == 1 and "2 contact(s) have not written" in answer["blockers"][0]
    assert "63016" in answer["blockers"][0] and "invite_b" in answer["blockers"][0]
    refused = api.post(f"/api/journeys/{journey.id}/runs", json=body)
    assert refused.status_code == 409 and refused.json["blockers"] == answer["blockers"]
    assert db.session.query(Run).count() == 0 and db.session.query(Message).count() == 0
    template_only = example("whatsapp-survey")
    template_only["nodes"][3] = {"id": "invite_b", "type": "message", "content_sid": "HX" + "1" * 32}
    journey = create_journey(template_only)
    assert api.post(f"/api/journeys/{journey.id}/runs/preview", json=body).json["blockers"] == []


def test_blockers_for_journey_errors_and_missing_senders(app, api):
    journey = create_journey(linear_journey("hi"))
    journey.draft = {**journey.draft, "nodes": journey.draft["nodes"][:-1]}  # drop the end node: an edge dangles
    db.session.commit()
    answer = api.post(f"/api/journeys/{journey.id}/runs/preview", json={"contacts": [{"phone": phones(1)[0]}]}).json
    assert any("the journey has" in text for text in answer["blockers"])
    app.config["TWILIO_FROM"] = None
    journey = create_journey(linear_journey("hi"))
    answer = api.post(f"/api/journeys/{journey.id}/runs/preview", json={"contacts": [{"phone": phones(1)[0]}]}).json
    assert answer["blockers"] == ["no sms sender is configured (set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID)"]
    assert api.post(f"/api/journeys/{journey.id}/runs/preview", json={"audience_id": 99}).status_code == 404
