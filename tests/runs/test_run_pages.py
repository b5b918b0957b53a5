"""Run pages through the test client: start a run, the live page and its fragments, filters, timeline,
stop, the streamed CSV export (content and formula-injection safety) and the home page."""

import csv
import io
import re

import pytest
from rq import SimpleWorker

from app.extensions import db
from app.models import Audience, AudienceContact, Campaign, Contact, Journey, Message, Participation, Run
from app.queues import get_queue, get_redis
from app.runs import lifecycle
from app.runs.export import safe_cell
from tests.conftest import drain
from tests.runs.test_run_stats import FAILED_REASON, build_run

SIMPLE = {
    "format": "journey/v1",
    "name": "Hello",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Hi <<name>>!"},
        {"id": "done", "type": "end"},
    ],
    "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "done"}],
}


@pytest.fixture
def built(app):
    return build_run()


def make_audience(name: str, count: int) -> Audience:
    audience = Audience(name=name, columns=["phone", "name"], total=count)
    db.session.add(audience)
    db.session.flush()
    for n in range(count):
        contact = Contact(phone=f"+1555010{n:04d}", name=f"Person {n}", fields={"name": f"Person {n}"})
        db.session.add(contact)
        db.session.flush()
        db.session.add(AudienceContact(audience_id=audience.id, contact_id=contact.id))
    db.session.commit()
    return audience


def htmx(client, url):
    return client.get(url, headers={"HX-Request": "true"})


# -- starting a run ---------------------------------------------------------------


def test_start_page_lists_journeys_and_audiences_and_says_which_version_runs(client):
    journey = Journey(name="Hello", draft=SIMPLE)
    db.session.add(journey)
    db.session.commit()
    audience = make_audience("Friends", 3)
    page = client.get("/runs/new")
    assert page.status_code == 200
    assert "Hello" in page.text and "Friends (3 contacts)" in page.text
    summary = client.get(f"/runs/new/_partials/summary?journey_id={journey.id}&audience_id={audience.id}")
    assert "never published" in summary.text and "version 1" in summary.text
    assert "3 contacts" in summary.text


def test_start_page_refuses_missing_choices_and_broken_journeys(client):
    response = client.post("/runs/", data={})
    assert response.status_code == 400
    assert "Choose a journey to run." in response.text and "Choose an audience" in response.text
    broken = Journey(name="Broken", draft={"format": "journey/v1", "name": "Broken", "nodes": [], "edges": []})
    db.session.add(broken)
    db.session.commit()
    audience = make_audience("Friends", 1)
    summary = client.get(f"/runs/new/_partials/summary?journey_id={broken.id}")
    assert "cannot run" in summary.text
    response = client.post("/runs/", data={"journey_id": broken.id, "audience_id": audience.id})
    assert response.status_code == 400 and "The journey cannot run" in response.text
    assert db.session.scalar(db.select(db.func.count()).select_from(Run)) == 0


def test_starting_a_run_from_the_page_runs_it(client, fake_twilio):
    journey = Journey(name="Hello", draft=SIMPLE)
    db.session.add(journey)
    db.session.commit()
    audience = make_audience("Friends", 3)
    response = client.post("/runs/", data={"journey_id": journey.id, "audience_id": audience.id})
    assert response.status_code == 302
    run_id = int(re.search(r"/runs/(\d+)$", response.headers["Location"]).group(1))
    page = client.get(f"/runs/{run_id}")
    assert 'hx-trigger="every 1s"' in page.text  # live while it runs
    drain()
    live = htmx(client, f"/runs/{run_id}/_partials/live")
    assert 'id="run-status">completed' in live.text
    assert "hx-trigger" not in live.text  # polling stops once the run ended
    assert re.search(r'id="state-completed" data-count="3"', live.text)
    assert len(fake_twilio.calls) == 3
    listing = client.get("/runs/")
    assert f"/runs/{run_id}" in listing.text and "Friends" in listing.text and "v1" in listing.text


# -- the run page -----------------------------------------------------------------


