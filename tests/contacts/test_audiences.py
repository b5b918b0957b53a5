"""Audiences: CSV upload through the shared importer, contacts merged by phone, pages and the JSON API."""

import io
import json

import pytest

from app.contacts import audiences
from app.contacts.csv_import import CsvImportError
from app.extensions import db
from app.journeys import store as journeys
from app.models import Audience, AudienceContact, Contact, Run
from tests.examples import EXAMPLES_DIR

MESSY = (EXAMPLES_DIR / "contacts-messy.csv").read_bytes()
CLEAN = (EXAMPLES_DIR / "contacts.csv").read_bytes()


def count(model) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(model))


def contact(phone: str) -> Contact:
    return db.session.scalar(db.select(Contact).filter_by(phone=phone))


def test_messy_csv_imports_valid_rows_and_reports_rejected_lines(app):
    audience, rejected = audiences.import_audience("Brazil", MESSY, default_region="BR")
    assert audience.total == 3 == count(Contact) == count(AudienceContact)
    assert [(row.line, row.reason) for row in rejected] == [
        (4, "invalid phone number 'not-a-number'"),
        (5, "empty phone"),
        (6, "duplicate of line 2 (+5541991234567)"),
    ]
    assert [row["line"] for row in audience.rejected] == [4, 5, 6]
    julia = contact("+5541991234567")
    assert julia.name == "Júlia"
    assert julia.fields["Pedido"] == "B-1" and julia.fields["phone"] == "+5541991234567"
    assert sorted(audiences.contact_ids(audience.id)) == sorted(c.id for c in db.session.scalars(db.select(Contact)))


def test_reupload_merges_fields_without_duplicates(app):
    audience, _ = audiences.import_audience(
        "Buyers", b"phone,name,city\n+15005550006,Ana,Curitiba\n+15005550007,Bruno,Lisbon\n"
    )
    again = (
        b"phone,name,city,tier\n"
        b"+1 500 555 0006,Ana Maria,,gold\n"  # same contact: city left blank, new column
        b"+15005550008,Carla,Oakland,silver\n"
    )  # a new contact
    same, rejected = audiences.import_audience("ignored", again, audience=audience)
    assert same.id == audience.id and rejected == []
    assert count(Contact) == 3 and count(AudienceContact) == 3 and audience.total == 3
    ana = contact("+15005550006")
    assert ana.name == "Ana Maria"
    assert ana.fields["city"] == "Curitiba", "a blank cell never erases a stored value"
    assert ana.fields["tier"] == "gold"
    assert audience.columns == ["phone", "name", "city", "tier"]

    other, _ = audiences.import_audience("Second list", b"phone,city\n+15005550006,Porto\n")
    assert count(Contact) == 3, "contacts are shared between audiences, unique by phone"
    assert contact("+15005550006").fields["city"] == "Porto"
    assert audiences.contact_ids(other.id) == [ana.id]


def test_unusable_file_writes_nothing(app):
    with pytest.raises(CsvImportError):
        audiences.import_audience("Empty", b"")
    with pytest.raises(CsvImportError):
        audiences.import_audience("No phone", b"name,city\nAna,Porto\n")
    assert count(Audience) == 0 and count(Contact) == 0


def test_upsert_contacts_normalises_dedupes_and_names_the_bad_one(app):
    ids = audiences.upsert_contacts(
        [
            {"phone": "(415) 555-0132", "name": "Carla", "order": {"id": 7}},
            {"phone": "+14155550132", "plan": "pro"},
            {"phone": "+15005550006", "name": "Ana"},
        ]
    )
    db.session.commit()
    assert len(ids) == 2
    carla = db.session.get(Contact, ids[0])
    assert carla.phone == "+14155550132" and carla.name == "Carla"
    assert carla.fields["order"] == {"id": 7} and carla.fields["plan"] == "pro"
    with pytest.raises(ValueError, match="contact 2"):
        audiences.upsert_contacts([{"phone": "+15005550009"}, {"phone": "nope"}])
    db.session.rollback()
    assert count(Contact) == 2


def test_many_contacts_are_imported_in_chunks(app):
    rows = "".join(f"+1500555{index:04d},Person {index},{index}\n" for index in range(2500))
    audience, rejected = audiences.import_audience("Big", f"phone,name,n\n{rows}".encode())
    assert rejected == [] and audience.total == 2500 == count(Contact)
    changed = "".join(f"+1500555{index:04d},Person {index},{index * 2}\n" for index in range(0, 2500, 2))
    audiences.import_audience("Big", f"phone,name,n\n{changed}".encode(), audience=audience)
    assert audience.total == 2500 == count(Contact) == count(AudienceContact)
    assert contact("+15005550010").fields["n"] == "20"
    assert contact("+15005550011").fields["n"] == "11"


def test_delete_keeps_contacts_and_is_refused_while_a_run_uses_it(app):
    audience, _ = audiences.import_audience("Buyers", CLEAN)
    journey = journeys.create_journey(json.loads((EXAMPLES_DIR / "welcome.json").read_text()))
    run = Run(journey_id=journey.id, version_id=journeys.publish(journey).id, audience_id=audience.id)
    db.session.add(run)
    db.session.commit()
    with pytest.raises(audiences.AudienceInUse):
        audiences.delete_audience(audience)
    run.status = "stopped"
    db.session.commit()
    audiences.delete_audience(audience)
    assert count(Audience) == 0 and count(AudienceContact) == 0 and count(Contact) == 3


