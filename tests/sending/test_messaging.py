"""The send pipeline end to end: real Redis and RQ workers, the twilio SDK against the fake Twilio."""

import threading
import time
from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import select, update

from app.campaigns import counts
from app.contacts import optout
from app.extensions import db
from app.models import Campaign, Contact, Journey, JourneyVersion, Message, MessageEvent, Participation, Run, utcnow
from app.queues import get_queue, get_redis
from app.sending import breaker, callbacks, log, messaging, recovery
from tests.conftest import drain


def make_campaign(phones, channel="sms", body="Hello {n}", **message_fields) -> tuple[int, list[int]]:
    """A campaign with one queued message per phone, inserted the way callers do; returns (id, message ids)."""
    campaign = Campaign(name="Test", body=body, channel=channel, total=len(phones))
    db.session.add(campaign)
    db.session.flush()
    messages = [
        Message(campaign_id=campaign.id, to_phone=phone, channel=channel, body=body.format(n=n), **message_fields)
        for n, phone in enumerate(phones)
    ]
    db.session.add_all(messages)
    db.session.commit()
    return campaign.id, [message.id for message in messages]


def phones(count: int, start: int = 0) -> list[str]:
    return [f"+1555{number:07d}" for number in range(start, start + count)]


def send(ids) -> None:
    """Enqueue and run every job, including retries scheduled with `enqueue_in`, until none is left."""
    messaging.enqueue_messages(ids, bulk=True)
    run_until_settled()


def run_until_settled(timeout: float = 15.0) -> None:
    """Drain the queue; enqueue scheduled retries as they fall due (the worker's scheduler does this)."""
    queue = get_queue("messages")
    registry = ScheduledJobRegistry(queue=queue)
    scheduler = RQScheduler([queue], connection=get_redis())
    scheduler.prepare_registries([queue.name])
    deadline = time.monotonic() + timeout
    while True:
        drain()
        if registry.count == 0 and queue.count == 0:
            return
        assert time.monotonic() < deadline, "scheduled retries never ran"
        time.sleep(0.02)
        scheduler.enqueue_scheduled_jobs()


def message(message_id: int) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def events_of(message_id: int) -> list[str]:
    return sorted(db.session.scalars(select(MessageEvent.status).where(MessageEvent.message_id == message_id)))


def test_sends_and_logs_every_message(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(3))
    assert counts.campaign_counts(campaign_id) == {
        "total": 3,
        "queued": 3,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "canceled": 0,
    }

    assert messaging.enqueue_messages(ids, bulk=True) == 1
    drain()

    calls = {call.to: call for call in fake_twilio.calls}
    assert sorted(calls) == phones(3)
    for message_id in ids:
        row = message(message_id)
        call = calls[row.to_phone]
        assert call.fields["From"] == "+15005550001"
        assert call.body == row.body
        assert call.fields["StatusCallback"] == "http://testserver.local/webhooks/twilio/status"
        assert (row.status, row.sid, row.attempts, row.dry_run) == ("sent", call.sid, 1, False)
        assert row.sent_at is not None and row.error_message is None
        assert events_of(message_id) == ["sent"]
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.status == "completed" and campaign.finished_at is not None
    assert counts.campaign_counts(campaign_id) == {
        "total": 3,
        "queued": 0,
        "sent": 3,
        "delivered": 0,
        "failed": 0,
        "canceled": 0,
    }


