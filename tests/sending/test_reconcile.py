"""Crash recovery without duplicates: stuck sends are looked up at Twilio before anything is sent again.

A job killed between claiming its messages and recording Twilio's answers
leaves them `sending` with no sid. Here that job is played for real: the
rows are claimed as `deliver` claims them and the twilio SDK sends the ones
Twilio "got" to the fake Twilio, whose answers are then lost. The fake's
Messages list (`GET …/Messages.json`) is what the sweep reads back.
"""

from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from sqlalchemy import select, update
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.extensions import db
from app.models import Campaign, Message, Step, utcnow
from app.queues import get_queue
from app.runs import advancing, sweeper
from app.sending import messaging, recovery
from app.sending.channels import DryRunSender, OutboundMessage, SenderSettings, SentLookup, TwilioSender, get_sender
from app.worker import warn_about_settings
from tests.conftest import drain
from tests.fake_twilio import SMS_FROM, WHATSAPP_FROM
from tests.runs.test_runs_helpers import (
    create_journey,
    linear_journey,
    participations,
    sends_through_jobs,
    settle,
    start,
)
from tests.runs.test_runs_helpers import phones as valid_phones
from tests.sending.test_messaging import events_of, make_campaign, message, phones

STALE = timedelta(milliseconds=500)  # claims are made a second old: stale at once, well inside CLOCK_SKEW
SERVICE_SID = "MG" + "1" * 32


