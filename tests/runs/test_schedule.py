"""Schedules and send windows: start_at on runs and campaigns, messages held for their window.

Time is driven through the sweeper's clock (`sweep(now=...)`); one test waits
for real, with a worker process (and its sweeper) firing a scheduled run.
"""

import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import Worker
from sqlalchemy import select

from app.config import PROJECT_ROOT
from app.contacts.timezones import contact_zone
from app.extensions import db
from app.models import Campaign, Message, Run, utcnow
from app.queues import get_redis
from app.runs import schedule, sweeper
from tests.conftest import worker_env
from tests.runs.test_runs_helpers import create_journey, linear_journey, participations, phones, run_row, settle


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat()


def _closed_window(hours_until_open: int = 2) -> dict:
    """A one-hour UTC window opening `hours_until_open` hours from now (so closed now)."""
    opens = (datetime.now(UTC) + timedelta(hours=hours_until_open)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    return {"start": opens.strftime("%H:%M"), "end": closes.strftime("%H:%M"), "timezone": "UTC"}


@pytest.mark.parametrize(
    ("start_at", "message"),
    [
        ("tomorrow", "is not an ISO 8601 date-time"),
        ("2099-01-01T09:00:00", "needs a UTC offset"),
        ("2001-01-01T09:00:00+00:00", "is in the past"),
        (12, "start_at must be an ISO 8601 date-time"),
    ],
)
def test_bad_start_at_is_refused_naming_the_field(app, api, start_at, message):
    journey = create_journey(linear_journey("hi"))
    response = api.post(
        f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": phones(1)[0]}], "start_at": start_at}
    )
    assert response.status_code == 400
    assert "start_at" in response.json["error"] and message in response.json["error"]
    assert db.session.query(Run).count() == 0


def test_a_scheduled_run_starts_at_its_time_once_even_after_a_redis_flush(app, api, fake_twilio):
    journey = create_journey(linear_journey("hi <<name>>"))
    start_at = utcnow() + timedelta(hours=2, minutes=10)
    response = api.post(
        f"/api/journeys/{journey.id}/runs",
        json={"contacts": [{"phone": phone, "name": "Ann"} for phone in phones(3)], "start_at": _iso(start_at)},
    )
    assert response.status_code == 202 and response.json["status"] == "scheduled"
    run_id = response.json["run_id"]
    assert run_row(run_id).start_at == start_at.replace(microsecond=start_at.microsecond)
    assert schedule.starts_in(run_row(run_id).start_at, utcnow()) in ("2 h 10 min", "2 h 9 min")
    settle()
    assert sweeper.sweep(start_at - timedelta(seconds=1)).get("scheduled_runs") == 0
    settle()
    assert fake_twilio.calls == [] and participations(run_id) == {}
    get_redis().flushdb()  # the schedule lives in the database
    first = sweeper.sweep(start_at + timedelta(seconds=1))
    second = sweeper.sweep(start_at + timedelta(seconds=2))
    settle()
    assert first["scheduled_runs"] == 1 and second["scheduled_runs"] == 0
    sent = [call.to for call in fake_twilio.calls]
    print(f"scheduled run: sent {len(sent)}, duplicated {len(sent) - len(set(sent))}, lost {3 - len(set(sent))}")
    assert sorted(sent) == sorted(phones(3))
    assert run_row(run_id).status == "completed"


def test_a_scheduled_run_can_be_stopped_or_started_now(app, api, fake_twilio):
    journey = create_journey(linear_journey("hi"))
    later = _iso(utcnow() + timedelta(days=1))
    stopped = api.post(
        f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": phones(1)[0]}], "start_at": later}
    )
    started = api.post(
        f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": phones(1, 5)[0]}], "start_at": later}
    )
    assert api.post(f"/api/runs/{stopped.json['run_id']}/stop").json["status"] == "stopped"
    assert schedule.start_now(run_row(started.json["run_id"]))
    sweeper.sweep(utcnow() + timedelta(seconds=1))
    settle()
    assert [call.to for call in fake_twilio.calls] == phones(1, 5)
    assert run_row(stopped.json["run_id"]).status == "stopped"


def test_a_message_outside_the_send_window_waits_as_delayed_then_goes(app, api, fake_twilio):
    doc = linear_journey("quiet hours <<name>>")
    doc["send_window"] = _closed_window(2)
    journey = create_journey(doc)
    run_id = api.post(f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": phones(1)[0]}]}).json["run_id"]
    settle()
    participation = participations(run_id)[phones(1)[0]]
    assert participation.state == "delayed" and participation.wake_at > utcnow() + timedelta(minutes=100)
    message = db.session.scalar(select(Message))
    assert message.status == "queued" and message.not_before == participation.wake_at
    assert fake_twilio.calls == []
    settle()
    sweeper.sweep(participation.wake_at - timedelta(seconds=1))  # not yet
    settle()
    assert fake_twilio.calls == []
    sweeper.sweep(participation.wake_at + timedelta(seconds=1))
    settle()
    assert [call.body for call in fake_twilio.calls] == ["quiet hours "]
    assert participations(run_id)[phones(1)[0]].state == "completed"


def test_a_campaign_window_spreads_the_sends_at_the_rate(app, api, fake_twilio):
    app.config["MESSAGE_RATE_LIMIT"] = 2
    window = _closed_window(1)
    response = api.post(
        "/api/campaign/send",
        json={"body": "hi", "rows": [{"phone": phone} for phone in phones(6)], "send_window": window},
    )
    assert response.status_code == 202, response.text
    times = sorted(db.session.scalars(select(Message.not_before)))
    assert times[0] > utcnow() + timedelta(minutes=30)
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:])] == [0.5] * 5
    settle()
    assert fake_twilio.calls == []
    sweeper.sweep(times[2] + timedelta(milliseconds=1))  # the first three slots are due
    settle()
    assert len(fake_twilio.calls) == 3


