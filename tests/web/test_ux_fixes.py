"""The first-ten-minutes findings (issue 12), each checked where it lived: times and plurals, error pages,
favicon, Procfile and packaging, the run page agreeing with itself, the Messages page's sender and
run links, progress bars, the start-a-run list, the simulator's highlighted path, the default sample."""

import json
import re
import tomllib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from app.cli import DEMO_AUDIENCE_CSV, DEMO_JOURNEY
from app.contacts import audiences
from app.extensions import db
from app.journeys import diagram, samples
from app.journeys import store as journeys
from app.models import Participation, Run, utcnow
from app.queues import get_redis
from app.runs import simulator
from app.web.jinja import ago, duration, plural, span_text, time_tag
from tests.conftest import drain
from tests.runs.test_run_pages import make_audience

ROOT = Path(__file__).resolve().parents[2]


def demo_doc() -> dict:
    return json.loads(DEMO_JOURNEY.read_text(encoding="utf-8"))


def demo_journey():
    journey = journeys.import_document(demo_doc())
    journeys.publish(journey)
    return journey


# -- times and words ------------------------------------------------------------------------------


def test_a_two_hour_timer_reads_in_1_h_59_min_not_in_1_h():
    now = utcnow()
    assert ago(now + timedelta(hours=2) - timedelta(seconds=5), now=now) == "in 1 h 59 min"
    assert ago(now - timedelta(minutes=5, seconds=12), now=now) == "5 min 12 s ago"
    assert ago(now + timedelta(days=3, hours=4, minutes=5), now=now) == "in 3 d 4 h"
    assert span_text(3600) == "1 h" and span_text(42) == "42 s"


def test_an_estimate_reads_in_the_same_units_rounded_to_the_second():
    assert [duration(s) for s in (None, 44.6, 90, 3600, 3660, 7799, 3 * 86400 + 4 * 3600)] == [
        "",
        "45 s",
        "1 min 30 s",
        "1 h",
        "1 h 1 min",
        "2 h 9 min",
        "3 d 4 h",
    ]


def test_times_are_time_elements_in_utc_for_the_browser_to_localise(app):
    moment = utcnow().replace(microsecond=0)
    html = str(time_tag(moment, "clock"))
    assert f'datetime="{moment:%Y-%m-%dT%H:%M:%S}Z"' in html and 'data-format="clock"' in html
    assert f"{moment:%H:%M} UTC" in html  # the fallback names its zone
    assert str(time_tag(None)) == "—"


def test_plural():
    assert plural(1, "contact") == "1 contact"
    assert plural(1204, "contact") == "1,204 contacts"
    assert plural(0, "reply", "replies") == "0 replies"


# -- edges of the app -----------------------------------------------------------------------------


def test_pages_link_the_favicon_and_the_time_script_and_name_messages_one_way(client, app):
    app.config["DRY_RUN"] = True
    home = client.get("/").text
    assert 'rel="icon"' in home and "favicon.svg" in home and "time.js" in home
    assert "outbox" not in re.sub(r'href="[^"]*"', "", home).lower()  # the banner says Messages, as the menu
    assert client.get("/static/favicon.svg").status_code == 200
    assert 'target="_blank"' in home.split('id="queues-link"')[0].rsplit("<a", 1)[1]  # Queues: new tab, labelled


