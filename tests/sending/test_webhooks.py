"""Twilio webhooks: signatures, inbound messages (once per MessageSid), STOP/START, status callbacks."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.campaigns.counts import campaign_counts
from app.extensions import db
from app.models import Contact, InboundMessage, Message, MessageEvent, StatusCallback, Step, utcnow
from app.models.vocabulary import INBOUND_OUTCOMES
from app.runs import inbound as inbound_routing
from app.runs import runner, sweeper
from app.sending import callbacks
from tests.conftest import TEST_AUTH_TOKEN
from tests.fake_twilio import sign, status_callback_params
from tests.runs.test_runs_helpers import bodies_to, create_journey, example, participations, settle, start
from tests.runs.test_runs_helpers import phones as runs_phones
from tests.sending.test_messaging import events_of, make_campaign, message, phones, send

PUBLIC = "http://testserver.local"
INBOUND = "/webhooks/twilio/inbound"
STATUS = "/webhooks/twilio/status"
CONTACT = "+15557770001"


def post_signed(app, path, params, url=None, token=TEST_AUTH_TOKEN):
    """POST like Twilio: form fields and the signature of (public URL, fields)."""
    signature = sign(url or PUBLIC + path, params, token)
    return app.test_client().post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound(sid="SM" + "1" * 32, body="Hello", sender=CONTACT, **fields) -> dict:
    return {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15005550001",
        "Body": body,
        "NumMedia": "0",
        **fields,
    }


def contact(phone=CONTACT) -> Contact | None:
    db.session.expire_all()
    return db.session.scalar(select(Contact).where(Contact.phone == phone))


def inbound_rows() -> list[InboundMessage]:
    db.session.expire_all()
    return db.session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_bad_or_missing_signature_is_refused(app, path):
    params = inbound(body="STOP") if path == INBOUND else status_callback_params("SMx", "delivered")
    client = app.test_client()

    assert client.post(path, data=params).status_code == 403
    bad = sign(PUBLIC + path, params, "not-the-auth-token")
    assert client.post(path, data=params, headers={"X-Twilio-Signature": bad}).status_code == 403
    tampered = sign(PUBLIC + path, {**params, "Body": "other"})
    assert client.post(path, data=params, headers={"X-Twilio-Signature": tampered}).status_code == 403

    assert inbound_rows() == [] and contact() is None


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_a_signature_made_with_the_default_port_is_accepted_and_odd_headers_are_refused(app, path):
    """Twilio may sign the URL with its port (`:80`, `:443`) or without: both are Twilio's."""
    params = inbound() if path == INBOUND else status_callback_params("SMport", "delivered")
    with_port = "http://testserver.local:80" + path
    assert post_signed(app, path, params, url=with_port).status_code == 200
    odd = {"X-Twilio-Signature": "é" * 28}  # not base64, not ASCII: refused, not an error
    assert app.test_client().post(path, data=params, headers=odd).status_code == 403


def test_no_auth_token_refuses_every_webhook(app):
    app.config["TWILIO_AUTH_TOKEN"] = None
    assert post_signed(app, INBOUND, inbound(body="STOP")).status_code == 403
    assert inbound_rows() == []


def test_signature_uses_the_request_url_without_public_base_url(app):
    app.config["PUBLIC_BASE_URL"] = None
    params = inbound()
    assert post_signed(app, INBOUND, params).status_code == 403  # signed for another host
    assert post_signed(app, INBOUND, params, url="http://localhost" + INBOUND).status_code == 200


def test_inbound_message_is_stored_and_answered_with_empty_twiml(app):
    answer = post_signed(
        app,
        INBOUND,
        inbound(
            sender="whatsapp:" + CONTACT,
            body="Yes please",
            ButtonPayload="yes",
            ButtonText="Yes please",
            To="whatsapp:+15005550002",
        ),
    )

    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    assert answer.text.endswith("<Response/>")
    [row] = inbound_rows()
    assert (row.sid, row.from_phone, row.to_address, row.channel, row.body, row.payload) == (
        "SM" + "1" * 32,
        CONTACT,
        "whatsapp:+15005550002",
        "whatsapp",
        "Yes please",
        "yes",
    )
    assert row.outcome not in ("opted_out", "opted_in")  # a reply: the journey runner routes it
    assert row.contact_id is None and contact() is None  # a reply alone makes no contact


def test_inbound_is_linked_to_a_known_contact(app):
    known = Contact(phone=CONTACT, fields={})
    db.session.add(known)
    db.session.commit()
    post_signed(app, INBOUND, inbound())
    assert inbound_rows()[0].contact_id == known.id


