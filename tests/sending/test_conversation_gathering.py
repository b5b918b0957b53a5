"""A conversational send job also sends the other conversational messages waiting: a burst of replies leaves as
one concurrent batch, never a campaign's message or one held for later."""

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Message, utcnow
from app.queues import get_queue
from app.sending import messaging
from tests.conftest import drain
from tests.sending.test_messaging import make_campaign, phones


def conversational(phone: str, **fields) -> int:
    message = Message(to_phone=phone, channel="sms", body=f"Thanks {phone}", **fields)
    db.session.add(message)
    db.session.commit()
    return message.id


def statuses() -> dict[str, str]:
    db.session.expire_all()
    return dict(db.session.execute(select(Message.to_phone, Message.status)).all())


def test_one_conversational_job_sends_every_waiting_conversation_but_nothing_else(app, fake_twilio):
    first, *others = [conversational(phone) for phone in phones(5)]
    make_campaign(phones(2, start=100))
    later = utcnow() + timedelta(hours=1)
    conversational("+15550000200", not_before=later)  # held for its send window
    conversational("+15550000201", next_attempt_at=later)  # a retry waiting for its backoff

    assert messaging.enqueue_messages([first]) == 1
    job = get_queue("messages_conversational").jobs[0]
    assert job.kwargs == {"gather": True}
    drain(["messages_conversational"])

    assert sorted(call.to for call in fake_twilio.calls) == phones(5)
    assert [status for phone, status in statuses().items() if phone in phones(5)] == ["sent"] * 5
    assert {statuses()[phone] for phone in ("+15550000200", "+15550000201", *phones(2, start=100))} == {"queued"}

    messaging.enqueue_messages(others)  # their own jobs, run later, find them sent: nothing goes twice
    drain(["messages_conversational"])
    assert len(fake_twilio.calls) == 5


def test_bulk_jobs_send_only_their_own_messages(app, fake_twilio):
    conversational("+15550000300")
    _, campaign_ids = make_campaign(phones(3))

    messaging.enqueue_messages(campaign_ids, bulk=True)
    assert get_queue("messages").jobs[0].kwargs == {}
    drain(["messages"])

    assert sorted(call.to for call in fake_twilio.calls) == phones(3)
    assert statuses()["+15550000300"] == "queued"


def test_gathering_stops_at_one_batch(app, fake_twilio):
    app.config["SEND_BATCH_SIZE"] = 3
    ids = [conversational(phone) for phone in phones(5)]

    assert messaging.with_waiting_conversations(ids[-1:]) == [ids[-1], *ids[:2]]
    assert messaging.with_waiting_conversations(ids[:3]) == ids[:3]
