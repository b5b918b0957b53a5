"""The designer's journey settings: send window fields saved into the draft, problems named by field."""

import pytest
from werkzeug.datastructures import MultiDict

from app.journeys import store as journeys
from app.journeys.send_window_settings import apply_send_window
from tests.journeys.test_designer import draft_of, load_example, post


@pytest.fixture
def welcome(client):
    return journeys.import_document(load_example("welcome"))


def test_apply_send_window_reads_the_fields():
    doc = {}
    form = MultiDict(
        [("window_start", "22:00"), ("window_end", "06:00"), ("window_days", "fri"), ("window_days", "sat")]
        + [("window_timezone", "contact")]
    )
    apply_send_window(doc, form)
    assert doc["send_window"] == {"start": "22:00", "end": "06:00", "days": ["fri", "sat"]}
    every_day = MultiDict([("window_start", "09:00"), ("window_end", "20:00"), ("window_timezone", "Europe/Lisbon")])
    every_day.setlist("window_days", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    apply_send_window(doc, every_day)
    assert doc["send_window"] == {"start": "09:00", "end": "20:00", "timezone": "Europe/Lisbon"}
    apply_send_window(doc, MultiDict({"window_start": "", "window_end": ""}))
    assert "send_window" not in doc


def test_settings_form_saves_the_window_and_shows_its_problem(client, welcome):
    settings = {"name": "Welcome", "description": "", "channel": "sms"}
    post(client, f"/journeys/{welcome.id}/settings", welcome, **settings, window_start="09:00", window_end="20:00")
    assert draft_of(welcome)["send_window"] == {"start": "09:00", "end": "20:00"}
    page = client.get(f"/journeys/{welcome.id}/settings", headers={"HX-Request": "true"})
    assert 'name="window_start" value="09:00"' in page.text
    response = post(
        client, f"/journeys/{welcome.id}/settings", welcome, **settings, window_start="9", window_end="20:00"
    )
    assert "send_window.start must be a time HH:MM" in response.text
    post(client, f"/journeys/{welcome.id}/settings", welcome, **settings, window_start="", window_end="")
    assert "send_window" not in draft_of(welcome)
    assert load_example("welcome").get("send_window") is None