def test_repeated_message_sid_is_processed_once(app):
    assert post_signed(app, INBOUND, inbound(body="Hello")).status_code == 200
    # Twilio retried, and even if the body differed, it is the same message: not processed again.
    assert post_signed(app, INBOUND, inbound(body="STOP")).status_code == 200
    assert post_signed(app, INBOUND, inbound(body="STOP")).status_code == 200

    assert [row.body for row in inbound_rows()] == ["Hello"]
    assert contact() is None


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", "  Stop!  ", "StopAll", "STOP ALL", "unsubscribe.", "Cancel", "END", "quit", "Parar", "SAIR"],
)
def test_stop_keywords_opt_the_contact_out(app, body):
    post_signed(app, INBOUND, inbound(body=body))

    assert contact().opted_out and contact().opted_out_at is not None
    [row] = inbound_rows()
    assert (row.outcome, row.contact_id) == ("opted_out", contact().id)


@pytest.mark.parametrize("body", ["please stop", "stop it", "STOPPED", "don't stop", "", "START NOW"])
def test_other_messages_change_no_opt_out(app, body):
    post_signed(app, INBOUND, inbound(body=body))
    assert contact() is None
    assert inbound_rows()[0].outcome not in ("opted_out", "opted_in")


def test_stop_then_start(app, fake_twilio):
    post_signed(app, INBOUND, inbound(sid="SM" + "a" * 32, body="STOP"))
    _, [blocked] = make_campaign([CONTACT])
    send([blocked])

    assert fake_twilio.attempts == []
    assert message(blocked).status == "failed" and "opted out" in message(blocked).error_message

    post_signed(app, INBOUND, inbound(sid="SM" + "b" * 32, body="Start"))
    assert not contact().opted_out and contact().opted_out_at is None
    assert inbound_rows()[1].outcome == "opted_in"
    _, [allowed] = make_campaign([CONTACT])
    send([allowed])
    assert [call.to for call in fake_twilio.calls] == [CONTACT]
    assert message(allowed).status == "sent"


def test_whatsapp_stop_opts_out_the_number(app, fake_twilio):
    post_signed(app, INBOUND, inbound(body="STOP", sender="whatsapp:" + CONTACT))
    _, [blocked] = make_campaign([CONTACT], channel="whatsapp")
    send([blocked])
    assert fake_twilio.attempts == [] and message(blocked).status == "failed"


def callback(app, sid, status, error_code=None, apply=True):
    """Post a signed status callback; then apply what is stored, as the workers' sweeper does (unless `apply` is off)."""
    answer = post_signed(app, STATUS, status_callback_params(sid, status, error_code))
    assert answer.status_code == 200, answer.text
    if apply:
        callbacks.apply_pending()


def test_status_callbacks_move_statuses_and_counts(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(5))
    send(ids)
    sids = [message(message_id).sid for message_id in ids]
    counts = campaign_counts(campaign_id)
    assert (counts["sent"], counts["delivered"], counts["failed"], counts["queued"]) == (5, 0, 0, 0)

    callback(app, sids[0], "sent")
    callback(app, sids[0], "delivered")
    callback(app, sids[0], "delivered")  # a repeat
    callback(app, sids[1], "delivered")
    callback(app, sids[1], "sent")  # late and out of order: stays delivered
    callback(app, sids[1], "read")
    callback(app, sids[2], "failed", 30003)
    callback(app, sids[3], "undelivered", 30005)
    callback(app, sids[4], "queued")  # Twilio's own queue: still "sent" for us

    assert [message(message_id).status for message_id in ids] == ["delivered", "read", "failed", "undelivered", "sent"]
    failed = message(ids[2])
    assert failed.error_code == 30003 and "unreachable" in failed.error_message
    assert message(ids[3]).error_code == 30005
    assert campaign_counts(campaign_id) == {
        "total": 5,
        "queued": 0,
        "sent": 5,
        "delivered": 2,
        "failed": 2,
        "canceled": 0,
    }
    events = db.session.scalars(select(MessageEvent.status).where(MessageEvent.message_id == ids[1])).all()
    assert sorted(events) == ["delivered", "read", "sent"]


def test_a_final_status_is_not_replaced(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    send([message_id])
    sid = message(message_id).sid

    callback(app, sid, "delivered")
    callback(app, sid, "failed", 30008)
    callback(app, sid, "undelivered", 30008)

    row = message(message_id)
    assert (row.status, row.error_code, row.error_message) == ("delivered", None, None)


def test_callback_for_an_unknown_message_is_acknowledged(app):
    callback(app, "SM" + "f" * 32, "delivered")
    callback(app, "", "delivered")


# -- stored before the answer, applied behind it ------------------------------------------------------------------


def stored_callbacks() -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(row.sid, row.status) for row in db.session.scalars(select(StatusCallback).order_by(StatusCallback.id))]


