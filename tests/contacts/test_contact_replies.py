"""A one-off message to a contact, end to end through the real pipeline (RQ jobs, the fake Twilio):
sent once per idempotency key, never to an opted-out contact, WhatsApp free text only inside the 24 h window."""

import re
from datetime import timedelta

from sqlalchemy import select, update

from app.contacts import audiences
from app.extensions import db
from app.models import InboundMessage, Message, utcnow
from tests.runs.test_runs_helpers import reply, settle

ANA = "+15005550401"
TEMPLATE = "HX" + "a" * 32


def ana() -> int:
    [contact_id] = audiences.upsert_contacts([{"phone": ANA, "name": "Ana"}])
    db.session.commit()
    return contact_id


def messages() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).order_by(Message.id)))


def test_reply_from_the_contact_page_is_sent_once_through_the_pipeline(app, client, fake_twilio):
    contact_id = ana()
    page = client.get(f"/contacts/{contact_id}")
    key = re.search(r'name="key" value="([0-9a-f]+)"', page.text).group(1)
    form = {"body": "Your order shipped.", "channel": "sms", "key": key}

    answer = client.post(f"/contacts/{contact_id}/messages", data=form, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and 'id="reply-sent"' in answer.text
    again = client.post(f"/contacts/{contact_id}/messages", data=form, headers={"HX-Request": "true"})
    assert again.status_code == 200
    settle()

    [message] = messages()
    assert (message.campaign_id, message.participation_id, message.contact_id) == (None, None, contact_id)
    assert message.idempotency_key == f"reply:{key}" and message.status == "sent" and message.sid
    assert [(call.to, call.body) for call in fake_twilio.calls] == [(ANA, "Your order shipped.")]
    timeline = client.get(f"/contacts/{contact_id}")
    assert "Your order shipped." in timeline.text and "one-off message" in timeline.text


def test_api_reply_and_its_errors(app, api, fake_twilio):
    contact_id = ana()
    sent = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "Hi", "idempotency_key": "k1"})
    assert sent.status_code == 202 and sent.json["created"] is True
    repeat = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "Hi", "idempotency_key": "k1"})
    assert repeat.status_code == 202 and repeat.json == {**sent.json, "created": False}
    empty = api.post(f"/api/contacts/{contact_id}/messages", json={"body": " "})
    assert empty.status_code == 400 and empty.json["error"].startswith("body:")
    channel = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "x", "channel": "fax"})
    assert channel.status_code == 400 and "channel" in channel.json["error"]
    assert api.post("/api/contacts/999999/messages", json={"body": "x"}).status_code == 404
    settle()
    assert [call.body for call in fake_twilio.calls] == ["Hi"]


def test_opted_out_contact_is_refused_and_a_queued_reply_is_not_sent_after_opt_out(app, api, fake_twilio):
    contact_id = ana()
    queued = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "before STOP"})
    assert queued.status_code == 202
    reply(app.test_client(), ANA, "STOP")  # arrives before a worker took the message
    settle()
    assert fake_twilio.calls == []
    [message] = messages()
    assert message.status == "failed" and "opted out" in message.error_message

    refused = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "after STOP"})
    assert refused.status_code == 409 and "opted out" in refused.json["error"]
    assert len(messages()) == 1


def test_whatsapp_free_text_only_inside_the_24_hour_window(app, api, client, fake_twilio):
    contact_id = ana()
    closed = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "Hi", "channel": "whatsapp"})
    assert closed.status_code == 409 and closed.json["needs_template"] is True
    assert "24 hours" in closed.json["error"] and "content_sid" in closed.json["error"]
    page = client.post(
        f"/contacts/{contact_id}/messages", data={"body": "Hi", "channel": "whatsapp"}, headers={"HX-Request": "true"}
    )
    assert "24 hours" in page.text and 'name="content_sid"' in page.text

    template = api.post(
        f"/api/contacts/{contact_id}/messages",
        json={"channel": "whatsapp", "content_sid": TEMPLATE, "content_variables": {"1": "Ana"}},
    )
    assert template.status_code == 202, template.text

    reply(app.test_client(), ANA, "hola", channel="whatsapp")
    inside = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "Hola Ana", "channel": "whatsapp"})
    assert inside.status_code == 202, inside.text
    settle()
    calls = [(call.to, call.fields.get("ContentSid"), call.body) for call in fake_twilio.calls]
    assert calls == [(f"whatsapp:{ANA}", TEMPLATE, None), (f"whatsapp:{ANA}", None, "Hola Ana")]

    db.session.execute(update(InboundMessage).values(received_at=utcnow() - timedelta(hours=24, minutes=1)))
    db.session.commit()
    expired = api.post(f"/api/contacts/{contact_id}/messages", json={"body": "late", "channel": "whatsapp"})
    assert expired.status_code == 409 and "last wrote on" in expired.json["error"]