def test_whatsapp_and_messaging_service(app, fake_twilio):
    app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "1" * 32
    _, whatsapp_ids = make_campaign(phones(1), channel="whatsapp")
    _, sms_ids = make_campaign(phones(1, start=50))

    send(whatsapp_ids + sms_ids)

    calls = {call.to: call.fields for call in fake_twilio.calls}
    assert calls["whatsapp:+15550000000"]["From"] == "whatsapp:+15005550002"
    assert calls["+15550000050"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in calls["+15550000050"]


def test_status_callback_url_falls_back_to_server_name(app):
    app.config.update(PUBLIC_BASE_URL=None, SERVER_NAME="journeys.example.org", PREFERRED_URL_SCHEME="https")
    assert messaging.status_callback_url(app.config) == "https://journeys.example.org/webhooks/twilio/status"
    app.config["SERVER_NAME"] = None
    assert messaging.status_callback_url(app.config) is None


def test_enqueues_batches_in_one_go(app, fake_twilio):
    app.config["SEND_BATCH_SIZE"] = 3
    _, ids = make_campaign(phones(7))

    assert messaging.enqueue_messages(ids, bulk=True) == 3
    assert get_queue("messages").count == 3
    drain()
    assert len(fake_twilio.calls) == 7


def test_rate_limit_makes_batches_smaller(app):
    app.config.update(SEND_BATCH_SIZE=200, MESSAGE_RATE_LIMIT=2)
    assert messaging.batch_size(app.config) == 120
    app.config["MESSAGE_RATE_LIMIT"] = 0
    assert messaging.batch_size(app.config) == 200


def test_transient_errors_are_retried_until_accepted(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    fake_twilio.fail_next(2, status=429, code=20429)

    send([message_id])

    assert len(fake_twilio.calls) == 1
    assert len(fake_twilio.attempts) == 3
    row = message(message_id)
    assert (row.status, row.attempts, row.error_code, row.error_message) == ("sent", 3, None, None)
    assert row.sid == fake_twilio.calls[0].sid


def test_retry_waits_for_the_backoff(app, fake_twilio):
    app.config["RETRY_BACKOFF"] = [30, 60, 120]
    _, [message_id] = make_campaign(phones(1))
    fake_twilio.fail_next(1, status=429, code=20429)

    messaging.enqueue_messages([message_id], bulk=True)
    drain()

    row = message(message_id)
    assert (row.status, row.attempts) == ("queued", 1)
    assert "trying again in 30 s" in row.error_message
    assert timedelta(seconds=25) < row.next_attempt_at - utcnow() <= timedelta(seconds=30)
    assert ScheduledJobRegistry(queue=get_queue("messages")).count == 1


def test_server_error_pauses_then_the_probe_sends(app, fake_twilio):
    # A 5xx is an outage, not this message's fault: the breaker opens, no attempt is counted, the probe sends it.
    app.config["TWILIO_PROBE_BACKOFF"] = "0.1"
    _, [message_id] = make_campaign(phones(1))
    fake_twilio.fail_next(1, status=500, code=20500)

    send([message_id])

    assert len(fake_twilio.attempts) == 2
    assert (message(message_id).status, message(message_id).attempts) == ("sent", 1)
    assert breaker.state() is None


def test_network_error_then_success(app, fake_twilio):
    app.config["TWILIO_PROBE_BACKOFF"] = "0.1"
    _, [message_id] = make_campaign(phones(1))
    working_url = app.config["TWILIO_API_BASE_URL"]
    app.config["TWILIO_API_BASE_URL"] = "http://127.0.0.1:9"  # discard port: connection refused

    messaging.enqueue_messages([message_id], bulk=True)
    drain()
    row = message(message_id)
    assert (row.status, row.attempts) == ("queued", 0)  # Twilio unreachable: paused, no attempt counted
    assert "Could not connect to Twilio" in row.error_message
    assert breaker.state() is not None

    app.config["TWILIO_API_BASE_URL"] = working_url
    run_until_settled()
    assert (message(message_id).status, message(message_id).attempts) == ("sent", 1)
    assert breaker.state() is None
    assert len(fake_twilio.calls) == 1


def test_transient_error_is_final_after_the_last_try(app, fake_twilio):
    campaign_id, [message_id] = make_campaign(phones(1))
    fake_twilio.fail_next(10, status=429, code=20429)

    send([message_id])

    assert len(fake_twilio.attempts) == 4  # the first try and RETRY_BACKOFF's three retries
    row = message(message_id)
    assert (row.status, row.attempts, row.error_code) == ("failed", 4, 20429)
    assert "too many requests" in row.error_message and "Gave up after 4 attempts" in row.error_message
    assert events_of(message_id) == ["failed"]
    assert db.session.get(Campaign, campaign_id).status == "completed"
    assert counts.campaign_counts(campaign_id)["failed"] == 1


def test_permanent_error_is_not_retried(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(2))
    fake_twilio.fail_for(phones(1)[0], status=400, code=21211)

    send(ids)

    assert len(fake_twilio.attempts) == 2 and len(fake_twilio.calls) == 1
    bad, good = message(ids[0]), message(ids[1])
    assert (bad.status, bad.attempts, bad.error_code, bad.sid) == ("failed", 1, 21211, None)
    assert "not a valid phone number" in bad.error_message
    assert good.status == "sent"
    assert counts.campaign_counts(campaign_id) == {
        "total": 2,
        "queued": 0,
        "sent": 1,
        "delivered": 0,
        "failed": 1,
        "canceled": 0,
    }


def test_unsubscribed_recipient_is_opted_out(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    fake_twilio.fail_for(phones(1)[0], status=400, code=21610)

    send([message_id])

    assert len(fake_twilio.attempts) == 1
    assert (message(message_id).status, message(message_id).error_code) == ("failed", 21610)
    contact = db.session.scalar(select(Contact).where(Contact.phone == phones(1)[0]))
    assert contact.opted_out and contact.opted_out_at is not None


def test_opted_out_contact_is_never_sent(app, fake_twilio):
    optout.opt_out(phones(1)[0])
    campaign_id, ids = make_campaign(phones(3))

    send(ids)

    assert sorted(call.to for call in fake_twilio.calls) == phones(2, start=1)
    skipped = message(ids[0])
    assert (skipped.status, skipped.attempts, skipped.sid) == ("failed", 0, None)
    assert "opted out" in skipped.error_message
    assert events_of(ids[0]) == ["failed"]
    assert db.session.get(Campaign, campaign_id).status == "completed"

    optout.opt_in(phones(1)[0])
    _, [again] = make_campaign(phones(1))
    send([again])
    assert message(again).status == "sent"


def test_opt_out_keeps_one_contact_per_phone(app):
    first = optout.opt_out("whatsapp:+15550001234")
    assert optout.opt_out("+15550001234") == first
    assert optout.opt_in("+15550001234") == first
    contacts = db.session.scalars(select(Contact)).all()
    assert [(c.phone, c.opted_out, c.opted_out_at) for c in contacts] == [("+15550001234", False, None)]


def test_redelivered_job_sends_once(app, fake_twilio):
    _, ids = make_campaign(phones(5))

    messaging.enqueue_messages(ids, bulk=True)
    messaging.enqueue_messages(ids, bulk=True)
    assert get_queue("messages").count == 2
    drain()

    assert sorted(call.to for call in fake_twilio.calls) == phones(5)
    assert all(message(message_id).attempts == 1 for message_id in ids)


def test_dry_run_sends_nothing_and_logs_sent(app, fake_twilio):
    app.config["DRY_RUN"] = True
    campaign_id, ids = make_campaign(phones(3))

    send(ids)

    assert fake_twilio.attempts == []
    for message_id in ids:
        row = message(message_id)
        assert (row.status, row.dry_run, row.attempts) == ("sent", True, 1)
        assert row.sid.startswith("DRY")
    assert counts.campaign_counts(campaign_id)["sent"] == 3
    assert db.session.get(Campaign, campaign_id).status == "completed"


def test_canceled_campaign_is_not_sent(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(3))
    messaging.enqueue_messages(ids, bulk=True)

    assert log.cancel_campaign(campaign_id) == 3
    drain()

    assert fake_twilio.attempts == []
    assert {message(message_id).status for message_id in ids} == {"canceled"}
    assert db.session.get(Campaign, campaign_id).status == "canceled"
    assert counts.campaign_counts(campaign_id)["canceled"] == 3


def test_stopped_participation_is_not_sent(app, fake_twilio):
    participation_ids = make_participations(phones(2))
    messages = [
        Message(participation_id=pid, to_phone=phone, channel="sms", body="Hi")
        for pid, phone in zip(participation_ids, phones(2))
    ]
    db.session.add_all(messages)
    db.session.commit()
    ids = [row.id for row in messages]

    assert log.cancel_for_participations(participation_ids[:1]) == 1
    messaging.enqueue_messages(ids, bulk=True)
    outcomes = drain_outcomes(ids)

    assert [call.to for call in fake_twilio.calls] == phones(1, start=1)
    assert message(ids[0]).status == "canceled"
    assert outcomes == [messaging.Outcome(ids[1], participation_ids[1], ok=True, final=True)]


def make_participations(contact_phones) -> list[int]:
    journey = Journey(name="J", draft={})
    version = JourneyVersion(journey=journey, number=1, definition={})
    run = Run(journey=journey, version=version)
    db.session.add(run)
    db.session.flush()
    rows = []
    for phone in contact_phones:
        contact = Contact(phone=phone, fields={})
        db.session.add(contact)
        db.session.flush()
        rows.append(Participation(run_id=run.id, contact_id=contact.id))
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows]


def drain_outcomes(ids) -> list:
    """Run `deliver` directly, as the job does, to see its outcomes."""
    get_queue("messages").empty()
    return messaging.deliver(ids)


def test_outcomes_say_what_happened(app, fake_twilio):
    participation_ids = make_participations(phones(3))
    messages = [
        Message(participation_id=pid, to_phone=phone, channel="sms", body="Hi")
        for pid, phone in zip(participation_ids, phones(3))
    ]
    db.session.add_all(messages)
    db.session.commit()
    ids = [row.id for row in messages]
    optout.opt_out(phones(1)[0])
    fake_twilio.fail_for(phones(2)[1], status=400, code=21211)
    fake_twilio.fail_for(phones(3)[2], status=429, code=20429)

    outcomes = {outcome.message_id: outcome for outcome in messaging.deliver(ids)}

    assert (outcomes[ids[0]].ok, outcomes[ids[0]].final) == (False, True)
    assert (outcomes[ids[1]].ok, outcomes[ids[1]].final, outcomes[ids[1]].error_code) == (False, True, 21211)
    assert (outcomes[ids[2]].ok, outcomes[ids[2]].final, outcomes[ids[2]].error_code) == (False, False, 20429)
    assert outcomes[ids[2]].participation_id == participation_ids[2]
    assert message(ids[2]).status == "queued"  # waiting for its retry job
    assert messaging.deliver(ids[:2]) == []  # the others are done: a repeat does nothing


def test_crashed_job_is_recovered_by_the_sweep(app, fake_twilio):
    _, ids = make_campaign(phones(2))
    # Jobs claimed both and never recorded a result: one died an hour ago, one is still running.
    db.session.execute(update(Message).values(status="sending", attempts=1, updated_at=utcnow() - timedelta(hours=1)))
    db.session.execute(update(Message).where(Message.id == ids[1]).values(updated_at=utcnow()))
    db.session.commit()

    assert recovery.requeue_stale() == recovery.StaleRecovery(requeued=1)  # Twilio never had it
    drain()

    assert [call.to for call in fake_twilio.calls] == phones(1)
    assert (message(ids[0]).status, message(ids[0]).attempts) == ("sent", 2)
    assert message(ids[1]).status == "sending"
    assert recovery.requeue_stale() == recovery.StaleRecovery()


def test_lost_retry_is_recovered_by_the_sweep(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    overdue = utcnow() - timedelta(hours=1)
    db.session.execute(update(Message).values(attempts=1, next_attempt_at=overdue))
    db.session.commit()

    assert recovery.requeue_stale().requeued == 1
    assert recovery.requeue_stale().requeued == 0  # stamped: the next sweep leaves it to the job just enqueued
    drain()
    assert message(message_id).status == "sent"


def test_status_callback_before_the_sid_is_stored(app, fake_twilio):
    """Twilio's callback can beat the job's own UPDATE: it is kept and applied when the sid lands."""
    fake_twilio.set_latency(0.4)
    campaign_id, [message_id] = make_campaign(phones(1))
    answers = []

    def callback_while_the_job_waits():
        [call] = fake_twilio.wait_for_calls(1)
        with app.app_context():
            answers.append(callbacks.record_status(call.sid, "delivered"))

    thread = threading.Thread(target=callback_while_the_job_waits)
    thread.start()
    send([message_id])
    thread.join(5)

    assert answers == [False]  # the callback found no message with that sid yet
    row = message(message_id)
    assert (row.status, row.sid) == ("delivered", fake_twilio.calls[0].sid)
    assert events_of(message_id) == ["delivered", "sent"]
    assert counts.campaign_counts(campaign_id)["delivered"] == 1


@pytest.mark.parametrize("status", ["sent", "queued"])
def test_unknown_sid_changes_nothing(app, status):
    assert callbacks.record_status("SMunknown", status) is False
    assert callbacks.record_status("", "delivered") is False
