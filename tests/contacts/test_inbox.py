"""The inbox: every inbound message with its outcome, contact and run; filters, search, pages, live rows; the API."""

import re
from types import SimpleNamespace

from flask import render_template
from sqlalchemy import select

from app.contacts import inbox, profile
from app.extensions import db
from app.models import Contact, InboundMessage, Participation, utcnow
from tests.contacts.test_contacts import ASK
from tests.runs.test_runs_helpers import create_journey, reply, settle, start

ANA, BIA, STRANGER = "+15005550301", "+15005550302", "+15005550399"


def conversation(app, api) -> int:
    """Ana and Bia wait for YES/NO; Ana says "maybe" (unmatched) then "yes"; a stranger writes; Bia sends STOP."""
    journey = create_journey(ASK)
    run_id = start(api, journey.id, [{"phone": ANA, "name": "Ana"}, {"phone": BIA, "name": "Bia"}])
    settle()
    for phone, text in ((ANA, "maybe"), (ANA, "yes"), (STRANGER, "hello?"), (BIA, "STOP"), (ANA, "thanks!")):
        reply(app.test_client(), phone, text)
    settle()
    return run_id


def test_api_lists_every_inbound_message_newest_first_with_its_outcome(app, api, fake_twilio):
    run_id = conversation(app, api)
    answer = api.get("/api/inbound")
    assert answer.status_code == 200
    rows = answer.json["inbound"]
    assert [(row["from"], row["body"], row["outcome"]) for row in rows] == [
        (ANA, "thanks!", "not_waiting"),
        (BIA, "STOP", "opted_out"),
        (STRANGER, "hello?", "unknown_contact"),
        (ANA, "yes", "matched"),
        (ANA, "maybe", "unmatched"),
    ]
    assert answer.json["total"] == 5 and answer.json["next_before"] is None
    first = rows[-1]
    assert set(first) >= {"id", "from", "body", "payload", "outcome", "received_at"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["received_at"])
    assert first["run_id"] == run_id and first["contact_id"] is not None and first["media"] == []

    unmatched = api.get("/api/inbound?outcome=unmatched").json
    assert [row["body"] for row in unmatched["inbound"]] == ["maybe"] and unmatched["total"] == 1
    assert api.get("/api/inbound?outcome=bogus").status_code == 400
    assert [row["body"] for row in api.get("/api/inbound?q=hello").json["inbound"]] == ["hello?"]
    assert [row["body"] for row in api.get("/api/inbound?q=%2B15005550302").json["inbound"]] == ["STOP"]


def test_api_pages_with_before(app, api):
    for n in range(7):
        db.session.add(InboundMessage(sid=f"SM{n:032d}", from_phone=ANA, body=f"m{n}", outcome="unknown_contact"))
    db.session.commit()
    first = api.get("/api/inbound?per_page=3").json
    assert [row["body"] for row in first["inbound"]] == ["m6", "m5", "m4"]
    second = api.get(f"/api/inbound?per_page=3&before={first['next_before']}").json
    third = api.get(f"/api/inbound?per_page=3&before={second['next_before']}").json
    assert [row["body"] for row in second["inbound"]] == ["m3", "m2", "m1"]
    assert [row["body"] for row in third["inbound"]] == ["m0"] and third["next_before"] is None


def test_inbox_page_shows_outcomes_contacts_and_runs(app, client, api, fake_twilio):
    run_id = conversation(app, api)
    ana = db.session.scalar(select(Contact).where(Contact.phone == ANA))
    participation = db.session.scalar(select(Participation).where(Participation.contact_id == ana.id))

    page = client.get("/inbox/")
    assert page.status_code == 200
    for text in ("maybe", "unmatched", "unknown contact", "not a contact", "opted out", "not waiting"):
        assert text in page.text
    assert f"/contacts/{ana.id}" in page.text
    assert f"/runs/{run_id}/contacts/{participation.id}" in page.text
    assert 'id="inbox-poller"' in page.text and "data-poll-visible" in page.text  # polls only a visible tab
    assert "inbox-reply-as-" not in page.text  # Ana answered and Bia opted out: nobody waits to be answered for

    filtered = client.get("/inbox/?outcome=unmatched")
    assert "maybe" in filtered.text and "hello?" not in filtered.text
    searched = client.get("/inbox/?q=hello")
    assert "hello?" in searched.text and "maybe" not in searched.text


def test_live_partial_sends_only_newer_rows_and_204_when_nothing_changed(app, client, api, fake_twilio):
    conversation(app, api)
    newest = db.session.scalar(select(InboundMessage.id).order_by(InboundMessage.id.desc()).limit(1))
    assert client.get(f"/inbox/_partials/newer?after={newest}").status_code == 204

    reply(app.test_client(), STRANGER, "anyone there?")
    fresh = client.get(f"/inbox/_partials/newer?after={newest}")
    assert fresh.status_code == 200
    assert "anyone there?" in fresh.text and "thanks!" not in fresh.text
    assert 'hx-swap-oob="afterbegin:#inbox-rows"' in fresh.text and f"after={newest + 1}" in fresh.text
    # Filters hold: a new unknown_contact message is not news to a page showing only unmatched ones.
    assert client.get(f"/inbox/_partials/newer?after={newest}&outcome=unmatched").status_code == 204


def test_a_row_still_being_handled_polls_until_it_has_an_outcome(app, client):
    row = InboundMessage(sid="SM" + "7" * 32, from_phone=ANA, body="hi", outcome="received")
    db.session.add(row)
    db.session.commit()
    page = client.get("/inbox/")
    assert f"/inbox/_partials/rows/{row.id}?seen=received" in page.text
    assert client.get(f"/inbox/_partials/rows/{row.id}?seen=received").status_code == 204
    row.outcome = "unknown_contact"
    db.session.commit()
    answer = client.get(f"/inbox/_partials/rows/{row.id}?seen=received")
    assert answer.status_code == 200 and "unknown contact" in answer.text and "every 2s" not in answer.text


def test_media_links_are_shown_and_only_web_links(app):
    """Inbound media ({url, content_type}, stored by the webhook once its `media` column exists) become links."""
    stored = SimpleNamespace(
        media=[
            {
                "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                "content_type": "image/jpeg",
            },
            {"url": "javascript:alert(1)", "content_type": "text/html"},
            "not a dict",
        ]
    )
    media = profile.inbound_media(stored)
    assert [item["content_type"] for item in media] == ["image/jpeg"]
    assert profile.inbound_media(SimpleNamespace()) == []

    message = InboundMessage(id=1, sid="SM1", from_phone=ANA, body="photo", outcome="unknown_contact", channel="sms")
    message.received_at = utcnow()
    with app.test_request_context("/inbox/"):
        html = render_template("inbox/_partials/row.html", row=inbox.InboxRow(message, None, None, media))
    assert 'href="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"' in html
    assert "image/jpeg 1" in html and "javascript:" not in html
