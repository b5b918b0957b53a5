"""Runs in a real headless Chromium: start a run from the page on the fake Twilio, watch its counts change
without a reload, open a contact's timeline, export the results, stop a run; and the README screenshots
(1280x800) of the run page and the home page."""

import csv
import re
from pathlib import Path

from playwright.sync_api import expect

from app.extensions import db
from app.models import Audience, AudienceContact, Contact, Journey
from app.runs import lifecycle
from tests.browser.conftest import drain_in_thread, wait_for_htmx
from tests.runs.test_run_stats import build_run

HELLO = {
    "format": "journey/v1",
    "name": "Welcome",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Hi <<name>>!"},
        {"id": "done", "type": "end"},
    ],
    "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "done"}],
}
ASK = {
    "format": "journey/v1",
    "name": "Survey",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Happy? YES/NO"},
        {"id": "ask", "type": "wait"},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"from": "start", "to": "hello"},
        {"from": "hello", "to": "ask"},
        {"from": "ask", "to": "done", "when": {"keywords": ["yes", "no"]}},
    ],
}


def journey_and_audience(doc: dict, contacts: int) -> tuple[int, int]:
    journey = Journey(name=doc["name"], draft=doc)
    audience = Audience(name="Newsletter readers", columns=["phone", "name"], total=contacts)
    db.session.add_all([journey, audience])
    db.session.flush()
    for n in range(contacts):
        contact = Contact(phone=f"+1555020{n:04d}", name=f"Reader {n}", fields={})
        db.session.add(contact)
        db.session.flush()
        db.session.add(AudienceContact(audience_id=audience.id, contact_id=contact.id))
    db.session.commit()
    return journey.id, audience.id


def test_start_a_run_watch_it_live_open_a_timeline_and_export(app, logged_in_page, live_server, fake_twilio):
    page = logged_in_page
    journey_id, audience_id = journey_and_audience(HELLO, 3)

    page.goto(f"{live_server.url}/runs/new")
    page.select_option("#journey_id", str(journey_id))
    expect(page.locator("#start-summary")).to_contain_text("version 1")
    page.select_option("#audience_id", str(audience_id))
    expect(page.locator("#start-summary")).to_contain_text("3 contacts")
    page.click("#start-run")

    page.wait_for_url(re.compile(r"/runs/\d+$"))
    expect(page.locator("#state-completed")).to_have_attribute("data-count", "0")
    page.evaluate("window.sameDocument = true")
    drain_in_thread(app)
    expect(page.locator("#state-completed")).to_have_attribute("data-count", "3")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#messages-sent b")).to_have_text("3")
    expect(page.locator("#diagram-node-hello")).to_contain_text("3 visits")
    assert page.evaluate("window.sameDocument") is True, "the counts changed without a reload"
    assert len(fake_twilio.calls) == 3

    page.click("#state-completed")
    wait_for_htmx(page)
    rows = page.locator("#contacts-table tbody tr")
    expect(rows).to_have_count(3)
    rows.first.locator("a").click()
    timeline = page.locator("#timeline-steps")
    expect(timeline).to_contain_text("Entered hello")
    expect(timeline).to_contain_text("Took the edge hello → done")
    expect(timeline.locator("li[data-kind=message] .events")).to_contain_text("sent")

    with page.expect_download() as download:
        page.click("#export-results")
    lines = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert sorted(row["name"] for row in lines) == ["Reader 0", "Reader 1", "Reader 2"]
    assert {row["state"] for row in lines} == {"completed"}


def test_stop_a_waiting_run_and_see_the_home_page(app, logged_in_page, live_server, screenshot):
    page = logged_in_page
    journey_id, audience_id = journey_and_audience(ASK, 4)
    run_id = lifecycle.start_run(db.session.get(Journey, journey_id), audience_id=audience_id).id
    drain_in_thread(app)

    page.goto(f"{live_server.url}/")
    expect(page.locator("#active-runs")).to_contain_text("Survey")
    expect(page.locator("#no-worker")).to_be_visible()
    screenshot(page, "home.png")

    page.goto(f"{live_server.url}/runs/{run_id}")
    expect(page.locator("#state-waiting")).to_have_attribute("data-count", "4")
    page.click("#stop-run")
    expect(page.locator("h1")).to_contain_text(f"Stop run {run_id}?")
    page.click("#confirm-stop")
    page.wait_for_url(re.compile(rf"/runs/{run_id}$"))
    expect(page.locator("#run-status")).to_have_text("stopped")
    expect(page.locator("#state-stopped")).to_have_attribute("data-count", "4")
    expect(page.locator("#stop-run")).to_have_count(0)


def test_run_page_screenshot_with_failures_replies_and_a_timeline(app, logged_in_page, live_server, screenshot):
    page = logged_in_page
    built = build_run()
    page.goto(f"{live_server.url}/runs/{built['run'].id}")
    expect(page.locator("#overdue-alarm")).to_contain_text("2")
    expect(page.locator("#unmatched-replies")).to_contain_text("maybe")
    expect(page.locator("#message-failures")).to_contain_text("30003")
    screenshot(page, "run-page.png")
    page.locator("#contacts-table a", has_text="+15550000001").click()
    expect(page.locator("#timeline-steps")).to_contain_text("because of the reply yes")
    screenshot(page, "run-contacts.png")