# --- pages ------------------------------------------------------------------------------------


def upload(client, url, data: bytes, **form):
    return client.post(
        url, data={"file": (io.BytesIO(data), "contacts.csv"), **form}, content_type="multipart/form-data"
    )


def test_pages_upload_view_reupload_download_delete(client, app):
    assert client.get("/audiences/").status_code == 200
    assert "Phone column" in client.get("/audiences/new").text

    app.config["DEFAULT_REGION"] = "BR"
    response = upload(client, "/audiences/new", MESSY, name="Curitiba buyers")
    assert response.status_code == 302
    audience = db.session.scalar(db.select(Audience))
    page = client.get(response.location)
    assert page.status_code == 200
    assert "Curitiba buyers" in page.text and "+5541991234567" in page.text and "Júlia" in page.text
    assert "invalid phone number" in page.text and "3 rows were rejected" in page.text

    listing = client.get("/audiences/").text
    assert "Curitiba buyers" in listing

    csv_text = client.get(f"/audiences/{audience.id}/rejected.csv")
    assert csv_text.mimetype == "text/csv"
    assert csv_text.text.splitlines()[0] == "line,reason,Telefone,Nome,Pedido"
    assert "not-a-number" in csv_text.text

    again = upload(client, f"/audiences/{audience.id}/upload", b"Telefone;Nome;Cidade\n+5541991234567;Julia;CWB\n")
    assert again.status_code == 302
    db.session.expire_all()
    assert audience.total == 3 and contact("+5541991234567").fields["Cidade"] == "CWB"
    assert "Cidade" in client.get(f"/audiences/{audience.id}").text

    assert "contacts themselves are kept" in client.get(f"/audiences/{audience.id}/delete").text
    deleted = client.post(f"/audiences/{audience.id}/delete")
    assert deleted.status_code == 302
    assert count(Audience) == 0 and count(Contact) == 3


def test_page_upload_errors_are_shown_in_the_form(client):
    missing = client.post("/audiences/new", data={"name": "x"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose a CSV file" in missing.text
    bad = upload(client, "/audiences/new", b"name,city\nAna,Porto\n", name="No phones")
    assert bad.status_code == 400 and "no phone column" in bad.text
    assert 'value="No phones"' in bad.text
    assert count(Audience) == 0


def test_contacts_are_paginated_with_an_htmx_fragment(client):
    rows = "".join(f"+1500555{index:04d},Person {index}\n" for index in range(120))
    audience, _ = audiences.import_audience("Many", f"phone,name\n{rows}".encode())
    page = client.get(f"/audiences/{audience.id}")
    assert "Page 1 of 3" in page.text and "Person 0<" in page.text
    fragment = client.get(f"/audiences/{audience.id}?page=2", headers={"HX-Request": "true", "HX-Target": "contacts"})
    assert fragment.text.lstrip().startswith('<div id="contacts">')
    assert "Person 50<" in fragment.text and "Person 0<" not in fragment.text and "<html" not in fragment.text


def test_page_delete_refused_while_a_run_is_active(client):
    audience, _ = audiences.import_audience("Buyers", CLEAN)
    journey = journeys.create_journey(json.loads((EXAMPLES_DIR / "welcome.json").read_text()))
    db.session.add(Run(journey_id=journey.id, version_id=journeys.publish(journey).id, audience_id=audience.id))
    db.session.commit()
    assert "Stop the run" in client.get(f"/audiences/{audience.id}/delete").text
    assert client.post(f"/audiences/{audience.id}/delete").status_code == 409
    assert count(Audience) == 1


# --- JSON API ---------------------------------------------------------------------------------


def test_api_upload(api, app):
    app.config["DEFAULT_REGION"] = "BR"
    response = upload(api, "/api/audiences", MESSY, name="API list")
    assert response.status_code == 201, response.json
    assert response.json["imported"] == 3
    assert response.json["rejected"] == [
        {"line": 4, "reason": "invalid phone number 'not-a-number'"},
        {"line": 5, "reason": "empty phone"},
        {"line": 6, "reason": "duplicate of line 2 (+5541991234567)"},
    ]
    audience_id = response.json["id"]
    assert api.get(f"/api/audiences/{audience_id}").json["contacts"] == 3
    assert [row["id"] for row in api.get("/api/audiences").json] == [audience_id]


def test_api_upload_with_phone_column(api):
    data = b"home,mobile_no\n+15005550006,+15005550007\n"
    response = upload(api, "/api/audiences", data, phone_column="home")
    assert response.status_code == 201
    assert contact("+15005550006") is not None and contact("+15005550007") is None


def test_api_upload_errors(api, app):
    missing = api.post("/api/audiences", data={"name": "x"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "file" in missing.json["error"]
    unusable = upload(api, "/api/audiences", b"name,city\nAna,Porto\n")
    assert unusable.status_code == 400 and "no phone column" in unusable.json["error"]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    too_big = upload(api, "/api/audiences", b"phone\n" + b"+15005550006\n" * 200)
    assert too_big.status_code == 413 and too_big.json["error"]
    assert count(Audience) == 0