def test_a_scheduled_campaign_sends_at_its_time(app, api, fake_twilio):
    start_at = utcnow() + timedelta(minutes=30)
    bad = api.post("/api/campaign/send", json={"body": "hi", "rows": [{"phone": phones(1)[0]}], "start_at": "soon"})
    assert bad.status_code == 400 and bad.json["field"] == "start_at"
    window = api.post(
        "/api/campaign/send",
        json={"body": "hi", "rows": [{"phone": phones(1)[0]}], "send_window": {"start": "9", "end": "10:00"}},
    )
    assert window.status_code == 400 and window.json["field"] == "send_window.start"
    response = api.post(
        "/api/campaign/send", json={"body": "hi", "rows": [{"phone": p} for p in phones(2)], "start_at": _iso(start_at)}
    )
    assert response.status_code == 202 and response.json["status"] == "scheduled"
    settle()
    assert fake_twilio.calls == []
    counts = sweeper.sweep(start_at + timedelta(seconds=1))
    settle()
    assert counts["scheduled_campaigns"] == 1 and len(fake_twilio.calls) == 2
    assert db.session.get(Campaign, response.json["campaignId"]).status != "scheduled"


def test_contact_zone_field_then_phone_country_then_default(app):
    assert contact_zone({"Timezone": "Asia/Tokyo"}, "+14155550100").key == "Asia/Tokyo"
    assert contact_zone({"timezone": "Not/AZone"}, "+5511987654321").key == "America/Sao_Paulo"
    assert contact_zone({}, "+442071234567").key == "Europe/London"
    assert contact_zone({}, "+14155550100").key == "America/Los_Angeles"
    assert contact_zone({}, "not a phone", "Europe/Lisbon").key == "Europe/Lisbon"


def test_a_worker_fires_a_scheduled_run_within_five_seconds(app, api, fake_twilio, tmp_path):
    """The one real wait: a running worker process (with its sweeper) starts a run 2 s after it was scheduled."""
    journey = create_journey(linear_journey("on time"))
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "1"],
        cwd=PROJECT_ROOT,
        env=worker_env(app, fake_twilio, MESSAGE_RATE_LIMIT=0),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not Worker.all(connection=get_redis()) and time.monotonic() < deadline:
            time.sleep(0.1)
        start_at = utcnow() + timedelta(seconds=2)
        run_id = api.post(
            f"/api/journeys/{journey.id}/runs",
            json={"contacts": [{"phone": phones(1)[0]}], "start_at": _iso(start_at)},
        ).json["run_id"]
        calls = fake_twilio.wait_for_calls(1, timeout=20)
        sent_at = utcnow()
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        log.close()
    print(
        f"scheduled run fired; its message reached Twilio {(sent_at - start_at).total_seconds():.2f} s after start_at"
    )
    assert [call.to for call in calls] == phones(1)
    assert run_row(run_id).status in ("active", "completed")


@pytest.mark.slow
def test_a_worker_sends_a_held_message_when_its_window_really_opens(app, api, fake_twilio, tmp_path):
    """The real wait for a window opening (short form, driven through the sweeper's clock, above): a window
    opening at the next whole minute, a running worker process; up to a minute."""
    opens = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    doc = linear_journey("the window opened")
    doc["send_window"] = {"start": opens.strftime("%H:%M"), "end": (opens + timedelta(hours=1)).strftime("%H:%M")}
    doc["send_window"]["timezone"] = "UTC"
    journey_id = create_journey(doc).id
    run_id = api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": [{"phone": phones(1)[0]}]}).json["run_id"]
    settle()
    assert participations(run_id)[phones(1)[0]].state == "delayed" and fake_twilio.calls == []
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "1"],
        cwd=PROJECT_ROOT,
        env=worker_env(app, fake_twilio, MESSAGE_RATE_LIMIT=0),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        calls = fake_twilio.wait_for_calls(1, timeout=90)
        sent_at = datetime.now(UTC)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        log.close()
    print(f"held message sent {(sent_at - opens).total_seconds():.2f} s after its window opened; sent {len(calls)}")
    assert [call.body for call in calls] == ["the window opened"]
    assert sent_at >= opens


def test_the_upload_api_takes_a_schedule_too(app, api):
    def upload(**fields):
        data = {"file": (io.BytesIO(b"phone\n+15005550001\n"), "c.csv"), "body": "hi", **fields}
        return api.post("/api/campaign/upload", data=data, content_type="multipart/form-data")

    assert upload(send_window="9 to 5").json["field"] == "send_window"
    assert upload(start_at="yesterday").json["field"] == "start_at"
    later = _iso(utcnow() + timedelta(hours=1))
    answer = upload(start_at=later, send_window='{"start": "08:00", "end": "18:00"}')
    assert answer.status_code == 202 and answer.json["status"] == "scheduled"
    campaign = db.session.get(Campaign, answer.json["campaignId"])
    assert campaign.send_window == {"start": "08:00", "end": "18:00"}