def test_run_page_shows_where_everyone_is_and_what_went_wrong(client, built):
    run = built["run"]
    page = client.get(f"/runs/{run.id}")
    assert page.status_code == 200
    text = page.text
    assert "Delivery check" in text and ">version 1</a>" in text and "Buyers" in text
    assert "builder@example.com" in text
    assert 'hx-trigger="every 1s"' in text
    assert re.search(r'id="state-waiting" data-count="2"', text)
    assert re.search(r'id="messages-sent"><b>4</b>', text)
    assert re.search(r'id="messages-undelivered"><b>1</b>', text)
    assert "<svg" in text and "2 here" in text and "6 visits" in text  # node badges on the diagram
    assert "The recipient&#39;s phone is unreachable" in text or "The recipient's phone is unreachable" in text
    assert "30005" in text and "error=30003" in text  # failures by code, each linking to its contacts
    assert FAILED_REASON.split(":")[0] in text.replace("&#39;", "'")
    assert "maybe" in text  # the unmatched reply
    assert 'id="overdue-alarm"' in text and "overdue=1" in text
    assert 'id="stop-run"' in text
    assert "Ana" in text and "Fred" in text  # the contacts table


def test_contacts_fragment_filters_searches_and_pages(client, built):
    run = built["run"]
    waiting = htmx(client, f"/runs/{run.id}/contacts?state=waiting")
    assert "<td>Bruno</td>" in waiting.text and "<td>Ana</td>" not in waiting.text
    assert "2 contacts match" in waiting.text
    by_node = htmx(client, f"/runs/{run.id}/contacts?node=hello")
    assert "<td>Carla</td>" in by_node.text and "<td>Dora</td>" in by_node.text and "<td>Bruno</td>" not in by_node.text
    found = htmx(client, f"/runs/{run.id}/contacts?q=bru")
    assert "<td>Bruno</td>" in found.text and "1 contact match" in found.text
    failed = htmx(client, f"/runs/{run.id}/contacts?error=30003")
    assert "<td>Carla</td>" in failed.text and "<td>Bruno</td>" not in failed.text
    overdue = htmx(client, f"/runs/{run.id}/contacts?overdue=1")
    assert "<td>Dora</td>" in overdue.text and "<td>Bruno</td>" not in overdue.text
    # Without htmx the same address opens the whole page with the filter applied.
    plain = client.get(f"/runs/{run.id}/contacts?state=waiting")
    assert plain.status_code == 302 and plain.headers["Location"].endswith(f"/runs/{run.id}?state=waiting#contacts")
    filtered_page = client.get(f"/runs/{run.id}?state=waiting")
    assert "<td>Bruno</td>" in filtered_page.text and "2 contacts match" in filtered_page.text


def test_contacts_fragment_pages_forward_and_back(client, built):
    run = built["run"]
    ids = sorted(participation.id for participation in db.session.scalars(db.select(Participation)))
    after = htmx(client, f"/runs/{run.id}/contacts?after={ids[3]}")
    assert "<td>Fred</td>" in after.text and "<td>Ana</td>" not in after.text and 'id="contacts-prev"' in after.text
    before = htmx(client, f"/runs/{run.id}/contacts?before={ids[1]}")
    assert "<td>Ana</td>" in before.text and "<td>Bruno</td>" not in before.text and 'id="contacts-next"' in before.text


def test_timeline_shows_path_replies_messages_and_timer(client, built):
    run, ana, bruno = built["run"], built["ana"], built["bruno"]
    panel = htmx(client, f"/runs/{run.id}/contacts/{ana.id}")
    assert panel.status_code == 200
    text = panel.text
    assert "because of the reply" in text and "yes" in text
    assert "sent" in text and "delivered" in text and "read" in text
    assert "<html" not in text  # a fragment for the panel
    full = client.get(f"/runs/{run.id}/contacts/{bruno.id}")
    assert "<html" in full.text and "Wakes" in full.text and "maybe" in full.text
    assert client.get(f"/runs/{run.id + 1}/contacts/{ana.id}").status_code == 404


