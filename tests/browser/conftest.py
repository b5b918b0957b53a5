"""Shared browser fixtures: one headless Chromium per session, pages that fail the test on any console error.

Playwright's sync API keeps an asyncio loop running in the main thread for
as long as the browser is open; the app is served by the `live_server`
fixture (werkzeug in a thread). Jobs that drive their own event loop (the
Twilio sender) cannot run in a thread with a running loop, so:
- `drain_in_thread` runs the RQ worker in a thread of its own, with its own
  app context, as a worker process would;
- browser tests run after every other test, so the session's browser never
  shares the main thread with the `drain()` of the other tests.
"""

import os
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from app.queues import QUEUE_NAMES, get_queue, get_redis
from tests.conftest import USER_EMAIL, USER_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
BROWSER_TESTS = Path(__file__).resolve().parent
README_SCREENSHOTS = BROWSER_TESTS.parents[1] / "docs" / "screenshots"


@pytest.fixture
def screenshot(tmp_path):
    """Take a named screenshot: into docs/screenshots/ with UPDATE_SCREENSHOTS=1, else a temp dir."""
    folder = README_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, **options) -> Path:
        path = folder / name
        page.screenshot(path=str(path), **options)
        return path

    return take


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Move the browser tests to the end of the session (a stable sort: every other order is kept)."""
    items.sort(key=lambda item: item.path.is_relative_to(BROWSER_TESTS))


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _is_favicon(message) -> bool:
    return (message.location or {}).get("url", "").endswith("/favicon.ico")


# The test server (werkzeug in a thread) may drop a kept-alive connection while a poll is in flight when
# the machine is busy: the browser reports the transport failure, which says nothing about the page.
TRANSPORT_FAILURES = ("net::ERR_CONNECTION_RESET", "net::ERR_SOCKET_NOT_CONNECTED", "net::ERR_EMPTY_RESPONSE")


def _is_noise(message) -> bool:
    return _is_favicon(message) or any(failure in message.text for failure in TRANSPORT_FAILURES)


@pytest.fixture
def page(browser, live_server):
    """A fresh 1280x800 page; the test fails if the browser logged an error or a script threw.

    It is closed before the server stops (it depends on `live_server`): otherwise a poll the page fired
    between the two (the live run and upload pages poll) met a closed port and failed the test at teardown.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    errors = []
    new_page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" and not _is_noise(message) else None
        ),
    )
    new_page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    yield new_page
    context.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)


# True once htmx has no request in flight and has processed what its last swap put in: until then a new
# button is a plain form's (a click submits nothing htmx would), and an element about to be swapped out
# takes a click that is then lost (seen in CI: "Start simulation", a contact's link in the runs table).
HTMX_SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"


def wait_for_htmx(page) -> None:
    page.wait_for_function(HTMX_SETTLED)


def login(page, live_server, email: str = USER_EMAIL, password: str = USER_PASSWORD) -> None:
    """Log in through the real form."""
    page.goto(f"{live_server.url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


@pytest.fixture
def logged_in_page(page, live_server, user):
    """A page logged in as the `user` fixture."""
    login(page, live_server)
    return page


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that runs outside the main thread: no signal handlers, job timeouts by timer."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def drain_in_thread(app, queues=QUEUE_NAMES, timeout: float = 60) -> None:
    """Run every queued job with a real RQ worker (burst) in another thread; return when it is done."""
    failures = []

    def work():
        try:
            with app.app_context():
                worker = ThreadWorker([get_queue(name) for name in queues], connection=get_redis())
                worker.work(burst=True, with_scheduler=False)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=work, name="rq-drain", daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the worker did not finish within {timeout} s"
    assert not failures, failures