def die_while_sending(ids: list[int], accepted: list[int]) -> dict[int, str]:
    """What a send job killed mid-batch leaves: every row of `ids` claimed (`sending`, no sid), and Twilio
    holding the messages of `accepted`, sent through the SDK like the job did; returns their sids."""
    db.session.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(status="sending", attempts=Message.attempts + 1, updated_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    rows = [message(message_id) for message_id in accepted]
    with get_sender(SenderSettings.from_config(current_app.config)) as sender:
        results = sender.send_many(
            [
                OutboundMessage(
                    key=str(row.id), to=row.to_phone, channel=row.channel, body=row.body, content_sid=row.content_sid
                )
                for row in rows
            ]
        )
    assert all(result.ok for result in results), results
    return {int(result.key): result.sid for result in results}


def test_an_accepted_message_is_recorded_and_not_sent_again(app, fake_twilio):
    campaign_id, ids = make_campaign(phones(3))
    sids = die_while_sending(ids, accepted=ids[:2])

    result = recovery.requeue_stale(STALE)
    drain()

    assert result.requeued == 1 and result.unresolved == 0
    assert {outcome.message_id for outcome in result.accepted} == set(ids[:2])
    assert all(outcome.ok and outcome.final for outcome in result.accepted)
    assert sorted(call.to for call in fake_twilio.calls) == sorted(phones(3))  # one each: nothing twice
    for message_id in ids[:2]:
        row = message(message_id)
        assert (row.status, row.sid, row.attempts, row.error_message) == ("sent", sids[message_id], 1, None)
        assert row.sent_at is not None and events_of(message_id) == ["sent"]
    assert (message(ids[2]).status, message(ids[2]).attempts) == ("sent", 2)
    assert db.session.get(Campaign, campaign_id).status == "completed"
    assert recovery.requeue_stale(STALE) == recovery.StaleRecovery()


def test_a_message_twilio_never_got_is_sent_once(app, fake_twilio):
    _, ids = make_campaign(phones(2))
    die_while_sending(ids, accepted=[])

    assert recovery.requeue_stale(STALE) == recovery.StaleRecovery(requeued=2)
    assert recovery.requeue_stale(STALE) == recovery.StaleRecovery()  # queued now: not stuck any more
    drain()

    assert sorted(call.to for call in fake_twilio.calls) == phones(2)
    assert {(message(i).status, message(i).attempts) for i in ids} == {("sent", 2)}


@pytest.mark.parametrize("outage", ["server error", "connection refused"])
def test_nothing_is_resent_while_twilio_cannot_be_asked(app, fake_twilio, outage):
    _, ids = make_campaign(phones(2))
    sids = die_while_sending(ids, accepted=ids[:1])
    working_url = app.config["TWILIO_API_BASE_URL"]
    if outage == "server error":
        fake_twilio.fail_next_list(2, status=503, code=20500)  # one list request per recipient
    else:
        app.config["TWILIO_API_BASE_URL"] = "http://127.0.0.1:9"  # discard port: connection refused

    assert recovery.requeue_stale(STALE) == recovery.StaleRecovery(unresolved=2)
    drain()
    assert len(fake_twilio.calls) == 1
    assert {message(i).status for i in ids} == {"sending"}

    app.config["TWILIO_API_BASE_URL"] = working_url  # Twilio answers again: the next sweep settles both
    result = recovery.requeue_stale(STALE)
    drain()
    assert (result.requeued, len(result.accepted)) == (1, 1)
    assert message(ids[0]).sid == sids[ids[0]]
    assert sorted(call.to for call in fake_twilio.calls) == phones(2)


def test_whatsapp_and_messaging_service_messages_are_found(app, fake_twilio):
    app.config["TWILIO_MESSAGING_SERVICE_SID"] = SERVICE_SID
    _, whatsapp = make_campaign(phones(2), channel="whatsapp")
    _, sms = make_campaign(phones(1, start=10))
    _, template = make_campaign(phones(1, start=20), channel="whatsapp", body="", content_sid="HX" + "2" * 32)
    stuck = whatsapp + sms + template
    sids = die_while_sending(stuck, accepted=[whatsapp[0], *sms, *template])

    result = recovery.requeue_stale(STALE)
    drain()

    assert result.requeued == 1
    assert {message(i).sid for i in [whatsapp[0], *sms, *template]} == set(sids.values())
    assert sorted(call.to for call in fake_twilio.calls) == sorted(
        [f"whatsapp:{phone}" for phone in phones(2) + phones(1, start=20)] + phones(1, start=10)
    )
    lookups = {request["To"]: request for request in fake_twilio.list_requests}
    assert lookups["whatsapp:+15550000000"]["From"] == WHATSAPP_FROM
    assert "From" not in lookups["+15550000010"]  # a messaging service picks the number: matched on its sid


def test_a_sid_already_recorded_is_not_taken_for_another_message(app, fake_twilio):
    # The same text to the same number twice: the first went out normally, the second's job died before Twilio.
    _, [first, second] = make_campaign([phones(1)[0]] * 2, body="Same text")
    messaging.enqueue_messages([first])
    drain()
    die_while_sending([second], accepted=[])

    assert recovery.requeue_stale(STALE).requeued == 1
    drain()

    assert len(fake_twilio.calls) == 2
    assert message(second).sid == fake_twilio.calls[1].sid != message(first).sid


def test_two_stuck_copies_get_one_twilio_message_each(app, fake_twilio):
    _, ids = make_campaign([phones(1)[0]] * 3, body="Same text")
    sids = die_while_sending(ids, accepted=ids[:2])

    result = recovery.requeue_stale(STALE)
    drain()

    assert (len(result.accepted), result.requeued) == (2, 1)
    assert {message(i).sid for i in ids[:2]} == set(sids.values())
    assert len(fake_twilio.calls) == 3 and len({message(i).sid for i in ids}) == 3


def test_twilio_status_beyond_sent_is_kept(app, fake_twilio):
    _, ids = make_campaign(phones(2))
    sids = die_while_sending(ids, accepted=ids)
    fake_twilio.set_status(sids[ids[0]], "delivered")
    fake_twilio.set_status(sids[ids[1]], "undelivered", error_code=30003)

    recovery.requeue_stale(STALE)

    assert (message(ids[0]).status, events_of(ids[0])) == ("delivered", ["delivered", "sent"])
    assert (message(ids[1]).status, message(ids[1]).error_code) == ("undelivered", 30003)


def test_dry_run_finds_nothing_so_stuck_rows_are_sent_dry(app, fake_twilio):
    app.config["DRY_RUN"] = True
    _, ids = make_campaign(phones(2))
    db.session.execute(update(Message).values(status="sending", attempts=1, updated_at=utcnow() - timedelta(hours=1)))
    db.session.commit()

    assert recovery.requeue_stale().requeued == 2
    drain()

    assert fake_twilio.attempts == [] and fake_twilio.list_requests == []
    assert {(message(i).status, message(i).dry_run) for i in ids} == {("sent", True)}


def test_the_journey_contact_moves_on_exactly_once(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    app.config["MESSAGE_STALE_SECONDS"] = STALE.total_seconds()  # what the sweeper uses
    journey = create_journey(linear_journey("first <<name>>", "second <<name>>"))
    numbers = valid_phones(2)
    run_id = start(api, journey.id, [{"phone": phone, "name": f"c{n}"} for n, phone in enumerate(numbers)])
    drain(["flows"])  # both contacts are `sending` their first message
    get_queue("messages_conversational").empty()  # its send job died with the worker
    first_messages = list(db.session.scalars(select(Message.id).order_by(Message.id)))
    die_while_sending(first_messages, accepted=first_messages[:1])

    counts = sweeper.sweep()
    settle()

    assert counts["reconciled_messages"] == 1
    for n, phone in enumerate(numbers):
        assert [call.body for call in fake_twilio.calls if call.to == phone] == [f"first c{n}", f"second c{n}"]
    moved = participations(run_id)
    assert {row.state for row in moved.values()} == {"completed"}
    for row in moved.values():
        outcomes = db.session.scalars(
            select(Step.node_id).where(Step.participation_id == row.id, Step.kind == "outcome")
        ).all()
        assert sorted(outcomes) == ["m1", "m2"]
    # An outcome fed again (a repeated sweep or job) changes nothing.
    again = messaging.Outcome(first_messages[0], moved[numbers[0]].id, ok=True, final=True)
    assert advancing.on_message_outcomes([again]) == 0


# -- the pieces: the sender's lookup and the fake's Messages list ------------------------------------------


def settings_for(fake, **overrides) -> SenderSettings:
    return SenderSettings(
        account_sid=fake.account_sid,
        auth_token=fake.auth_token,
        sms_from=SMS_FROM,
        whatsapp_from=WHATSAPP_FROM,
        api_base_url=fake.base_url,
        **overrides,
    )


def lookup(key: str, to: str, body: str | None, channel: str = "sms", **fields) -> SentLookup:
    now = datetime.now(UTC)
    window = {"since": now - timedelta(minutes=1), "until": now + timedelta(minutes=1), **fields}
    return SentLookup(key=key, to=to, channel=channel, body=body, **window)


def test_find_sent_matches_recipient_sender_body_and_time(fake_twilio):
    with TwilioSender(settings_for(fake_twilio)) as sender:
        sent = sender.send_many(
            [
                OutboundMessage(key="a", to="+15551230001", channel="sms", body="hello"),
                OutboundMessage(key="b", to="+15551230001", channel="sms", body="hello"),
                OutboundMessage(key="c", to="+15551230001", channel="whatsapp", body="hello"),
                OutboundMessage(key="d", to="+15551230001", channel="sms", body="other"),
            ]
        )
        answers = sender.find_sent(
            [
                lookup("same", "+15551230001", "hello"),
                lookup("whatsapp", "+15551230001", "hello", channel="whatsapp"),
                lookup("stranger", "+15551230002", "hello"),
                lookup("before them", "+15551230001", "hello", until=datetime.now(UTC) - timedelta(minutes=1)),
                lookup("unknown channel", "+15551230001", "hello", channel="fax"),
            ]
        )
    sids = {result.key: result.sid for result in sent}
    found = {answer.key: [message.sid for message in answer.found] for answer in answers}
    assert found == {
        "same": [sids["a"], sids["b"]],
        "whatsapp": [sids["c"]],
        "stranger": [],
        "before them": [],
        "unknown channel": [],
    }
    assert [answer.ok for answer in answers] == [True, True, True, True, False]
    assert len(fake_twilio.list_requests) == 3  # one per recipient and sender, shared by its lookups


def test_find_sent_reports_an_outage_instead_of_raising(fake_twilio):
    fake_twilio.fail_next_list(1, status=500, code=20500)
    with TwilioSender(settings_for(fake_twilio)) as sender:
        [answer] = sender.find_sent([lookup("x", "+15551230001", "hi")])
    assert (answer.ok, answer.found) == (False, ())
    assert "HTTP 500" in answer.error_message
    assert DryRunSender(settings_for(fake_twilio)).find_sent([lookup("x", "+1", "hi")])[0].ok


def sdk_client(fake, auth_token: str | None = None) -> Client:
    """The plain twilio SDK (synchronous client) pointed at the fake."""

    class Rebased(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            return super().request(method, url.replace("https://api.twilio.com", fake.base_url), *args, **kwargs)

    return Client(fake.account_sid, auth_token or fake.auth_token, http_client=Rebased())


def test_fake_lists_accepted_messages_like_twilio(fake_twilio):
    fake_twilio.fail_for("+15551239999", status=400, code=21211)
    with TwilioSender(settings_for(fake_twilio)) as sender:
        sender.send_many(
            [OutboundMessage(key=str(n), to="+15551230001", channel="sms", body=f"m{n}") for n in range(7)]
        )
        sender.send_many(
            [
                OutboundMessage(key="w", to="+15551230002", channel="whatsapp", body="w"),
                OutboundMessage(key="x", to="+15551239999", channel="sms", body="refused"),
            ]
        )
    client = sdk_client(fake_twilio)

    listed = client.messages.list(to="+15551230001", page_size=3)  # three pages, linked by next_page_uri
    assert [record.body for record in listed] == [f"m{n}" for n in reversed(range(7))]  # newest first
    assert all(record.date_created.tzinfo and record.date_sent == record.date_created for record in listed)
    assert {(record.status, record.from_, record.direction) for record in listed} == {
        ("sent", SMS_FROM, "outbound-api")
    }
    assert [record.to for record in client.messages.list(from_=WHATSAPP_FROM)] == ["whatsapp:+15551230002"]
    assert len(client.messages.list()) == 8  # the refused message is not there
    hour_ago, in_an_hour = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    assert len(client.messages.list(date_sent_after=hour_ago)) == 8
    assert client.messages.list(date_sent_after=in_an_hour) == []
    assert client.messages.list(date_sent_before=hour_ago) == []
    assert len(client.messages.list(date_sent=datetime.now(UTC).date())) == 8
    page = client.messages.page(page_size=5)
    assert len(list(page)) == 5 and "PageToken=PA" in page.next_page_url
    assert fake_twilio.list_requests[0] == {"To": "+15551230001", "PageSize": "3"}


def test_fake_list_needs_the_account_credentials(fake_twilio):
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        sdk_client(fake_twilio, auth_token="wrong-token").messages.list()


def test_worker_warns_when_status_callbacks_cannot_be_built(app, caplog, monkeypatch):
    monkeypatch.setattr(app.logger, "disabled", False)  # the migrations' logging setup turns it off in tests
    app.config.update(PUBLIC_BASE_URL=None, SERVER_NAME=None, MESSAGE_STALE_SECONDS=None)
    warn_about_settings(app)
    assert [record.getMessage() for record in caplog.records if "PUBLIC_BASE_URL" in record.getMessage()]
    caplog.clear()
    app.config["PUBLIC_BASE_URL"] = "https://journeys.example.org"
    warn_about_settings(app)
    assert caplog.records == []
