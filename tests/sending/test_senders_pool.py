"""Sender pools: a stable sender per contact and channel, per-sender limits read from the settings, the page."""

import pytest

from app.sending import senders_pool
from app.sending.senders_pool import SenderSettingError, rate_for, sender_for, senders_for

POOL = "+15005550001, +15005550003,+15005550004"


def config(**settings):
    return {"TWILIO_FROM": POOL, "TWILIO_WHATSAPP_FROM": "+15005550009,whatsapp:+15005550008", **settings}


def contacts(count: int) -> list[str]:
    return [f"+1500555{number:04d}" for number in range(count)]


def test_pools_are_read_as_twilio_writes_them():
    assert senders_for("sms", config()) == ["+15005550001", "+15005550003", "+15005550004"]
    assert senders_for("whatsapp", config()) == ["whatsapp:+15005550009", "whatsapp:+15005550008"]
    assert senders_for("sms", config(TWILIO_MESSAGING_SERVICE_SID="MG1")) == []  # the service picks
    assert sender_for("+15005550100", "sms", config(TWILIO_FROM="")) is None


def test_a_contact_keeps_its_sender_and_contacts_spread_over_the_pool():
    first = {phone: sender_for(phone, "sms", config()) for phone in contacts(600)}
    assert first == {phone: sender_for(phone, "sms", config()) for phone in contacts(600)}
    spread = [list(first.values()).count(address) for address in senders_for("sms", config())]
    assert min(spread) > 150  # about 200 each


def test_changing_the_pool_moves_only_the_contacts_that_must_move():
    before = {phone: sender_for(phone, "sms", config()) for phone in contacts(600)}
    smaller = config(TWILIO_FROM="+15005550001,+15005550004")
    after = {phone: sender_for(phone, "sms", smaller) for phone in contacts(600)}
    moved = {phone for phone in before if before[phone] != after[phone]}
    assert moved == {phone for phone in before if before[phone] == "+15005550003"}

    larger = config(TWILIO_FROM=POOL + ",+15005550005")
    grown = {phone: sender_for(phone, "sms", larger) for phone in contacts(600)}
    assert all(grown[phone] in (before[phone], "+15005550005") for phone in before)


def test_rates_default_and_overrides():
    settings = config(SENDER_RATE_LIMIT=1, SENDER_RATE_LIMITS="+15005550004=3, whatsapp:+15005550009=80")
    assert rate_for("+15005550001", settings) == 1
    assert rate_for("+15005550004", settings) == 3
    assert rate_for("whatsapp:+15005550009", settings) == 80
    assert rate_for("+15005550001", config()) == 0
    assert senders_pool.all_senders(settings)[0] == ("sms", "+15005550001", 1.0)


@pytest.mark.parametrize("bad", ["+15005550004", "+15005550004=fast", "=3", "+15005550004=-1"])
def test_a_bad_override_names_the_setting(bad):
    with pytest.raises(SenderSettingError, match="SENDER_RATE_LIMITS"):
        rate_for("+15005550001", config(SENDER_RATE_LIMITS=bad))


def test_senders_page_lists_each_sender_with_its_limit_and_recent_rate(app, client):
    app.config.update(TWILIO_FROM=POOL, SENDER_RATE_LIMIT=1, SENDER_RATE_LIMITS="+15005550004=3")
    page = client.get("/senders/")
    assert page.status_code == 200
    text = page.text
    assert all(address in text for address in ("+15005550001", "+15005550003", "+15005550004"))
    assert "3 msg/s" in text and "1 msg/s" in text
    assert 'href="/senders/"' in client.get("/").text


def test_senders_page_says_what_is_wrong_with_a_setting(app, client):
    app.config.update(SENDER_RATE_LIMITS="nonsense")
    assert "SENDER_RATE_LIMITS" in client.get("/senders/").text
