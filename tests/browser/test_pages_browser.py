"""Every page, in a real Chromium at 1280x800 and at 390x844 (a phone): no sideways scroll, nothing
axe-core's WCAG 2 A/AA rules object to, no console error. The pages come from the URL map (GET routes,
their ids filled from one object of each kind), so pages added later are walked too. Also: the whole
diagram in view after Fit, times in the browser's own zone, keyboard use of the reply buttons, and the
demo run walked to its end by replying as its contacts."""

import json
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.cli import DEMO_AUDIENCE_CSV, DEMO_JOURNEY
from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import Campaign, Contact, Participation
from app.runs import lifecycle, operator_replies
from tests.browser.conftest import drain_in_thread, login
from tests.browser.pages import VIEWPORTS, axe_violations, candidate_urls, clipped, full_pages, sideways_overflow


def demo_run(app, contacts: int = 3) -> dict:
    """The demo journey (published) run in a dry run for the demo audience; its contacts wait at `ask`."""
    app.config["DRY_RUN"] = True
    journey = journeys.import_document(json.loads(DEMO_JOURNEY.read_text(encoding="utf-8")))
    journeys.publish(journey)
    csv = "\n".join(DEMO_AUDIENCE_CSV.splitlines()[: contacts + 1]) + "\n"
    audience, _ = audiences.import_audience("Demo audience", csv.encode(), default_region="US")
    run_id = lifecycle.start_run(journey, audience_id=audience.id).id
    drain_in_thread(app)
    participation_id = db.session.scalar(select(Participation.id).where(Participation.run_id == run_id).limit(1))
    return {
        "journey_id": journey.id,
        "number": 1,
        "audience_id": audience.id,
        "run_id": run_id,
        "participation_id": participation_id,
        "contact_id": db.session.scalar(select(Contact.id).limit(1)),
    }


@pytest.fixture
def one_of_each(app, api, user):
    """One journey, version, audience, run (contacts waiting), participation, campaign, message, inbound reply."""
    ids = demo_run(app)
    answer = api.post(
        "/api/campaign/send", json={"name": "Welcome", "body": "Hi <<name>>!", "rows": [{"phone": "+15005550101"}]}
    )
    assert answer.status_code == 202, answer.text
    drain_in_thread(app)
    ids["campaign_id"] = db.session.scalar(select(Campaign.id))
    # A reply nothing matches: the inbox has a row whose contact still waits (it offers "Reply as the contact").
    operator_replies.reply_as_contact(db.session.get(Participation, ids["participation_id"]), "maybe", None, user.id)
    drain_in_thread(app)
    ids["node_id"] = "hello"
    ids["index"] = 0
    return ids


