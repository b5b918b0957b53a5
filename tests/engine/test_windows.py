"""Send windows: next opening for a zone and window, spanning midnight, days, DST (table tests)."""

from datetime import datetime

import pytest

from app.engine import validate
from app.engine.windows import closing_after, is_open, next_opening, parse_window, window_problems, zone

NY, SYDNEY, SAO_PAULO, LONDON = (
    zone(n) for n in ("America/New_York", "Australia/Sydney", "America/Sao_Paulo", "Europe/London")
)
DAYTIME = parse_window({"start": "09:00", "end": "20:00"})
NIGHT = parse_window({"start": "22:00", "end": "06:00"})
WEEKDAYS = parse_window({"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]})
FRIDAY_NIGHT = parse_window({"start": "22:00", "end": "02:00", "days": ["fri"]})
EARLY = parse_window({"start": "02:30", "end": "05:00"})
REPEATED = parse_window({"start": "01:30", "end": "03:00"})


@pytest.mark.parametrize(
    ("window", "tz", "now_utc", "expected_utc"),
    [
        # open now: the moment itself
        (DAYTIME, NY, datetime(2026, 6, 10, 15, 0), datetime(2026, 6, 10, 15, 0)),
        # before opening, same local day (09:00 EDT = 13:00 UTC)
        (DAYTIME, NY, datetime(2026, 6, 10, 11, 0), datetime(2026, 6, 10, 13, 0)),
        # after closing: next local morning
        (DAYTIME, NY, datetime(2026, 6, 11, 1, 0), datetime(2026, 6, 11, 13, 0)),
        # end is exclusive: 20:00 EDT exactly is closed
        (DAYTIME, NY, datetime(2026, 6, 11, 0, 0), datetime(2026, 6, 11, 13, 0)),
        # winter offset (EST, -5)
        (DAYTIME, NY, datetime(2026, 1, 10, 12, 0), datetime(2026, 1, 10, 14, 0)),
        # another hemisphere: Sydney 09:00 AEST (+10) in June = 23:00 UTC the day before
        (DAYTIME, SYDNEY, datetime(2026, 6, 10, 12, 0), datetime(2026, 6, 10, 23, 0)),
        # spanning midnight: open after midnight local (01:00 EDT), and before 22:00 closed
        (NIGHT, NY, datetime(2026, 6, 10, 5, 0), datetime(2026, 6, 10, 5, 0)),
        (NIGHT, NY, datetime(2026, 6, 10, 12, 0), datetime(2026, 6, 11, 2, 0)),
        # days: Saturday 2026-06-13 10:00 EDT -> Monday 09:00 EDT
        (WEEKDAYS, NY, datetime(2026, 6, 13, 14, 0), datetime(2026, 6, 15, 13, 0)),
        # Friday 17:30 -> Monday
        (WEEKDAYS, NY, datetime(2026, 6, 12, 21, 30), datetime(2026, 6, 15, 13, 0)),
        # a Friday-night window is still open early Saturday (01:00 EDT Sat), closed Saturday 03:00
        (FRIDAY_NIGHT, NY, datetime(2026, 6, 13, 5, 0), datetime(2026, 6, 13, 5, 0)),
        (FRIDAY_NIGHT, NY, datetime(2026, 6, 13, 7, 0), datetime(2026, 6, 20, 2, 0)),
        # DST spring forward (NY 2026-03-08: 02:00 EST -> 03:00 EDT): 02:30 does not exist; the window
        # opens when the clocks jump, 07:00 UTC
        (EARLY, NY, datetime(2026, 3, 8, 5, 0), datetime(2026, 3, 8, 7, 0)),
        # the day before and after the jump: normal offsets
        (EARLY, NY, datetime(2026, 3, 7, 5, 0), datetime(2026, 3, 7, 7, 30)),
        (EARLY, NY, datetime(2026, 3, 9, 5, 0), datetime(2026, 3, 9, 6, 30)),
        # DST fall back (NY 2026-11-01: 02:00 EDT -> 01:00 EST): 01:30 happens twice, the first counts
        (REPEATED, NY, datetime(2026, 11, 1, 4, 0), datetime(2026, 11, 1, 5, 30)),
        # daytime window across the London spring change (2026-03-29): 09:00 BST = 08:00 UTC
        (DAYTIME, LONDON, datetime(2026, 3, 28, 21, 0), datetime(2026, 3, 29, 8, 0)),
        # a zone without DST now (Sao Paulo, -3)
        (DAYTIME, SAO_PAULO, datetime(2026, 6, 10, 1, 0), datetime(2026, 6, 10, 12, 0)),
    ],
)
def test_next_opening(window, tz, now_utc, expected_utc):
    opening = next_opening(window, now_utc, tz)
    assert opening == expected_utc
    assert is_open(window, opening, tz)
    if opening != now_utc:
        assert not is_open(window, now_utc, tz)


def test_window_errors_name_the_field():
    fields = {
        field
        for value in (
            {"start": "9", "end": "20:00"},
            {"start": "09:00", "end": "24:00"},
            {"start": "09:00", "end": "09:00"},
            {"start": "09:00", "end": "17:00", "days": ["mon", "funday"]},
            {"start": "09:00", "end": "17:00", "days": []},
            {"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"},
        )
        for field, _message in window_problems(value)
    }
    assert fields == {"send_window.start", "send_window.end", "send_window.days", "send_window.timezone"}
    assert window_problems("9 to 5") == [
        ("send_window", 'send_window must be an object like {"start": "09:00", "end": "20:00"}')
    ]
    assert window_problems({"start": "09:00", "end": "17:00", "days": ["Mon"], "timezone": "Europe/Paris"}) == []


def test_journey_validation_names_send_window_fields(journey_doc=None):
    doc = {
        "format": "journey/v1",
        "name": "quiet",
        "send_window": {"start": "25:00", "end": "20:00"},
        "nodes": [{"id": "start", "type": "audience"}, {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "end"}],
    }
    problems = validate(doc)
    assert [problem.field for problem in problems] == ["send_window.start"]
    doc["send_window"] = {"start": "09:00", "end": "20:00", "timezone": "contact"}
    assert validate(doc) == []


def test_zone_refuses_non_iana_names():
    assert zone("Europe/Paris") is not None
    assert zone("../etc/passwd") is None
    assert zone("") is None
    assert zone(None) is None
    assert zone("Nowhere/City") is None


@pytest.mark.parametrize(
    ("window", "tz", "open_at_utc", "closes_utc"),
    [
        (DAYTIME, NY, datetime(2026, 6, 10, 15, 0), datetime(2026, 6, 11, 0, 0)),  # 20:00 EDT
        (NIGHT, NY, datetime(2026, 6, 10, 3, 0), datetime(2026, 6, 10, 10, 0)),  # 23:00 EDT -> 06:00 EDT
        (NIGHT, NY, datetime(2026, 6, 10, 7, 0), datetime(2026, 6, 10, 10, 0)),  # 03:00 EDT -> 06:00 EDT
        (FRIDAY_NIGHT, NY, datetime(2026, 6, 13, 5, 0), datetime(2026, 6, 13, 6, 0)),  # Sat 01:00 -> 02:00
    ],
)
def test_closing_after(window, tz, open_at_utc, closes_utc):
    assert is_open(window, open_at_utc, tz)
    assert closing_after(window, open_at_utc, tz) == closes_utc
    assert not is_open(window, closes_utc, tz)
