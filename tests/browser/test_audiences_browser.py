"""Audiences in a real browser: upload through the form, page through contacts with HTMX, delete."""

from app.contacts import audiences
from app.extensions import db
from app.models import Audience
from tests.examples import EXAMPLES_DIR

MESSY = EXAMPLES_DIR / "contacts-messy.csv"


def test_upload_view_paginate_and_delete(logged_in_page, live_server, app):
    page = logged_in_page
    app.config["DEFAULT_REGION"] = "BR"
    page.goto(f"{live_server.url}/audiences/new")
    page.fill("#name", "Curitiba buyers")
    page.set_input_files("#file", str(MESSY))
    page.click("main button[type=submit]")
    page.wait_for_selector("text=3 rows were rejected")
    assert page.locator("#contacts tbody tr").count() == 3
    assert page.locator("text=duplicate of line 2").is_visible()

    rows = "".join(f"+1500555{index:04d},Person {index}\n" for index in range(120))
    many, _ = audiences.import_audience("Many", f"phone,name\n{rows}".encode())
    page.goto(f"{live_server.url}/audiences/{many.id}")
    page.click("text=Next →")
    page.wait_for_selector("text=Page 2 of 3")
    assert page.url.endswith(f"/audiences/{many.id}"), "HTMX swapped the table in place"
    assert page.locator("#contacts td", has_text="Person 50").first.is_visible()

    page.click("text=Delete audience…")
    page.click("main button.danger")
    page.wait_for_selector("text=its contacts are kept")
    assert db.session.scalar(db.select(db.func.count()).select_from(Audience)) == 1
