"""Contacts: search by phone or name (API and page), a contact's page and API, fields, operator opt-out and opt-in."""

from sqlalchemy import select

from app.contacts import audiences
from app.contacts.search import fold
from app.extensions import db
from app.models import Contact, Participation, Step
from tests.conftest import csrf_token_of
from tests.runs.test_runs_helpers import create_journey, reply, settle, start

ASK = {
    "format": "journey/v1",
    "name": "Survey",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Happy, <<name>>? YES/NO"},
        {"id": "ask", "type": "wait"},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"from": "start", "to": "hello"},
        {"from": "hello", "to": "ask"},
        {"from": "ask", "to": "done", "when": {"keywords": ["yes", "no"]}},
    ],
}


def people() -> dict[str, int]:
    """Five contacts saved the way imports save them; name -> id."""
    ids = audiences.upsert_contacts(
        [
            {"phone": "+15005550101", "name": "María Silva", "plan": "gold"},
            {"phone": "+15005550102", "name": "Mario Rossi"},
            {"phone": "+15005550203", "name": "Ana Souza"},
            {"phone": "+442079460004", "name": "Zoë Brown"},
            {"phone": "+15005550205"},
        ]
    )
    db.session.commit()
    return dict(zip(["maria", "mario", "ana", "zoe", "nameless"], ids, strict=True))


def phones_of(answer) -> list[str]:
    return [contact["phone"] for contact in answer.json["contacts"]]


def test_fold_ignores_case_accents_and_spaces():
    assert fold("  María   SILVA ") == "maria silva"
    assert fold("Zoë") == "zoe"
    assert fold("") is None and fold(None) is None


def test_api_searches_by_name_prefix_and_by_phone(app, api):
    people()
    everyone = api.get("/api/contacts")
    assert everyone.status_code == 200
    assert everyone.json["total"] == 5 and len(everyone.json["contacts"]) == 5
    assert set(everyone.json["contacts"][0]) >= {"id", "phone", "fields", "opted_out"}

    assert phones_of(api.get("/api/contacts?q=mar")) == ["+15005550101", "+15005550102"]
    assert phones_of(api.get("/api/contacts?q=MARIA")) == ["+15005550101"]  # accent and case ignored
    assert phones_of(api.get("/api/contacts?q=zoe")) == ["+442079460004"]
    assert phones_of(api.get("/api/contacts?q=%2B1500555020")) == ["+15005550203", "+15005550205"]
    # Without the country code, the default region's (US: 1) is tried too.
    assert phones_of(api.get("/api/contacts?q=500 555 01")) == ["+15005550101", "+15005550102"]
    assert phones_of(api.get("/api/contacts?q=(500) 555-0102")) == ["+15005550102"]
    assert phones_of(api.get("/api/contacts?q=4420794")) == ["+442079460004"]
    nobody = api.get("/api/contacts?q=xyz")
    assert nobody.json == {"contacts": [], "total": 0, "page": 1, "per_page": 50, "pages": 1}
    # LIKE wildcards are literal.
    assert api.get("/api/contacts?q=%25").json["total"] == 0


def test_api_pages(app, api):
    audiences.upsert_contacts([{"phone": f"+1500555{n + 300:04d}", "name": f"Page {n:02d}"} for n in range(12)])
    db.session.commit()
    first = api.get("/api/contacts?q=page&per_page=5")
    third = api.get("/api/contacts?q=page&per_page=5&page=3")
    assert first.json["total"] == 12 and first.json["pages"] == 3
    assert [c["fields"]["name"] for c in first.json["contacts"]] == [f"Page {n:02d}" for n in range(5)]
    assert [c["fields"]["name"] for c in third.json["contacts"]] == ["Page 10", "Page 11"]
    assert api.get("/api/contacts?page=0").status_code == 400
    assert "page" in api.get("/api/contacts?page=x").json["error"]


def test_api_needs_a_token(app):
    assert app.test_client().get("/api/contacts").status_code == 401
    assert app.test_client().get("/api/inbound").status_code == 401


def test_patch_merges_fields_and_null_removes_one(app, api):
    ids = people()
    answer = api.patch(f"/api/contacts/{ids['maria']}", json={"fields": {"plan": None, "city": "Lisboa"}})
    assert answer.status_code == 200, answer.text
    assert answer.json["fields"] == {"phone": "+15005550101", "name": "María Silva", "city": "Lisboa"}
    renamed = api.patch(f"/api/contacts/{ids['maria']}", json={"fields": {"name": "Maria Lima"}})
    assert renamed.status_code == 200
    assert phones_of(api.get("/api/contacts?q=maria l")) == ["+15005550101"]

    refused = api.patch(f"/api/contacts/{ids['maria']}", json={"fields": {"phone": "+15005550999"}})
    assert refused.status_code == 400 and "fields.phone" in refused.json["error"]
    assert api.patch(f"/api/contacts/{ids['maria']}", json={"fields": ["x"]}).status_code == 400
    assert api.patch(f"/api/contacts/{ids['maria']}", json={"name": "x"}).status_code == 400
    assert api.patch("/api/contacts/999999", json={"fields": {}}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Contact, ids["maria"]).fields["city"] == "Lisboa"  # nothing half-written


