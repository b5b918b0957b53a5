"""A campaign in a real headless Chromium: upload, live preview, send, counts updating without a reload.

Also takes the README screenshots (1280x800) of the form, the preview and the detail page (written to docs/screenshots/ with UPDATE_SCREENSHOTS=1).
"""

import re

from playwright.sync_api import expect

from tests.browser.conftest import drain_in_thread
from tests.examples import EXAMPLES_DIR


def test_campaign_from_upload_to_delivered_counts(app, logged_in_page, live_server, fake_twilio, screenshot):
    page = logged_in_page

    page.goto(f"{live_server.url}/campaigns/new")
    page.fill("#name", "Order updates")
    page.set_input_files("#file", str(EXAMPLES_DIR / "contacts.csv"))
    expect(page.locator("#phone_column option").first).to_have_text("Found automatically: phone")
    expect(page.locator("#phone_column option")).to_have_count(5)
    page.fill("#body", "Hi <<name>>, order <<order_id>> ships to <<city>>.")
    screenshot(page, "campaign-form.png")
    page.get_by_role("button", name="Preview").click()

    page.wait_for_url("**/preview")
    rows = page.locator("#preview-rows tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first.locator(".rendered")).to_have_text("Hi Ana, order A-1001 ships to Curitiba.")
    expect(page.locator("#rejected-rows")).to_contain_text("duplicate of line 2 (+15005550006)")
    expect(page.locator("#rejected-rows td.num").first).to_have_text("5")

    page.fill("#body", "Hello <<name>> <<coupon>>! Order <<order_id>> ships to <<city>>.")
    expect(rows.first.locator(".rendered")).to_have_text("Hello Ana <<coupon>>! Order A-1001 ships to Curitiba.")
    expect(rows.first.locator("mark.pill-missing")).to_have_text("<<coupon>>")
    expect(page.locator("#unfilled")).to_contain_text("No column fills <<coupon>>")
    page.fill("#body", "Hello <<name>>! Order <<order_id>> ships to <<city>>.")
    expect(rows.first.locator(".rendered")).to_have_text("Hello Ana! Order A-1001 ships to Curitiba.")
    screenshot(page, "campaign-preview.png", full_page=True)
    page.click("#send")

    page.wait_for_url(re.compile(r"/campaigns/\d+$"))
    expect(page.locator("#count-total")).to_have_text("3")
    expect(page.locator("#count-queued")).to_have_text("3")
    page.evaluate("window.sameDocument = true")
    drain_in_thread(app)
    expect(page.locator("#count-sent")).to_have_text("3")
    expect(page.locator("#count-queued")).to_have_text("0")
    expect(page.locator("#campaign-progress")).to_have_attribute("data-finished", "true")
    expect(page.locator("#campaign-status")).to_have_text("completed")
    expect(page.locator("#message-log tr[data-status=sent]")).to_have_count(3)
    assert page.evaluate("window.sameDocument") is True, "the counts updated without a reload"
    assert sorted(call.body for call in fake_twilio.calls) == [
        "Hello Ana! Order A-1001 ships to Curitiba.",
        "Hello Bruno! Order A-1002 ships to São Paulo.",
        "Hello Carla! Order A-1003 ships to Oakland.",
    ]
    screenshot(page, "campaign-detail.png", full_page=True)