def test_status_callback_is_stored_and_applied_once_by_the_sweeper(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    send([message_id])
    sid = message(message_id).sid

    for status in ("sent", "delivered", "delivered"):  # Twilio repeats itself
        callback(app, sid, status, apply=False)
    assert message(message_id).status == "sent"  # answered, not applied yet
    assert stored_callbacks() == [(sid, "sent"), (sid, "delivered")]

    counts = sweeper.sweep()
    assert counts["status_callbacks"] == 2 and stored_callbacks() == []
    assert message(message_id).status == "delivered" and events_of(message_id) == ["delivered", "sent"]
    assert sweeper.sweep()["status_callbacks"] == 0


def test_the_writer_stores_concurrent_callbacks_in_shared_batches_and_ignores_repeats(app):
    """Requests hand rows to one writer; whole batches go in one INSERT (a batch with no error code at all too)."""
    from concurrent.futures import ThreadPoolExecutor

    writer = callbacks.CallbackWriter(db.engine, wait_seconds=3.0)
    rows = [callbacks.callback_row(f"SMw{n:03d}", "delivered") for n in range(150)]
    rows += [callbacks.callback_row(f"SMw{n:03d}", "undelivered", "30005") for n in range(0, 150, 3)]
    rows += [callbacks.callback_row(f"SMw{n:03d}", "delivered") for n in range(0, 150, 5)]  # Twilio repeats itself
    assert writer._write(rows[:2] + rows[:2])  # a repeat inside one batch
    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(writer.store, rows))
    writer.close()
    assert not writer.thread.is_alive() and writer.connection is None

    stored = {(sid, status) for sid, status in stored_callbacks()}
    assert len(stored) == len(stored_callbacks()) == 200
    assert stored == {(row["sid"], row["status"]) for row in rows}
    codes = db.session.execute(select(StatusCallback.status, StatusCallback.error_code)).all()
    assert {code for status, code in codes if status == "undelivered"} == {30005}
    assert {code for status, code in codes if status == "delivered"} == {None}