def test_unknown_pages_get_a_styled_404_and_the_api_json(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "Page not found" in page.text and "app.css" in page.text
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.is_json


def test_an_unexpected_error_gets_a_styled_500(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken():
        raise RuntimeError("boom")

    saved = app.view_functions["runs.index"]
    app.view_functions["runs.index"] = broken
    try:
        page = client.get("/runs/")
    finally:
        app.view_functions["runs.index"] = saved
    assert page.status_code == 500 and "Something went wrong" in page.text and "boom" not in page.text


def test_gunicorn_binds_loopback_unless_host_says_otherwise():
    procfile = (ROOT / "Procfile").read_text()
    assert "--bind ${HOST:-127.0.0.1}:${PORT:-5000}" in procfile and "0.0.0.0" not in procfile


def test_the_licence_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    requirement = project["build-system"]["requires"][0]
    assert int(requirement.split(">=")[1].split(".")[0]) >= 77  # setuptools that reads SPDX strings
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_a_second_start_says_where_the_login_is():
    script = (ROOT / "scripts" / "start").read_text()
    assert "first-login.txt" in script and "users create" in script and "Ctrl-C" in script


# -- the run page, runs list and start page -------------------------------------------------------


def test_a_new_runs_page_agrees_with_itself_and_tells_the_table_to_refresh(app, client):
    app.config["DRY_RUN"] = True
    journey = demo_journey()
    audience = make_audience("Buyers", 3)
    response = client.post("/runs/", data={"journey_id": journey.id, "audience_id": audience.id})
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/runs/{run_id}").text  # before any worker ran
    rows = page.count("data-participation=")
    count = int(re.search(r'id="contacts-count"[^>]*>([\d,]+) contact', page).group(1))
    assert count == rows
    signature = re.search(r"seen=([0-9a-f]+)", page).group(1)
    drain()
    live = client.get(f"/runs/{run_id}/_partials/live?seen={signature}", headers={"HX-Request": "true"})
    assert live.headers.get("HX-Trigger") == "run-changed"  # contacts moved: the table refreshes with the counters
    new_signature = re.search(r"seen=([0-9a-f]+)", live.text).group(1)
    again = client.get(f"/runs/{run_id}/_partials/live?seen={new_signature}", headers={"HX-Request": "true"})
    assert "HX-Trigger" not in again.headers
    results = client.get(f"/runs/{run_id}/contacts?part=results", headers={"HX-Request": "true"}).text
    assert results.startswith("{#") is False and 'id="contacts-results"' in results
    assert "3 contacts match" in results and results.count("Reply as the contact") == 3


def test_the_runs_list_bar_fills_with_finished_contacts_only_and_has_a_legend(app, client):
    app.config["DRY_RUN"] = True
    journey = demo_journey()
    audience = make_audience("Buyers", 3)
    run_id = client.post("/runs/", data={"journey_id": journey.id, "audience_id": audience.id}).headers["Location"]
    drain()  # all three wait at ask: nothing finished
    page = client.get("/runs/").text
    assert "0 of 3 contacts finished" in page
    assert re.search(r'class="p-ok"[^>]*width="0(\.0)?"', page) and re.search(
        r'class="p-bad"[^>]*width="0(\.0)?"', page
    )
    assert "not finished yet" in page and run_id


def test_journeys_with_the_same_name_are_told_apart_when_starting_a_run(client):
    first, second = demo_journey(), demo_journey()
    page = client.get("/runs/new").text
    assert f"Delivery check — #{first.id}, v1" in page and f"Delivery check — #{second.id}, v1" in page


def test_messages_show_the_sender_and_link_journey_messages_to_their_run(app, client):
    app.config.update(DRY_RUN=True, TWILIO_FROM="+15005550006")
    journey = demo_journey()
    audience = make_audience("Buyers", 1)
    client.post("/runs/", data={"journey_id": journey.id, "audience_id": audience.id})
    drain()
    run = db.session.scalar(select(Run))
    participation = db.session.scalar(select(Participation))
    page = client.get("/outbox/").text
    assert "<code>+15005550006</code>" in page
    assert f'href="/runs/{run.id}/contacts/{participation.id}">run #{run.id}</a>' in page
    assert "dry run: recorded, not sent" in page
    assert "+1555010" in client.get(f"/outbox/?run={run.id}").text
    assert "No messages match" in client.get(f"/outbox/?run={run.id + 1}").text


# -- designer --------------------------------------------------------------------------------------


def test_the_simulator_highlights_only_the_edge_taken(app):
    doc = demo_doc()
    simulation = simulator.start(get_redis(), 1, doc, {"order_id": "7"}, real_api=False)
    simulator.reply(simulation, doc, "no", None)
    svg = diagram.render_svg(doc, path=simulation.path, path_edges=simulation.edges)
    highlighted = set(re.findall(r'class="edge edge-path" data-edge="(\d+)"', svg))
    keyword_no, timeout = 3, 4  # both ask → sorry
    assert str(keyword_no) in highlighted and str(timeout) not in highlighted


def test_the_designer_samples_the_first_audience_contact_with_the_journeys_fields(app, client):
    journey = demo_journey()
    assert samples.used_fields(demo_doc()) == {"order_id"}
    audiences.import_audience("Demo audience", DEMO_AUDIENCE_CSV.encode(), default_region="US")
    make_audience("Newer, without order ids", 1)
    assert samples.default_sample(demo_doc())["order_id"] == "A-1001"
    started = client.post(f"/journeys/{journey.id}/simulator", data={}).text
    assert "A-1001" in started and "no value" not in started
