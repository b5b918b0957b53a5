"""Contacts, a contact's page and the inbox in a real headless Chromium, with the fake Twilio: an unmatched reply
appears in the open inbox without a reload, a contact's timeline shows messages in and out, a one-off reply is
sent from the page, an operator opts a contact out through the confirmation dialog; and the screenshots
(1280x800) docs/screenshots/inbox.png, contact.png, contacts.png."""

import re

from playwright.sync_api import expect
from sqlalchemy import select

from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import Contact
from app.runs import lifecycle
from tests.browser.conftest import drain_in_thread
from tests.contacts.test_contacts import ASK
from tests.runs.test_runs_helpers import reply

ANA, BIA, STRANGER = "+15005550601", "+15005550602", "+15005550699"


def waiting_run(app) -> None:
    """Ana and Bia got the question and wait for YES/NO."""
    journey = journeys.create_journey(dict(ASK))
    lifecycle.start_run(
        journey, contacts=[{"phone": ANA, "name": "Ana Lima", "plan": "gold"}, {"phone": BIA, "name": "Bia Souza"}]
    )
    drain_in_thread(app)


def test_inbox_shows_an_unmatched_reply_live_and_a_contact_timeline(app, logged_in_page, live_server, screenshot):
    page = logged_in_page
    waiting_run(app)
    reply(app.test_client(), STRANGER, "Who is this?")
    page.goto(f"{live_server.url}/inbox/")
    expect(page.locator("#inbox-rows tr")).to_have_count(1)
    page.evaluate("window.sameDocument = true")

    reply(app.test_client(), ANA, "maybe tomorrow")
    reply(app.test_client(), BIA, "yes")
    drain_in_thread(app)
    unmatched = page.locator("#inbox-rows tr[data-outcome=unmatched]")
    expect(unmatched).to_contain_text("maybe tomorrow", timeout=15_000)
    expect(unmatched).to_contain_text("Run ")
    expect(page.locator("#inbox-rows tr[data-outcome=matched]")).to_contain_text("yes")
    expect(page.locator("#inbox-rows tr").first).to_contain_text("yes")  # newest first
    expect(page.locator("#inbox-total")).to_have_text("3 messages")
    assert page.evaluate("window.sameDocument") is True, "the rows arrived without a reload"
    screenshot(page, "inbox.png")

    page.select_option("#inbox-outcome", "unmatched")
    page.click(".inbox-filters button[type=submit]")
    expect(page.locator("#inbox-rows tr")).to_have_count(1)

    page.click("#inbox-rows tr[data-outcome=unmatched] a[href*='/contacts/']")
    page.wait_for_url(re.compile(r"/contacts/\d+$"), wait_until="load")  # its reply form is htmx's once loaded
    expect(page.locator("h1")).to_have_text("Ana Lima")
    timeline = page.locator("#contact-timeline li")
    expect(timeline.nth(0)).to_contain_text("maybe tomorrow")
    expect(timeline.nth(0)).to_have_attribute("data-direction", "in")
    expect(timeline.nth(1)).to_contain_text("Happy, Ana Lima? YES/NO")
    expect(timeline.nth(1)).to_have_attribute("data-direction", "out")
    expect(page.locator("#runs")).to_contain_text("waiting")

    page.fill(f"#reply-form-{_contact_id(ANA)} textarea", "We will call you tomorrow.")
    page.click("#reply button[type=submit]")
    expect(page.locator("#reply-sent")).to_contain_text("queued")
    drain_in_thread(app)
    page.reload()
    expect(timeline.nth(0)).to_contain_text("We will call you tomorrow.")
    expect(timeline.nth(0)).to_contain_text("one-off message")
    screenshot(page, "contact.png", full_page=True)

    page.click("#opt-out-button")
    expect(page.locator("#opt-out-dialog")).to_be_visible()
    page.click("#confirm-opt-out")
    expect(page.locator("#opt-out-state")).to_have_text("opted out")
    expect(page.locator("#runs")).to_contain_text("opted out")


def test_contacts_page_searches_as_you_type(app, logged_in_page, live_server, screenshot):
    page = logged_in_page
    audiences.upsert_contacts(
        [
            {"phone": f"+1500555{700 + n:04d}", "name": name, "city": "Lisboa"}
            for n, name in enumerate(["María Silva", "Mário Costa", "Ana Lima", "Zoë Brown", "Paulo Souza"])
        ]
    )
    db.session.commit()
    page.goto(f"{live_server.url}/contacts/")
    expect(page.locator("#contact-total")).to_contain_text("5 contacts")
    page.fill("#contact-q", "maria")
    expect(page.locator("#contact-total")).to_contain_text("1 contact match")
    expect(page.locator("#contacts-table tbody")).to_contain_text("María Silva")
    page.fill("#contact-q", "ma")
    expect(page.locator("#contact-total")).to_contain_text("2 contacts match")
    assert "q=ma" in page.url
    page.fill("#contact-q", "")
    expect(page.locator("#contact-total")).to_contain_text("5 contacts")
    screenshot(page, "contacts.png")


def _contact_id(phone: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Contact.id).where(Contact.phone == phone))
