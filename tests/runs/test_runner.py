"""Exactness of the runner under failure: lost and repeated jobs, duplicated outcomes, two sweepers,
two replies at once, a flushed Redis. Real Redis and RQ, the fake Twilio, both databases."""

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.contacts import audiences
from app.extensions import db
from app.models import Contact, InboundMessage, Message, Participation, utcnow
from app.queues import get_queue, get_redis
from app.runs import advancing, inbound, sweeper
from app.sending import messaging
from tests.conftest import drain
from tests.runs.test_runs_helpers import (
    bodies_to,
    create_journey,
    example,
    linear_journey,
    participations,
    phones,
    run_row,
    sends_through_jobs,
    settle,
    start,
    sweep_at,
)

LEASE = 60


def _delay_journey(seconds: int = 30) -> dict:
    doc = linear_journey("before", "after")
    doc["nodes"].insert(2, {"id": "pause", "type": "delay", "duration": seconds})
    doc["edges"] = [
        {"from": "start", "to": "m1"},
        {"from": "m1", "to": "pause"},
        {"from": "pause", "to": "m2"},
        {"from": "m2", "to": "done"},
    ]
    return doc


def _ids(run_id: int) -> list[int]:
    return sorted(p.id for p in participations(run_id).values())


def test_two_sweeps_at_the_same_moment_fire_each_timer_once(app, api, fake_twilio):
    numbers = phones(20)
    run_id = start(api, create_journey(_delay_journey()).id, [{"phone": phone} for phone in numbers])
    settle()
    sweeper.sweep()  # first sweep of a fresh Redis: sets its marker
    now = utcnow() + timedelta(seconds=31)
    results = []

    def claim():
        with app.app_context():
            results.append(sweeper._dispatch_due(now, sweeper.SWEEP_LIMIT)["timers"])
            db.session.remove()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 20]
    settle()
    assert all(bodies_to(fake_twilio, phone) == ["before", "after"] for phone in numbers)
    assert run_row(run_id).status == "completed"


def test_a_timer_delivered_twice_moves_the_contact_once(app, api, fake_twilio):
    numbers = phones(5)
    run_id = start(api, create_journey(_delay_journey()).id, [{"phone": phone} for phone in numbers])
    settle()
    items = [(p.id, "pause", 1) for p in participations(run_id).values()]
    assert advancing.fire_timers(items) == 5
    assert advancing.fire_timers(items) == 0
    assert advancing.fire_timers([(pid, "pause", 2) for pid, _, _ in items]) == 0  # a visit that never was
    settle()
    assert all(bodies_to(fake_twilio, phone) == ["before", "after"] for phone in numbers)


def test_repeated_jobs_and_outcomes_never_send_twice(app, api, fake_twilio):
    numbers = phones(10)
    run_id = start(
        api, create_journey(linear_journey("one", "two", "three")).id, [{"phone": phone} for phone in numbers]
    )
    drain(["flows"])  # the first-step jobs send every message of the journey themselves (inline)
    assert get_queue("messages").count == 0
    ids = _ids(run_id)
    assert advancing.advance(ids) == 0  # a re-delivered first step: nothing to do
    first = list(db.session.scalars(select(Message.id).where(Message.node_id == "m1").order_by(Message.id)))
    assert messaging.deliver(first) == []  # a replayed send job: nothing left to send
    participation_of = dict(db.session.execute(select(Message.id, Message.participation_id)).all())
    replayed = [
        messaging.Outcome(message_id, participation_of[message_id], ok=True, final=True) for message_id in first
    ]
    assert advancing.on_message_outcomes(replayed) == 0  # the same outcomes again, long after
    settle()
    for phone in numbers:
        assert bodies_to(fake_twilio, phone) == ["one", "two", "three"]
    assert db.session.scalar(select(func.count()).select_from(Message)) == 30
    assert run_row(run_id).status == "completed"


