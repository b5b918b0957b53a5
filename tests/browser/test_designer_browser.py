"""The journey designer in a real headless Chromium.

Builds the example `welcome.json` entirely through the editor (nodes, keyword edges, fallback, timeout),
watches the diagram and the problems follow every edit without a reload, previews a message for a
sample contact, simulates the YES, NO, unclear-reply and timeout paths, publishes, exports and compares
the export with the example. Also imports the other examples, checks every node is drawn, uses the
diagram from the keyboard, a narrow window, and two tabs editing at once. Saves the README screenshots.
"""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_for_htmx
from tests.examples import EXAMPLES_DIR


def example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def import_example(page, live_server, name: str) -> None:
    """Import an example and wait for the editor's `load`: its scripts are deferred, so until then a
    drawn node link is a plain link and Enter would navigate instead of opening the panel."""
    page.goto(f"{live_server.url}/journeys/")
    page.set_input_files("#import-file", str(EXAMPLES_DIR / f"{name}.json"))
    page.click("button:text('Import')")
    page.wait_for_url(re.compile(r"/journeys/\d+$"), wait_until="load")


def graph_of(doc: dict) -> tuple[dict, dict]:
    """Nodes by id and each node's edges in priority order: what must match, whatever the list order."""
    nodes = {node["id"]: node for node in doc["nodes"]}
    edges: dict[str, list] = {}
    for edge in doc["edges"]:
        edges.setdefault(edge["from"], []).append((edge["to"], edge.get("when"), edge.get("weight")))
    return nodes, edges


def press(page, selector: str) -> None:
    """Activate a button from the keyboard once htmx has settled. A click lands where the button was when
    Playwright checked it, and a delayed swap just above it (the node check, the preview) can move it first."""
    wait_for_htmx(page)
    page.locator(selector).press("Enter")


def open_node(page, node_id: str) -> None:
    page.click(f"#node-list a:text-is('{node_id}')") if page.locator(
        f"#node-list a:text-is('{node_id}')"
    ).count() else page.click(f"#diagram-node-{node_id} a")
    expect(page.locator("#panel-title code")).to_have_text(node_id)


def add_node(page, kind: str, node_id: str, after: str = "") -> None:
    page.select_option("#add-type", kind)
    page.fill("#add-id", node_id)
    page.select_option("#add-after", after)
    press(page, "#add-node button[type=submit]")
    expect(page.locator("#panel-title code")).to_have_text(node_id)
    expect(page.locator(f"#diagram-node-{node_id}")).to_be_visible()


def save_node(page) -> None:
    revision = page.input_value("#draft-revision")
    press(page, "#panel .node-form button[type=submit]")
    expect(page.locator("#draft-revision")).not_to_have_value(revision)


def add_edge(page, to: str, kind: str = "always", keywords: str = "") -> None:
    revision = page.input_value("#draft-revision")
    if not page.locator("details.add-edge").evaluate("details => details.open"):
        page.click("details.add-edge > summary")
    form = page.locator("#edge-new")
    form.locator("select[name=to]").select_option(to)
    if kind != "always":
        form.locator("select[name=kind]").select_option(kind)
    if keywords:
        form.locator("input[name=new_keyword]").fill(keywords)
    press(page, "#edge-new button:text('Add edge')")
    expect(page.locator("#draft-revision")).not_to_have_value(revision)


def message_body(page, text: str) -> None:
    page.fill("#message-body", text)
    save_node(page)


def sim_click(page, label: str) -> None:
    press(page, f"#simulator button:text('{label}')")


def sim_reply(page, text: str) -> None:
    wait_for_htmx(page)
    page.fill("#sim-text", text)
    page.press("#sim-text", "Enter")
    expect(page.locator("#simulator .bubble-contact").last).to_have_text(text)


