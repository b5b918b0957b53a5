"""Keyword triggers and the replies test bench in a real headless Chromium.

Sets keyword triggers in the journey settings, sees them on the entry node, starts the simulator by
texting JOIN, then opens the wait node's test bench, pastes replies, sees the unmatched one flagged and
adds one of its words as a keyword with one click. Saves the screenshots of both.
"""

import json

from playwright.sync_api import expect

from app.journeys import store as journeys
from tests.examples import EXAMPLES_DIR


def test_trigger_in_the_simulator_and_the_replies_test_bench(logged_in_page, live_server, screenshot, app):
    doc = json.loads((EXAMPLES_DIR / "welcome.json").read_text())
    doc["nodes"][1]["body"] = "Hi! You texted <<trigger>>. Did your order arrive? Reply YES or NO."
    journey_id = journeys.create_journey(doc).id
    page = logged_in_page
    page.goto(f"{live_server.url}/journeys/{journey_id}")

    page.fill("#trigger-sms", "join, entrar")
    page.click("button:text('Save settings')")
    expect(page.locator("#diagram")).to_contain_text("text JOIN, ENTRAR")

    page.fill("#sim-trigger-text", "JOIN please")
    page.click("#simulator .sim-trigger button[type=submit]")
    expect(page.locator("#simulator")).to_contain_text("Started by the keyword trigger 'join'")
    expect(page.locator("#simulator .bubble-journey").first).to_contain_text("You texted JOIN please")
    screenshot(page, "designer-trigger.png", full_page=True)

    page.click("#diagram-node-ask a")
    expect(page.locator("#panel-title code")).to_have_text("ask")
    page.click("details.testbench > summary")
    page.fill("#bench-replies", "yes please\nnão\nmaybe later")
    page.click("details.testbench button:text('Test the replies')")
    result = page.locator("#testbench-result")
    expect(result).to_contain_text("2 matched, 1 unmatched")
    expect(result.locator("tr.bench-unmatched")).to_contain_text("maybe later")
    screenshot(page, "designer-testbench.png", full_page=True)

    row = result.locator("tr.bench-unmatched")
    row.locator("select[name=word]").select_option("maybe")
    row.locator("button:text('Add')").click()
    expect(page.locator("#testbench-result")).to_contain_text("Added maybe to edge")
    expect(page.locator("#testbench-result")).to_contain_text("3 matched, 0 unmatched")