def test_a_locked_table_is_answered_in_time_stored_once_free_and_the_writer_sets_nothing_for_the_session(app):
    """No session setting on PostgreSQL: through a PgBouncer in transaction mode it would reach other clients."""
    import sqlite3
    import time

    writer = callbacks.CallbackWriter(db.engine, wait_seconds=0.5)
    row = callbacks.callback_row("SMlocked", "delivered")
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:
        holder = db.engine.raw_connection()
        holder.cursor().execute("LOCK TABLE status_callback IN ACCESS EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    try:
        assert writer.store(row) is False  # answered 503: Twilio tries again
        assert time.monotonic() - started < 2
    finally:
        holder.rollback()
        holder.close()
    assert writer.store(row) is True and stored_callbacks() == [("SMlocked", "delivered")]  # once
    if postgres:
        shown = [writer.cursor.execute(f"SHOW {name}").fetchone()[0] for name in ("lock_timeout", "statement_timeout")]
        assert shown == ["0", "0"]
    writer.close()


def test_callbacks_are_applied_between_sweeps_once_they_stop_arriving_and_an_idle_look_only_reads(app, fake_twilio):
    from sqlalchemy import event

    _, [first, second] = make_campaign(phones(2))
    send([first, second])
    watch = callbacks.ArrivalWatch()
    callback(app, "SMnot-ours", "delivered", apply=False)  # parked: its sid is not in the log
    callback(app, message(first).sid, "delivered", apply=False)
    assert watch.apply_arrived() == 0  # arriving: left to the sweep while more may come
    assert watch.apply_arrived() == 1 and message(first).status == "delivered"  # then quiet: applied

    statements = []
    record = lambda conn, cursor, statement, *rest: statements.append(statement.split()[0].upper())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert watch.apply_arrived() == 0  # nothing new, the parked row included
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements == ["SELECT"]

    callback(app, message(second).sid, "delivered", apply=False)
    assert [watch.apply_arrived(), watch.apply_arrived()] == [0, 1] and message(second).status == "delivered"
    assert stored_callbacks() == [("SMnot-ours", "delivered")]


def test_callbacks_are_applied_in_bulk_whatever_their_order(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(60))
    send(ids)
    sids = [message(message_id).sid for message_id in ids]
    posted = [(sid, "sent", None) for sid in sids] + [(sid, "delivered", None) for sid in sids[:40]]
    posted += [(sid, "read", None) for sid in sids[:20]] + [(sid, "undelivered", 30005) for sid in sids[40:]]
    random.Random(3).shuffle(posted)
    for sid, status, code in posted:
        callback(app, sid, status, code, apply=False)

    assert callbacks.apply_pending(batch=17) == len(posted)
    assert callbacks.apply_pending() == 0
    statuses = [message(message_id).status for message_id in ids]
    assert statuses == ["read"] * 20 + ["delivered"] * 20 + ["undelivered"] * 20
    assert message(ids[50]).error_code == 30005
    # Each message has its final status on record once (a `delivered` applied after `read` changes nothing).
    assert all({"sent", status} <= set(events_of(message_id)) for message_id, status in zip(ids, statuses))
    assert campaign_counts(campaign_id)["delivered"] == 40 and campaign_counts(campaign_id)["failed"] == 20


def test_a_callback_before_its_sid_is_parked_in_the_database(app, fake_twilio):
    _, [message_id] = make_campaign(phones(1))
    callback(app, "SMnotyet", "delivered")  # the send job has not stored the sid yet
    assert stored_callbacks() == [("SMnotyet", "delivered")]

    db.session.execute(update(Message).where(Message.id == message_id).values(sid="SMnotyet", status="sent"))
    db.session.commit()
    assert callbacks.apply_pending() == 1
    assert message(message_id).status == "delivered" and stored_callbacks() == []


def test_a_callback_parked_too_long_is_dropped(app):
    callback(app, "SMforeign", "delivered")
    db.session.execute(update(StatusCallback).values(received_at=utcnow() - callbacks.PARKED_FOR - timedelta(1)))
    db.session.commit()
    callbacks.apply_pending()
    assert stored_callbacks() == []


def test_inbound_media_is_stored(app):
    media = {
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME2",
        "MediaContentType1": "application/pdf",
    }
    post_signed(app, INBOUND, inbound(sid="SM" + "m" * 32, body="", **media))
    post_signed(app, INBOUND, inbound(sid="SM" + "n" * 32, body="no media"))

    with_media, without = inbound_rows()
    assert with_media.media_items == [
        {"url": media["MediaUrl0"], "content_type": "image/jpeg"},
        {"url": media["MediaUrl1"], "content_type": "application/pdf"},
    ]
    assert without.media is None and without.media_items == []


def test_inbound_outcomes_come_from_the_vocabulary(app):
    known = Contact(phone=phones(1, start=9)[0], fields={})
    db.session.add(known)
    db.session.commit()
    post_signed(app, INBOUND, inbound(sid="SM1", body="hi"))
    post_signed(app, INBOUND, inbound(sid="SM2", body="hi", sender=known.phone))
    post_signed(app, INBOUND, inbound(sid="SM3", body="stop", sender=known.phone))
    post_signed(app, INBOUND, inbound(sid="SM4", body="start", sender=known.phone))

    outcomes = [row.outcome for row in inbound_rows()]
    assert outcomes == ["unknown_contact", "not_waiting", "opted_out", "opted_in"]
    assert set(outcomes) <= set(INBOUND_OUTCOMES)


def waiting_contact(api) -> tuple[int, str]:
    """A contact waiting for a yes/no reply in the `welcome` example journey; returns (run id, phone)."""
    phone = runs_phones(1)[0]
    run_id = start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    settle()
    assert participations(run_id)[phone].state == "waiting"
    return run_id, phone


@pytest.mark.parametrize("where", ["before the step", "after the step"])
def test_a_reply_whose_routing_failed_is_routed_later_exactly_once(app, api, fake_twilio, monkeypatch, where):
    run_id, phone = waiting_contact(api)
    target = (inbound_routing, "_waiting_participations") if where == "before the step" else (runner, "_carry_out")
    original = getattr(*target)

    def fail_once(*args):
        monkeypatch.setattr(*target, original)
        if where == "after the step":
            original(*args)  # stored and carried out, then a failure before the outcome is written
        raise RuntimeError("injected routing failure")

    monkeypatch.setattr(*target, fail_once)
    assert post_signed(app, INBOUND, inbound(sid="SM" + "r" * 32, body="yes", sender=phone)).status_code == 200
    [row] = inbound_rows()
    assert row.outcome == "received"  # stored, answered; its handling failed

    assert inbound_routing.handle_stale_received() == 0  # not stale yet: its handling may still be under way
    later = utcnow() + inbound_routing.STALE_AFTER + timedelta(seconds=1)
    assert inbound_routing.handle_stale_received(later) == 1
    assert inbound_routing.handle_stale_received(later) == 0
    settle()

    [row] = inbound_rows()
    sent = bodies_to(fake_twilio, phone)
    print(f"\n{where}: outcome {row.outcome}; messages sent {len(sent)} (expected 2): {sent}")
    assert row.outcome == "matched"
    assert sent[1:] == ["Great, thanks friend!"]  # the reply's message, once
    assert participations(run_id)[phone].state == "completed"
    replies = db.session.scalars(select(Step).where(Step.kind == "reply")).all()
    assert len(replies) == 1