def test_messages_go_to_send_jobs_when_the_inline_budget_is_spent(app, api, fake_twilio, monkeypatch):
    monkeypatch.setattr(advancing, "INLINE_SEND_SECONDS", 0)
    numbers = phones(6)
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": phone} for phone in numbers])
    drain(["flows"])
    assert (
        fake_twilio.calls == [] and get_queue("messages_conversational").count == 1
    )  # journey messages go ahead of bulk
    settle()
    assert all(bodies_to(fake_twilio, phone) == ["one", "two"] for phone in numbers)
    assert run_row(run_id).status == "completed"


def test_lost_first_steps_are_redone_by_the_sweeper(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": p} for p in phones(8)])
    sweeper.sweep()
    drain(["flows"])  # prepare_run also enqueued the first steps: lose them
    assert get_queue("flows").count == 0
    db.session.execute(update(Participation).values(node_id=None, engine_state={}, state="active"))
    db.session.execute(Message.__table__.delete())
    db.session.commit()
    get_queue("messages_conversational").empty()
    sweep_at(LEASE - 5)
    assert fake_twilio.calls == []
    sweep_at(LEASE + 1)
    assert len(fake_twilio.calls) == 16
    assert run_row(run_id).status == "completed"


def test_queued_message_whose_job_was_lost_is_sent_once(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    numbers = phones(6)
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": p} for p in numbers])
    sweeper.sweep()
    drain(["flows"])
    get_queue("messages_conversational").empty()  # the send jobs are gone
    settle()
    assert fake_twilio.calls == []
    sweep_at(LEASE + 1)
    sweep_at(2 * LEASE + 2)  # a later check finds nothing left to do
    assert all(bodies_to(fake_twilio, phone) == ["one", "two"] for phone in numbers)
    assert run_row(run_id).status == "completed"


def test_accepted_message_whose_outcome_was_lost_moves_on(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    numbers = phones(6)
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": p} for p in numbers])
    sweeper.sweep()
    drain(["flows"])
    get_queue("messages_conversational").empty()
    messaging.deliver(list(db.session.scalars(select(Message.id))))  # sent, but the runner never heard
    assert {p.state for p in participations(run_id).values()} == {"sending"}
    sweep_at(LEASE + 1)
    assert all(bodies_to(fake_twilio, phone) == ["one", "two"] for phone in numbers)
    assert run_row(run_id).status == "completed"


def test_message_left_sending_by_a_dead_job_is_sent_again(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    app.config["MESSAGE_STALE_SECONDS"] = 30
    phone = phones(1)[0]
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": phone}])
    sweeper.sweep()
    drain(["flows"])
    get_queue("messages_conversational").empty()
    # A worker claimed the message and died before Twilio answered.
    db.session.execute(update(Message).values(status="sending", attempts=1, updated_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    get_redis().delete(sweeper.REQUEUE_STALE_KEY)
    sweep_at(LEASE + 1)
    assert bodies_to(fake_twilio, phone) == ["one", "two"]
    assert run_row(run_id).status == "completed"


def test_lost_api_call_is_made_again(app, api, fake_twilio, fake_api):
    fake_api.orders["5"] = {"status": "shipped", "tracking": "T5"}
    doc = example("order-status")
    next(node for node in doc["nodes"] if node["id"] == "lookup")["url"] = fake_api.url("/orders/<<order_id>>")
    phone = phones(1)[0]
    run_id = start(api, create_journey(doc).id, [{"phone": phone, "order_id": "5"}])
    sweeper.sweep()
    get_queue("flows").empty()
    advancing.advance(_ids(run_id))
    get_queue("flows").empty()  # the call_apis job is lost
    assert participations(run_id)[phone].state == "active"
    sweep_at(LEASE + 1)
    assert fake_api.requests == []  # within the call's own timeout (5 s) + lease: not yet
    sweep_at(LEASE + 5 + 1)
    assert len(fake_api.requests) == 1
    assert bodies_to(fake_twilio, phone) == ["Hi, order 5 shipped with our courier: track T5."]


def test_flushed_redis_loses_nothing(app, api, fake_twilio):
    numbers = phones(12)
    delayed_run = start(api, create_journey(_delay_journey(3600)).id, [{"phone": p} for p in numbers[6:]])
    settle()
    sending_run = start(
        api, create_journey(linear_journey("one", "two", "three")).id, [{"phone": p} for p in numbers[:6]]
    )
    sweeper.sweep()
    drain(["flows"])  # first messages queued in Redis, not sent
    get_redis().flushdb()  # every queued job and the sweeper's marker are gone
    sweeper.sweep()  # notices, and re-dispatches every active and sending participation now
    settle()
    assert all(bodies_to(fake_twilio, phone) == ["one", "two", "three"] for phone in numbers[:6])
    get_redis().flushdb()
    sweep_at(3601)
    assert all(bodies_to(fake_twilio, phone) == ["before", "after"] for phone in numbers[6:])
    assert run_row(sending_run).status == "completed" and run_row(delayed_run).status == "completed"


@pytest.mark.parametrize("attempt", range(3))
def test_two_replies_at_once_advance_the_contact_once(app, api, fake_twilio, attempt):
    phone = phones(1)[0]
    run_id = start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    settle()
    contact_id = db.session.scalar(select(Contact.id).where(Contact.phone == phone))
    rows = [
        InboundMessage(
            sid=f"SM{attempt}{n}", from_phone=phone, channel="sms", body=body, contact_id=contact_id, outcome="received"
        )
        for n, body in enumerate(("yes", "no"))
    ]
    db.session.add_all(rows)
    db.session.commit()
    inbound_ids = [row.id for row in rows]
    barrier, outcomes = threading.Barrier(2), {}

    def handle(inbound_id):
        with app.app_context():
            barrier.wait()
            outcomes[inbound_id] = inbound.handle_inbound(inbound_id)
            db.session.remove()

    threads = [threading.Thread(target=handle, args=(inbound_id,)) for inbound_id in inbound_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settle()
    assert sorted(outcomes.values()) == ["matched", "not_waiting"]
    assert len(bodies_to(fake_twilio, phone)) == 2
    winner = next(inbound_id for inbound_id, outcome in outcomes.items() if outcome == "matched")
    expected = "Great, thanks friend!" if winner == inbound_ids[0] else "Sorry about that! Someone will call you today."
    assert bodies_to(fake_twilio, phone)[1] == expected
    assert participations(run_id)[phone].state == "completed"


def test_stopping_at_once_sends_nothing(app, api, fake_twilio):
    run_id = start(api, create_journey(linear_journey("one")).id, [{"phone": p} for p in phones(4)])
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 200
    settle()
    sweep_at(LEASE + 1)
    assert fake_twilio.calls == []
    assert {p.state for p in participations(run_id).values()} == {"stopped"}
    assert run_row(run_id).status == "stopped"


def test_audience_run_stopped_before_preparation_starts_nobody(app, api, fake_twilio):
    audience, _ = audiences.import_audience("A", ("phone\n" + "\n".join(phones(4))).encode())
    run_id = api.post(
        f"/api/journeys/{create_journey(linear_journey('one')).id}/runs", json={"audience_id": audience.id}
    ).json["run_id"]
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 200
    settle()
    assert fake_twilio.calls == [] and participations(run_id) == {}
    assert run_row(run_id).status == "stopped"


def test_lost_preparation_is_redone(app, api, fake_twilio):
    audience, _ = audiences.import_audience("A", ("phone\n" + "\n".join(phones(4))).encode())
    run_id = api.post(
        f"/api/journeys/{create_journey(linear_journey('one')).id}/runs", json={"audience_id": audience.id}
    ).json["run_id"]
    sweeper.sweep()
    get_queue("flows").empty()  # prepare_run is lost
    sweep_at(LEASE + 1)
    assert len(fake_twilio.calls) == 4 and run_row(run_id).status == "completed"


def test_replayed_step_reuses_its_message_and_its_outcome(app, api, fake_twilio):
    numbers = phones(3)
    run_id = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": p} for p in numbers])
    sweeper.sweep()
    drain(["flows"])
    get_queue("messages_conversational").empty()
    first = list(db.session.scalars(select(Message.id).order_by(Message.id)))
    messaging.deliver(first[:2])  # two were accepted by Twilio, the third is still queued
    # As if the participations' first step had never been stored (a crash before its commit).
    db.session.execute(update(Participation).values(node_id=None, engine_state={}, state="active"))
    db.session.commit()
    assert advancing.advance(_ids(run_id)) == 3
    settle()
    assert all(bodies_to(fake_twilio, phone) == ["one", "two"] for phone in numbers)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 6
    assert run_row(run_id).status == "completed"


def _ping_loop(duration: int = 1) -> dict:
    """start -> ping -> pause (delay) -> ping …: a loop that passes validation and sends each time round."""
    return {
        "format": "journey/v1",
        "name": "Ping loop",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "ping", "type": "message", "body": "ping"},
            {"id": "pause", "type": "delay", "duration": duration},
        ],
        "edges": [{"from": "start", "to": "ping"}, {"from": "ping", "to": "pause"}, {"from": "pause", "to": "ping"}],
    }


def test_a_contact_that_reaches_max_messages_ends_failed_with_that_reason(app, api, fake_twilio):
    app.config["MAX_MESSAGES_PER_CONTACT"] = 3
    [phone] = phones(1)
    run_id = start(api, create_journey(_ping_loop()).id, [{"phone": phone}])
    settle()
    sweeper.sweep()
    for _ in range(5):
        sweep_at(2)  # each sweep fires the due delay: one more message, until the cap
    row = participations(run_id)[phone]
    print(f"sent {len(bodies_to(fake_twilio, phone))} messages; state {row.state}: {row.error}")
    assert bodies_to(fake_twilio, phone) == ["ping"] * 3
    assert row.state == "failed" and "MAX_MESSAGES_PER_CONTACT (3" in row.error
    assert run_row(run_id).status == "completed"


def test_a_loop_without_a_pause_is_refused_naming_its_nodes(app, api):
    doc = linear_journey("one", "two")
    doc["edges"][-1] = {"from": "m2", "to": "m1"}
    response = api.post("/api/journeys", json=doc)
    assert response.status_code == 422
    assert any("nodes m1, m2 form a loop" in problem["message"] for problem in response.json["problems"]), response.json


def test_set_with_contact_scope_saves_the_contact_fields_for_later_runs(app, api, fake_twilio):
    doc = linear_journey("Tier <<tier>>")
    doc["nodes"].insert(1, {"id": "tag", "type": "set", "scope": "contact", "vars": {"tier": "gold", "NAME": "Ana B"}})
    doc["edges"] = [{"from": "start", "to": "tag"}, {"from": "tag", "to": "m1"}, {"from": "m1", "to": "done"}]
    [phone] = phones(1)
    start(api, create_journey(doc).id, [{"phone": phone, "name": "Ana", "city": "Lisbon"}])
    settle()
    contact = db.session.scalar(select(Contact).where(Contact.phone == phone))
    db.session.refresh(contact)
    assert contact.fields == {"phone": phone, "city": "Lisbon", "tier": "gold", "NAME": "Ana B"}
    later = start(api, create_journey(linear_journey("<<name>> is <<tier>> in <<city>>")).id, [{"phone": phone}])
    settle()
    assert bodies_to(fake_twilio, phone) == ["Tier gold", "Ana B is gold in Lisbon"]
    assert run_row(later).status == "completed"
    run_scoped = linear_journey("x")
    run_scoped["nodes"].insert(1, {"id": "tag", "type": "set", "scope": "everyone", "vars": {"a": "1"}})
    run_scoped["edges"] = [{"from": "start", "to": "tag"}, {"from": "tag", "to": "m1"}, {"from": "m1", "to": "done"}]
    refused = api.post("/api/journeys", json=run_scoped)
    assert refused.status_code == 422 and "scope 'everyone'" in json.dumps(refused.json)