def test_contact_api_shows_runs_and_one_timeline(app, api, fake_twilio):
    journey = create_journey(ASK)
    run_id = start(api, journey.id, [{"phone": "+15005550101", "name": "Ana"}])
    settle()
    reply(app.test_client(), "+15005550101", "yes")
    settle()
    contact = db.session.scalar(select(Contact).where(Contact.phone == "+15005550101"))

    answer = api.get(f"/api/contacts/{contact.id}")
    assert answer.status_code == 200
    data = answer.json
    assert data["phone"] == "+15005550101" and data["fields"]["name"] == "Ana" and data["opted_out"] is False
    assert [(run["run_id"], run["state"]) for run in data["runs"]] == [(run_id, "completed")]
    assert [(m["direction"], m["body"]) for m in data["messages"]] == [
        ("in", "yes"),
        ("out", "Happy, Ana? YES/NO"),
    ]
    assert data["messages"][1]["status"] == "sent" and data["messages"][0]["at"].endswith("Z")
    assert api.get("/api/contacts/999999").status_code == 404


def test_operator_opt_out_ends_live_runs_and_opt_in_records_who(app, api, user, fake_twilio):
    user_id = user.id
    journey = create_journey(ASK)
    run_id = start(api, journey.id, [{"phone": "+15005550101", "name": "Ana"}])
    settle()
    contact = db.session.scalar(select(Contact).where(Contact.phone == "+15005550101"))

    answer = api.post(f"/api/contacts/{contact.id}/opt-out")
    assert answer.status_code == 200 and answer.json["opted_out"] is True
    assert answer.json["participations_ended"] == 1
    db.session.expire_all()
    participation = db.session.scalar(select(Participation).where(Participation.run_id == run_id))
    assert participation.state == "opted_out"
    finish = db.session.scalar(select(Step).where(Step.participation_id == participation.id, Step.kind == "finish"))
    assert finish.detail["reason"] == "opted out by the API"
    contact = db.session.get(Contact, contact.id)
    assert contact.opted_out_by_id == user_id and contact.opted_out_via == "api" and contact.opted_out_at

    answer = api.post(f"/api/contacts/{contact.id}/opt-in")
    assert answer.status_code == 200 and answer.json["opted_out"] is False
    db.session.expire_all()
    contact = db.session.get(Contact, contact.id)
    assert contact.opted_in_by_id == user_id and contact.opted_in_at is not None


def test_contacts_page_searches_and_pages(app, client):
    people()
    page = client.get("/contacts/")
    assert page.status_code == 200
    assert "5 contacts" in page.text and "María Silva" in page.text and "Contacts" in page.text
    found = client.get("/contacts/?q=ana", headers={"HX-Request": "true"})
    assert found.status_code == 200 and "<html" not in found.text
    assert "Ana Souza" in found.text and "María" not in found.text and "1 contact match" in found.text


def test_contact_page_shows_everything_and_edits_fields(app, client, api, fake_twilio):
    journey = create_journey(ASK)
    run_id = start(api, journey.id, [{"phone": "+15005550101", "name": "Ana", "plan": "gold"}])
    settle()
    contact = db.session.scalar(select(Contact).where(Contact.phone == "+15005550101"))
    participation = db.session.scalar(select(Participation).where(Participation.run_id == run_id))

    page = client.get(f"/contacts/{contact.id}")
    assert page.status_code == 200
    assert "Happy, Ana? YES/NO" in page.text and f"/runs/{run_id}/contacts/{participation.id}" in page.text
    assert "waiting" in page.text and 'id="reply-form-' in page.text
    assert f'action="/runs/{run_id}/contacts/{participation.id}/reply"' in page.text  # it waits: reply as Ana

    form = {
        "csrf_token": csrf_token_of(page.text),
        "key": ["name", "plan", "city"],
        "value": ["Ana B", "gold", "Porto"],
    }
    form["remove"] = ["plan"]
    saved = client.post(f"/contacts/{contact.id}/fields", data=form)
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).fields == {"phone": "+15005550101", "name": "Ana B", "city": "Porto"}
    assert client.get("/contacts/999999").status_code == 404


def test_contact_page_opt_out_and_in_by_post(app, client, user):
    user_id, email = user.id, user.email
    ids = people()
    assert client.post(f"/contacts/{ids['ana']}/opt-out").status_code == 302
    db.session.expire_all()
    contact = db.session.get(Contact, ids["ana"])
    assert contact.opted_out and contact.opted_out_by_id == user_id and contact.opted_out_via == "operator"
    page = client.get(f"/contacts/{ids['ana']}")
    assert "opted out" in page.text and email in page.text and "Opt in…" in page.text
    assert client.post(f"/contacts/{ids['ana']}/opt-in").status_code == 302
    db.session.expire_all()
    assert not db.session.get(Contact, ids["ana"]).opted_out


def test_pages_need_a_login_and_changes_need_csrf(app, user):
    anonymous = app.test_client()
    assert anonymous.get("/contacts/").status_code == 302
    assert anonymous.get("/inbox/").status_code == 302
    ids = people()
    assert anonymous.post(f"/contacts/{ids['ana']}/opt-out").status_code in (302, 400)
    db.session.expire_all()
    assert not db.session.get(Contact, ids["ana"]).opted_out
