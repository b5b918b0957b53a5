"""Schedule and send-window pages: a campaign scheduled from its preview with a window, the home page's
scheduled list, Start now with confirmation, the run page's window waits and the start page's refusals."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Campaign, Message, utcnow
from app.runs import sweeper
from tests.campaigns.test_campaigns import draft_of
from tests.runs.test_runs_helpers import create_journey, linear_journey, phones, settle


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_schedule_a_campaign_with_a_window_from_its_preview(client, fake_twilio):
    campaign_id = draft_of(client).id
    preview = client.get(f"/campaigns/{campaign_id}/preview")
    assert 'id="campaign-preflight"' in preview.text and 'name="start_at_local"' in preview.text
    start = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    form = {"name": "Later", "body": "Hi <<name>>", "channel": "sms", "tz_offset": "120"}
    bad = client.post(f"/campaigns/{campaign_id}/send", data={**form, "start_at_local": "2001-01-01T10:00"})
    assert bad.status_code == 400 and "start_at" in bad.text and "is in the past" in bad.text
    bad_window = client.post(
        f"/campaigns/{campaign_id}/send", data={**form, "window_start": "25:00", "window_end": "10:00"}
    )
    assert bad_window.status_code == 400 and "send_window.start must be a time HH:MM" in bad_window.text
    fragment = client.post(
        f"/campaigns/{campaign_id}/preview", data={**form, "start_at_local": _local(start + timedelta(hours=2))}
    )
    assert 'hx-swap-oob="true"' in fragment.text and "Schedule" in fragment.text
    local = start + timedelta(hours=2)  # the browser is at UTC+2
    sent = client.post(
        f"/campaigns/{campaign_id}/send",
        data={
            **form,
            "start_at_local": _local(local),
            "window_start": "00:00",
            "window_end": "23:59",
            "window_timezone": "UTC",
        },
    )
    assert sent.status_code == 302, sent.text
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.status == "scheduled" and campaign.start_at == start.replace(tzinfo=None)
    total = campaign.total
    assert campaign.send_window == {"start": "00:00", "end": "23:59", "timezone": "UTC"}
    assert all(m >= campaign.start_at for m in db.session.scalars(select(Message.not_before)))
    home = client.get("/")
    assert 'id="scheduled"' in home.text and "Campaign “Later”" in home.text and "starts in 2 h 59 min" in home.text
    detail = client.get(f"/campaigns/{campaign_id}")
    assert 'id="campaign-schedule"' in detail.text and "Send window: 00:00 to 23:59" in detail.text
    confirm = client.get(f"/campaigns/{campaign_id}/start-now")
    assert confirm.status_code == 200 and "confirm-start-now" in confirm.text
    assert client.post(f"/campaigns/{campaign_id}/start-now").status_code == 302
    sweeper.sweep(utcnow() + timedelta(seconds=1))
    settle()
    assert len(fake_twilio.calls) == total


def test_run_page_counts_contacts_waiting_for_the_window(client, api, fake_twilio):
    doc = linear_journey("quiet")
    opens = (datetime.now(UTC) + timedelta(hours=5)).replace(second=0, microsecond=0)
    doc["send_window"] = {
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    journey = create_journey(doc)
    run_id = api.post(f"/api/journeys/{journey.id}/runs", json={"contacts": [{"phone": p} for p in phones(3)]}).json[
        "run_id"
    ]
    settle()
    page = client.get(f"/runs/{run_id}")
    assert 'id="window-waits"' in page.text and "<b>3</b> contacts wait for the send window" in page.text
    assert f'datetime="{opens.replace(tzinfo=None).isoformat()}Z"' in page.text
    participation_id = db.session.scalar(select(Message.participation_id))
    timeline = client.get(f"/runs/{run_id}/contacts/{participation_id}")
    assert "outside the send window: waits until" in timeline.text and "Wakes" in timeline.text


def test_scheduled_run_page_start_now_and_start_page_refusals(client, api, fake_twilio):
    journey_id = create_journey(linear_journey("hi")).id
    later = (utcnow() + timedelta(days=2)).replace(tzinfo=UTC).isoformat()
    run_id = api.post(
        f"/api/journeys/{journey_id}/runs", json={"contacts": [{"phone": phones(1)[0]}], "start_at": later}
    ).json["run_id"]
    page = client.get(f"/runs/{run_id}")
    assert 'id="run-schedule"' in page.text and 'Starts in <b id="starts-in">1 d 23 h</b>' in page.text
    assert client.get(f"/runs/{run_id}/start-now").status_code == 200
    assert client.post(f"/runs/{run_id}/start-now").status_code == 302
    sweeper.sweep(utcnow() + timedelta(seconds=1))
    settle()
    assert [call.to for call in fake_twilio.calls] == phones(1)
    new_page = client.get(f"/runs/new?journey_id={journey_id}")
    assert 'id="start_at_local"' in new_page.text and "schedule.js" in new_page.text
