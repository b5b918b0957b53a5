"""Erasing a contact: fields and message texts removed, live runs stopped, the number suppressed by hash so that
re-importing it (CSV audience, inline run contacts, campaign) sends it nothing, and the run and campaign say why."""

import io

from sqlalchemy import func, select

from app.contacts import suppression
from app.extensions import db
from app.models import (
    AudienceContact,
    Contact,
    InboundMessage,
    Message,
    Participation,
    Step,
    SuppressedPhone,
)
from tests.contacts.test_contacts import ASK
from tests.runs.test_runs_helpers import bodies_to, create_journey, reply, settle, start

ANA, BIA = "+15005550501", "+15005550502"


def upload(api, text: str) -> int:
    answer = api.post("/api/audiences", data={"file": (io.BytesIO(text.encode()), "contacts.csv"), "name": "Again"})
    assert answer.status_code == 201, answer.text
    return answer.json["id"]


def contact_by_phone(phone: str) -> Contact | None:
    db.session.expire_all()
    return db.session.scalar(select(Contact).where(Contact.phone == phone))


def test_erase_removes_data_stops_runs_and_remembers_the_number(app, api, client, fake_twilio):
    journey = create_journey(ASK)
    upload(api, f"phone,name,plan\n{ANA},Ana,gold\n{BIA},Bia,free\n")
    run_id = start(api, journey.id, [{"phone": ANA, "name": "Ana"}])
    settle()
    reply(app.test_client(), ANA, "maybe, call me at home")
    settle()
    ana = contact_by_phone(ANA)

    confirm = client.get(f"/contacts/{ana.id}/erase")
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.text and f"run {run_id}" in confirm.text and "hash" in confirm.text
    answer = api.delete(f"/api/contacts/{ana.id}")
    assert answer.status_code == 200 and answer.json == {"id": ana.id, "erased": True}

    db.session.expire_all()
    erased = db.session.get(Contact, ana.id)
    assert erased.phone == f"erased:{ana.id}" and erased.fields == {} and erased.name is None
    assert erased.opted_out and erased.erased_at is not None and erased.search_name is None
    assert contact_by_phone(ANA) is None
    assert [(m.to_phone, m.body) for m in db.session.scalars(select(Message))] == [(f"erased:{ana.id}", None)]
    assert [(m.from_phone, m.body) for m in db.session.scalars(select(InboundMessage))] == [(f"erased:{ana.id}", "")]
    participation = db.session.scalar(select(Participation).where(Participation.contact_id == ana.id))
    assert participation.state == "opted_out" and not participation.engine_state.get("variables")
    texts = [step.detail.get("text") for step in db.session.scalars(select(Step).where(Step.kind == "reply"))]
    assert texts == [None]
    members = db.session.scalar(
        select(func.count()).select_from(AudienceContact).where(AudienceContact.contact_id == ana.id)
    )
    assert members == 0
    [stored] = db.session.scalars(select(SuppressedPhone)).all()
    assert stored.phone_hash == suppression.phone_hash(ANA) and ANA.strip("+") not in stored.phone_hash
    assert api.get(f"/api/contacts?q={ANA[1:]}").json["total"] == 0
    assert client.get(f"/contacts/{ana.id}").status_code == 200
    assert api.delete(f"/api/contacts/{ana.id}").status_code == 200  # erasing twice changes nothing
    assert api.post(f"/api/contacts/{ana.id}/opt-in").status_code == 409


def test_an_erased_number_imported_again_is_never_messaged(app, api, fake_twilio):
    upload(api, f"phone,name\n{ANA},Ana\n")
    api.delete(f"/api/contacts/{contact_by_phone(ANA).id}")

    audience_id = upload(api, f"phone,name\n{ANA},Ana again\n{BIA},Bia\n")
    again = contact_by_phone(ANA)
    assert again.opted_out and again.opted_out_via == "suppressed"
    again_id = again.id
    journey = create_journey(ASK)
    run = api.post(f"/api/journeys/{journey.id}/runs", json={"audience_id": audience_id})
    assert run.status_code == 202
    refused = api.post(f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": ANA, "name": "Inline"}]})
    assert refused.status_code == 409 and "opted out" in refused.json["error"]  # the pre-flight says why
    campaign = api.post("/api/campaign/send", json={"body": "Sale!", "rows": [{"phone": ANA}, {"phone": BIA}]})
    assert campaign.status_code == 202
    settle()

    assert bodies_to(fake_twilio, ANA) == []
    assert sorted(bodies_to(fake_twilio, BIA)) == ["Happy, Bia? YES/NO", "Sale!"]
    failed = db.session.scalars(select(Message).where(Message.to_phone == ANA)).all()
    assert len(failed) == 2 and {m.status for m in failed} == {"failed"}
    assert {m.error_message for m in failed} == {suppression.SUPPRESSED_REASON}
    # The run says why: the contact failed with the suppression as its reason.
    summary = api.get(f"/api/runs/{run.json['run_id']}").json
    assert summary["states"]["failed"] == 1
    db.session.expire_all()
    reasons = {p.error for p in db.session.scalars(select(Participation).where(Participation.contact_id == again_id))}
    assert reasons == {f"message 'hello' could not be sent: {suppression.SUPPRESSED_REASON}"}


def test_start_from_the_number_itself_lifts_the_suppression(app, api, fake_twilio):
    upload(api, f"phone,name\n{ANA},Ana\n")
    api.delete(f"/api/contacts/{contact_by_phone(ANA).id}")
    reply(app.test_client(), ANA, "START")
    assert not suppression.is_suppressed(ANA)
    contact = contact_by_phone(ANA)
    assert not contact.opted_out
    assert api.post(f"/api/contacts/{contact.id}/messages", json={"body": "Welcome back"}).status_code == 202
    settle()
    assert bodies_to(fake_twilio, ANA) == ["Welcome back"]


def test_erase_from_the_page(app, client, api):
    upload(api, f"phone,name\n{ANA},Ana\n")
    ana = contact_by_phone(ANA)
    assert client.post(f"/contacts/{ana.id}/erase").status_code == 302
    page = client.get(f"/contacts/{ana.id}")
    assert f"Erased contact {ana.id}" in page.text and "Erase contact…" not in page.text
    assert suppression.is_suppressed(ANA)
