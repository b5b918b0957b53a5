"""Security in a real browser: the CSP lets every page work (no violation is logged: the `page` fixture fails
on any console error), rq-dashboard runs under its own policy and empties a queue from its own page, and an
admin adds a user who then logs in with the role given."""

from rq import Queue

from app.queues import get_redis
from tests.browser.conftest import login


def test_rq_dashboard_works_and_changes_queues_from_its_own_page(browser, live_server, user):
    """Its own page is used, not the `page` fixture: rq-dashboard's scripts have console errors of their own
    (a callback bug when its table reloads); what matters here is that the CSP blocks nothing."""
    context = browser.new_context()
    page = context.new_page()
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    login(page, live_server)
    queue = Queue("flows", connection=get_redis())
    queue.enqueue("builtins.print", "waiting")
    page.goto(f"{live_server.url}/rq/")
    page.wait_for_selector("#queues td:text-is('flows')")
    page.goto(f"{live_server.url}/rq/0/view/jobs/flows/queued/8/asc/1")
    page.click("#empty-btn")
    page.click("#confirmation-modal-yes")
    for _ in range(100):
        if queue.count == 0:
            break
        page.wait_for_timeout(100)
    assert queue.count == 0, "the dashboard's own same-origin POST emptied the queue"
    page.goto("about:blank")  # stop its polling before the server goes away
    context.close()
    assert refused == []


def test_an_admin_adds_a_viewer_who_can_only_read(logged_in_page, live_server, page, browser):
    page = logged_in_page
    page.goto(f"{live_server.url}/users/")
    page.fill("#new-email", "reader@example.com")
    page.fill("#new-password", "reader long password")
    page.select_option("#new-role", "viewer")
    page.click("text=Add user")
    page.wait_for_selector("text=Created reader@example.com (viewer)")
    reader = browser.new_context().new_page()
    login(reader, live_server, "reader@example.com", "reader long password")
    assert "Users" not in reader.locator("header nav").inner_text()
    reader.goto(f"{live_server.url}/users/")
    assert "needs the admin role" in reader.content()
    reader.context.close()