def new_page(browser, viewport: dict, timezone: str = "UTC"):
    context = browser.new_context(viewport=viewport, timezone_id=timezone, locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The live block polls each second; answer "nothing new" while axe reads the page.
    page.route(re.compile(r"/_partials/live"), lambda route: route.fulfill(status=204))
    return context, page, errors


CHUNKS = 4  # the walk is split so that no test runs much longer than ~20 s


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_page_fits_the_screen_and_passes_axe(app, browser, live_server, client, one_of_each, viewport, chunk):
    urls, unfilled = candidate_urls(app, one_of_each)
    pages = full_pages(client, urls)
    assert len(pages) >= 15, pages
    logged_in = [url for url in pages if url != "/login"] + ["/no/such/page"]
    walked = logged_in[chunk::CHUNKS] + (["/login"] if chunk == CHUNKS - 1 else [])  # logged out: last
    print(f"{len(pages)} pages in all; chunk {chunk} at {viewport}: {walked}; rules not filled: {unfilled}")
    context, page, errors = new_page(browser, VIEWPORTS[viewport])
    login(page, live_server)
    problems = []
    for url in walked:
        if url == "/login":
            page.context.clear_cookies()
        page.goto(live_server.url + url)
        page.wait_for_load_state("load")
        overflow = sideways_overflow(page)
        if overflow:
            problems.append(f"{url}: scrolls sideways by {overflow}")
        problems += [f"{url}: {violation}" for violation in axe_violations(page)]
    context.close()
    errors = [error for error in errors if "404 (NOT FOUND)" not in error]  # /no/such/page itself
    assert not problems, "\n".join(problems)
    assert not errors, errors


def test_phone_screenshots(app, browser, live_server, one_of_each, screenshot):
    context, page, errors = new_page(browser, VIEWPORTS["phone"])
    login(page, live_server)
    page.goto(f"{live_server.url}/runs/{one_of_each['run_id']}")
    assert sideways_overflow(page) is None
    screenshot(page, "phone-run-page.png", full_page=True)
    page.goto(f"{live_server.url}/outbox/")
    assert sideways_overflow(page) is None
    screenshot(page, "phone-messages.png")
    context.close()
    assert not errors, errors


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_whole_diagram_is_in_view_after_fit_and_on_the_run_page(
    app, user, browser, live_server, viewport, screenshot
):
    ids = demo_run(app)
    context, page, errors = new_page(browser, VIEWPORTS[viewport])
    login(page, live_server)
    page.goto(f"{live_server.url}/journeys/{ids['journey_id']}")
    page.get_by_role("button", name="Fit", exact=True).click()
    assert clipped(page, "#diagram") is None, clipped(page, "#diagram")
    expect(page.locator("#diagram svg")).to_contain_text("done")
    if viewport == "desktop":
        screenshot(page, "designer-fit.png")
    page.goto(f"{live_server.url}/runs/{ids['run_id']}")
    assert clipped(page, ".diagram-box") is None, clipped(page, ".diagram-box")
    context.close()
    assert not errors, errors


def test_times_are_shown_in_the_browsers_zone_and_rounded_as_people_read_them(app, user, browser, live_server):
    ids = demo_run(app, contacts=1)
    context, page, errors = new_page(browser, VIEWPORTS["desktop"], timezone="America/Sao_Paulo")
    login(page, live_server)
    page.goto(f"{live_server.url}/runs/{ids['run_id']}/contacts/{ids['participation_id']}")
    timer = page.locator("#timeline-timer")
    expect(timer.locator('time[data-format="relative"]')).to_have_text(re.compile(r"^in 1 h 59 min$"))
    expect(timer.locator('time[data-format="clock"]')).to_contain_text("GMT-3")  # the zone is named
    expect(page.locator('time[data-format="datetime"]').first).to_contain_text("America/Sao_Paulo")
    context.close()
    assert not errors, errors


def test_reply_buttons_work_from_the_keyboard(app, user, browser, live_server):
    ids = demo_run(app, contacts=1)
    context, page, errors = new_page(browser, VIEWPORTS["desktop"])
    login(page, live_server)
    page.goto(f"{live_server.url}/runs/{ids['run_id']}/contacts/{ids['participation_id']}")
    for _ in range(80):  # Tab through the page until the "no" answer has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.value") == "no":
            break
    else:
        pytest.fail("the answer buttons cannot be reached with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#reply-notice")).to_contain_text("Replied “no” as the contact")
    context.close()
    assert not errors, errors


def test_the_demo_run_walked_to_the_end_by_replying_as_its_contacts(app, user, browser, live_server, screenshot):
    ids = demo_run(app, contacts=3)
    context, page, errors = new_page(browser, VIEWPORTS["desktop"])
    page.unroute(re.compile(r"/_partials/live"))  # this one watches the page move
    login(page, live_server)
    page.goto(f"{live_server.url}/runs/{ids['run_id']}")
    expect(page.locator("#contacts-count")).to_contain_text("3 contacts match")
    answers = ["yes", "no", "maybe"]
    first_waiting = ids["participation_id"]
    for number, answer in enumerate(answers):
        page.locator("#contacts-table .reply-link").first.click()
        expect(page.locator("#timeline-content")).to_have_attribute("data-participation", str(first_waiting + number))
        form = page.locator("#timeline .reply-as-contact")
        if answer == "maybe":
            form.get_by_label("Type a reply").fill("maybe")
            form.get_by_label("Type a reply").press("Enter")
        else:
            form.get_by_role("button", name=re.compile(rf"^{answer} ")).click()
        expect(page.locator("#reply-notice")).to_contain_text(f"Replied “{answer}”")
        if number == 0:
            screenshot(page, "run-reply-as-contact.png", full_page=True)
        drain_in_thread(app)
        # the table refreshes with the live counters: one "Reply as the contact" link per contact still waiting
        expect(page.locator("#contacts-table .reply-link")).to_have_count([2, 1, 1][number])
    # "maybe" matched no keyword: the fallback asked again; answer that contact once more
    page.locator("#contacts-table .reply-link").first.click()
    expect(page.locator("#timeline-steps")).to_contain_text("Please answer YES or NO.")
    page.locator("#timeline .reply-as-contact").get_by_role("button", name=re.compile(r"^yes ")).click()
    expect(page.locator("#reply-notice")).to_contain_text("Replied “yes”")
    drain_in_thread(app)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#state-completed")).to_have_attribute("data-count", "3")
    screenshot(page, "demo-run-finished.png")
    page.goto(f"{live_server.url}/outbox/")
    expect(page.locator("#message-log")).to_contain_text(f"run #{ids['run_id']}")
    screenshot(page, "messages.png")
    context.close()
    assert not errors, errors