def test_stop_asks_first_then_stops_everyone_and_cancels_queued_messages(client, built):
    run, dora = built["run"], built["dora"]
    confirm = client.get(f"/runs/{run.id}/stop")
    assert confirm.status_code == 200 and "3 contacts</b> not yet" in confirm.text
    response = client.post(f"/runs/{run.id}/stop")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Run, run.id).status == "stopped"
    states = {
        participation.contact.name: participation.state
        for participation in db.session.scalars(db.select(Participation))
    }
    assert states["Bruno"] == states["Dora"] == "stopped" and states["Ana"] == "completed"
    queued = db.session.scalar(db.select(Message).where(Message.participation_id == dora.id))
    assert queued.status == "canceled"
    live = htmx(client, f"/runs/{run.id}/_partials/live")
    assert "hx-trigger" not in live.text and 'id="stop-run"' not in live.text
    assert client.post(f"/runs/{run.id}/stop").status_code == 302  # stopping again just says so


def test_export_streams_every_contact_safe_for_spreadsheets(client, built):
    run = built["run"]
    response = client.get(f"/runs/{run.id}/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["state"] for row in rows] == ["completed", "waiting", "failed", "sending", "waiting", "filtered"]
    by_phone = {row["phone"]: row for row in rows}
    ana, eve = by_phone["'+15550000001"], by_phone["'+15550000005"]
    assert ana["name"] == "Ana" and ana["node"] == "done" and ana["var.reply"] == "yes" and ana["replies"] == "yes"
    assert eve["name"] == "'=cmd|' /C calc'!A0"  # would be a formula in a spreadsheet without the quote
    assert eve["var.reply"] == "'-2+3"
    assert eve["other_variables"] == '{"score": "@SUM(1)"}'
    assert by_phone["'+15550000002"]["replies"] == "maybe"
    assert by_phone["'+15550000003"]["error"] == FAILED_REASON


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (3, "3"),
        ({"b": 1}, '{"b": 1}'),
        (True, "true"),
    ],
)
def test_safe_cell(value, cell):
    assert safe_cell(value) == cell


def test_export_of_many_contacts_reads_them_page_by_page(client, app, monkeypatch):
    from app.runs import export as results_export

    monkeypatch.setattr(results_export, "PAGE_SIZE", 7)
    journey = Journey(name="Hello", draft=SIMPLE)
    db.session.add(journey)
    db.session.commit()
    audience = make_audience("Many", 30)
    run_id = lifecycle.start_run(journey, audience_id=audience.id).id
    drain()
    response = client.get(f"/runs/{run_id}/export.csv")
    chunks = list(response.response)
    assert len(chunks) == 1 + 5  # the header, then 30 contacts in pages of 7
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len(rows) == 30 and len({row["participation_id"] for row in rows}) == 30


# -- the home page ------------------------------------------------------------------


def test_home_shows_active_runs_campaigns_and_queue_health(client, built):
    campaign = Campaign(name="Spring sale", body="Hi", status="sending", total=2)
    db.session.add(campaign)
    db.session.flush()
    db.session.add_all(
        [
            Message(campaign_id=campaign.id, to_phone="+15550009001", channel="sms", status="delivered", sid="SMa"),
            Message(campaign_id=campaign.id, to_phone="+15550009002", channel="sms", status="queued"),
        ]
    )
    db.session.commit()
    get_queue("flows").enqueue("app.tasks.flows.advance", [])
    page = client.get("/")
    text = page.text
    assert f"/runs/{built['run'].id}" in text and "Delivery check" in text
    assert "Spring sale" in text
    assert 'data-queue="flows"' in text and 'data-queue="messages"' in text
    flows_row = re.search(r'data-queue="flows">(.*?)</tr>', text, re.S).group(1)
    assert '<td class="num">1</td>' in flows_row  # one job waiting
    assert 'id="no-worker"' in text and "No worker is running" in text
    assert "/rq/" in text


def test_home_has_no_warning_while_a_worker_is_alive(client):
    worker = SimpleWorker([get_queue("flows")], connection=get_redis())
    worker.register_birth()
    try:
        page = client.get("/")
        assert 'id="no-worker"' not in page.text
        assert "1</b> worker alive" in page.text
    finally:
        worker.register_death()