def test_build_welcome_through_the_ui_simulate_publish_export(logged_in_page, live_server, screenshot):
    page = logged_in_page
    page.on("dialog", lambda dialog: dialog.accept())
    welcome = example("welcome")

    page.goto(f"{live_server.url}/journeys/")
    page.fill("#new-name", welcome["name"])
    page.click("button:text('Create')")
    page.wait_for_url(re.compile(r"/journeys/\d+$"), wait_until="load")  # the editor's htmx is ready
    expect(page.locator("h1")).to_have_text(welcome["name"])
    page.fill("#journey-description", welcome["description"])
    page.click("button:text('Save settings')")
    expect(page.locator("#journey-status")).to_contain_text("revision 2")

    page.click("details:has(#sample) > summary")
    page.fill("#sample-fields", "name = Ana\norder_id = A-1001")
    page.click("#sample button:text('Use these fields')")
    expect(page.locator("#simulator")).to_contain_text("name = Ana")

    open_node(page, "start")
    page.fill("#node-label", "Recent buyers")
    save_node(page)
    expect(page.locator("#diagram-node-start")).to_contain_text("Recent buyers")

    add_node(page, "message", "hello", after="start")
    expect(page.locator("#problems")).to_contain_text("start")  # the audience node now has two edges out
    page.fill("#message-body", welcome["nodes"][1]["body"])
    expect(page.locator("#preview .preview-text")).to_have_text("Hi Ana! Did order A-1001 arrive? Reply YES or NO.")
    expect(page.locator("#preview .sms-info")).to_contain_text("GSM-7")
    expect(page.locator("#preview .sms-info")).to_contain_text("1 SMS segment")
    page.fill("#message-body", "Hi <<name|there>>! Your <<item>> arrived? ✓")
    expect(page.locator("#preview mark.pill-missing")).to_have_text("«item»")
    expect(page.locator("#preview .sms-info")).to_contain_text("UCS-2")
    message_body(page, welcome["nodes"][1]["body"])

    open_node(page, "start")
    page.locator("#panel .edge-item", has=page.locator("select[name=to] option[value=done][selected]")).locator(
        "button:text('Delete')"
    ).click()
    expect(page.locator("#problems .problem-error")).to_have_count(0)
    expect(page.locator("#problems")).to_contain_text("node 'hello' has no edge out")

    add_node(page, "wait", "ask", after="hello")
    page.fill("#wait-timeout", "2h")
    save_node(page)
    expect(page.locator("#diagram-node-ask")).to_contain_text("timeout 2h")
    for node in welcome["nodes"][3:6]:
        add_node(page, "message", node["id"])
        message_body(page, node["body"])

    open_node(page, "ask")
    add_edge(page, "thanks", "keywords", "yes, y, sim")
    expect(page.locator("#panel .edges .tag")).to_have_text(["yes ×", "y ×", "sim ×"])
    add_edge(page, "sorry", "keywords", "no, n, não")
    add_edge(page, "sorry", "timeout")
    add_edge(page, "again", "fallback")
    expect(page.locator("#diagram")).to_contain_text("yes, y, sim")
    expect(page.locator("#diagram")).to_contain_text("timeout 2h")
    expect(page.locator("#diagram")).to_contain_text("else")
    open_node(page, "again")
    add_edge(page, "ask")
    expect(page.locator("#diagram .edge-back")).to_have_count(1)
    for node_id in ("thanks", "sorry"):
        open_node(page, node_id)
        add_edge(page, "done")
    expect(page.locator("#problems")).to_contain_text("No problems")
    open_node(page, "hello")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#preview").scroll_into_view_if_needed()
    screenshot(page, "designer-editor.png")

    # Simulator: unclear reply, then YES; then NO; then the timeout.
    sim_click(page, "Start simulation")
    expect(page.locator("#simulator .bubble-journey").first).to_contain_text("Hi Ana! Did order A-1001 arrive?")
    sim_reply(page, "maybe")
    expect(page.locator("#simulator .bubble-journey").last).to_contain_text("Please answer YES or NO.")
    sim_reply(page, "Yes!")
    expect(page.locator("#simulator .bubble-journey").last).to_contain_text("Great, thanks Ana!")
    expect(page.locator("#simulator .sim-state")).to_contain_text("completed")
    expect(page.locator("#diagram-node-thanks")).to_have_class("node node-message node-path")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#simulator .sim-state").scroll_into_view_if_needed()
    screenshot(page, "designer-simulator.png")
    sim_click(page, "New simulation")
    sim_click(page, "Start simulation")
    sim_reply(page, "não")
    expect(page.locator("#simulator .bubble-journey").last).to_contain_text("Sorry about that!")
    sim_click(page, "New simulation")
    sim_click(page, "Start simulation")
    sim_click(page, "Fire the timeout of ask now")
    expect(page.locator("#simulator .bubble-journey").last).to_contain_text("Sorry about that!")
    expect(page.locator("#simulator .sim-state")).to_contain_text("completed")

    page.fill("#publish-note", "first version")
    page.click("button:text('Publish')")
    expect(page.locator("#journey-status")).to_contain_text("published version 1")
    with page.expect_download() as download:
        page.click(".head-actions a:text('Export')")
    exported = json.loads(Path(download.value.path()).read_text())
    assert graph_of(exported) == graph_of(welcome)
    assert {key: exported[key] for key in ("format", "name", "description", "channel")} == {
        key: welcome[key] for key in ("format", "name", "description", "channel")
    }


@pytest.mark.parametrize("name", ["order-status", "whatsapp-survey"])
def test_imported_examples_draw_every_node(logged_in_page, live_server, name):
    page = logged_in_page
    doc = example(name)
    import_example(page, live_server, name)
    expect(page.locator("h1")).to_have_text(doc["name"])
    expect(page.locator("#diagram g.node")).to_have_count(len(doc["nodes"]))
    expect(page.locator("#diagram g.edge")).to_have_count(len(doc["edges"]))
    expect(page.locator("#node-list li")).to_have_count(len(doc["nodes"]))
    for node in doc["nodes"]:
        expect(page.locator(f"#diagram-node-{node['id']}")).to_be_visible()

    second = doc["nodes"][1]["id"]
    editor_url = page.url
    page.focus(f"#diagram-node-{second} a")  # nodes are links: keyboard users open them with Enter
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title code")).to_have_text(second)
    assert page.url == editor_url  # opened in the panel by htmx, no navigation

    width = page.locator("#diagram svg").bounding_box()["width"]
    page.click("button[aria-label='Zoom in']")
    assert page.locator("#diagram svg").bounding_box()["width"] > width

    page.set_viewport_size({"width": 420, "height": 800})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the narrow page scrolls sideways by {overflow}px"


def test_two_tabs_do_not_overwrite_each_other(logged_in_page, live_server):
    page = logged_in_page
    import_example(page, live_server, "welcome")
    editor_url = page.url
    other = page.context.new_page()
    other.goto(editor_url)

    open_node(page, "ask")
    page.fill("#wait-timeout", "3h")
    save_node(page)

    open_node(other, "ask")
    other.fill("#wait-timeout", "9h")
    other.click("#panel .node-form button[type=submit]")
    expect(other.locator("#conflict")).to_contain_text("changed in another tab")
    other.click("#conflict a:text('Reload the journey')")
    expect(other.locator("#diagram-node-ask")).to_contain_text("timeout 3h")
    other.close()
