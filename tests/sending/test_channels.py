"""The Twilio sender, through the real twilio SDK, against the fake Twilio HTTP server."""

import json
import re
import signal
import socket
import time

import pytest

from app.sending.channels import (
    CHANNELS,
    DryRunSender,
    OutboundMessage,
    SenderSettings,
    TwilioSender,
    classify_error,
    explain_error,
    get_sender,
)

STATUS_URL = "https://app.example.com/webhooks/twilio/status"


def settings_for(fake, **overrides) -> SenderSettings:
    values = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "sms_from": "+15005550001",
        "whatsapp_from": "whatsapp:+15005550002",
        "api_base_url": fake.base_url,
    }
    values.update(overrides)
    return SenderSettings(**values)


@pytest.fixture
def send(fake_twilio):
    """Send messages with a fresh sender built from settings overrides; close it afterwards."""
    senders = []

    def send_with(messages, **overrides):
        sender = get_sender(settings_for(fake_twilio, **overrides))
        senders.append(sender)
        return sender.send_many(messages)

    yield send_with
    for sender in senders:
        sender.close()


def sms(key="1", to="+15551230001", body="hi", **fields) -> OutboundMessage:
    return OutboundMessage(key=key, to=to, channel="sms", body=body, **fields)


def test_sms_from_number_sends_the_fields_twilio_expects(send, fake_twilio):
    [result] = send([sms(status_callback=STATUS_URL)])

    assert result.ok and result.key == "1"
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.sid)
    assert result.status == "queued"
    [call] = fake_twilio.calls
    assert call.sid == result.sid
    assert call.fields == {"To": "+15551230001", "From": "+15005550001", "Body": "hi", "StatusCallback": STATUS_URL}


def test_messaging_service_wins_over_from_number(send, fake_twilio):
    [result] = send([sms()], messaging_service_sid="MG" + "1" * 32)

    assert result.ok
    [call] = fake_twilio.calls
    assert call.fields["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in call.fields


def test_whatsapp_body_uses_whatsapp_addresses(send, fake_twilio):
    message = OutboundMessage(
        key="w", to="+15551230002", channel="whatsapp", body="Olá!", media_url="https://x.test/a.png"
    )

    [result] = send([message], whatsapp_from="+15005550002")  # a plain number is accepted too

    assert result.ok
    [call] = fake_twilio.calls
    assert call.fields["To"] == "whatsapp:+15551230002"
    assert call.fields["From"] == "whatsapp:+15005550002"
    assert call.fields["Body"] == "Olá!"
    assert call.fields["MediaUrl"] == "https://x.test/a.png"


def test_whatsapp_content_template_sends_sid_and_variables(send, fake_twilio):
    variables = json.dumps({"1": "Ann", "2": "order 42"})
    template = OutboundMessage(
        key="t",
        to="whatsapp:+15551230003",
        channel="whatsapp",
        content_sid="HX" + "a" * 32,
        content_variables=variables,
    )
    as_dict = OutboundMessage(
        key="d", to="+15551230004", channel="whatsapp", content_sid="HX" + "b" * 32, content_variables={"1": "Zoë"}
    )

    results = send([template, as_dict])

    assert all(result.ok for result in results)
    calls = {call.to: call for call in fake_twilio.calls}
    assert calls["whatsapp:+15551230003"].fields == {
        "To": "whatsapp:+15551230003",
        "From": "whatsapp:+15005550002",
        "ContentSid": "HX" + "a" * 32,
        "ContentVariables": variables,
    }
    assert json.loads(calls["whatsapp:+15551230004"].fields["ContentVariables"]) == {"1": "Zoë"}


def test_429_is_transient(send, fake_twilio):
    fake_twilio.fail_next(1, status=429, code=20429)

    [result] = send([sms()])

    assert not result.ok and result.transient
    assert (result.http_status, result.error_code) == (429, 20429)
    assert "too many requests" in result.error_message
    assert fake_twilio.calls == []


def test_500_is_transient(send, fake_twilio):
    fake_twilio.fail_next(1, status=500, code=20500, message="Internal Server Error")

    [result] = send([sms()])

    assert not result.ok and result.transient
    assert result.http_status == 500


def test_invalid_number_is_permanent_and_explained_while_the_rest_of_the_batch_goes_out(send, fake_twilio):
    fake_twilio.fail_for("+15551230666", status=400, code=21211)

    results = send([sms("a"), sms("bad", to="+15551230666"), sms("c", to="+15551230003")])

    assert [result.ok for result in results] == [True, False, True]
    bad = results[1]
    assert not bad.transient
    assert (bad.http_status, bad.error_code) == (400, 21211)
    assert bad.error_message.startswith("The recipient's phone number is not a valid phone number.")
    assert len(fake_twilio.calls) == 2


def test_unsubscribed_recipient_is_permanent(send, fake_twilio):
    fake_twilio.fail_for("+15551230007", status=400, code=21610)

    [result] = send([OutboundMessage(key="s", to="+15551230007", channel="whatsapp", body="hi")])

    assert not result.ok and not result.transient
    assert "replied STOP" in result.error_message


def test_wrong_credentials_are_permanent(send, fake_twilio):
    [result] = send([sms()], auth_token="not-the-token")

    assert not result.ok and not result.transient
    assert (result.http_status, result.error_code) == (401, 20003)
    assert "TWILIO_AUTH_TOKEN" in result.error_message
    assert "not-the-token" not in result.error_message


def test_connection_refused_is_transient(send):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    [result] = send([sms()], api_base_url=f"http://127.0.0.1:{closed_port}")

    assert not result.ok and result.transient
    assert result.http_status is None and result.error_code is None
    assert "Could not connect to Twilio" in result.error_message


def test_timeout_is_transient(send, fake_twilio):
    fake_twilio.set_latency(2.0)

    [result] = send([sms()], timeout=0.2)

    assert not result.ok and result.transient
    assert "did not answer within 0.2 s" in result.error_message


def test_missing_sender_setting_is_a_permanent_failure_not_an_exception(send, fake_twilio):
    results = send(
        [sms("s"), OutboundMessage(key="w", to="+15551230001", channel="whatsapp", body="hi")],
        sms_from=None,
        whatsapp_from=None,
    )

    assert [(result.ok, result.transient) for result in results] == [(False, False), (False, False)]
    assert results[0].error_message.startswith("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is not set")
    assert results[1].error_message.startswith("TWILIO_WHATSAPP_FROM is not set")
    assert fake_twilio.attempts == []


def test_missing_credentials_fail_every_message(send, fake_twilio):
    [result] = send([sms()], account_sid=None, auth_token=None)

    assert not result.ok and not result.transient
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set" in result.error_message
    assert fake_twilio.attempts == []


def test_unsendable_messages_are_refused_before_calling_twilio(send, fake_twilio):
    results = send(
        [sms("empty", body=""), sms("nobody", to=" "), OutboundMessage(key="fax", to="+1555", channel="fax")]
    )

    assert [result.ok for result in results] == [False, False, False]
    assert "body, a content template or media is required" in results[0].error_message
    assert "recipient phone number is empty" in results[1].error_message
    assert "Unknown channel 'fax'" in results[2].error_message
    assert fake_twilio.attempts == []


def test_dry_run_sends_nothing_and_reports_sent(fake_twilio):
    sender = get_sender(settings_for(fake_twilio, dry_run=True))

    results = sender.send_many([sms("a"), sms("b", to="+15551230002")])
    sender.close()

    assert isinstance(sender, DryRunSender)
    assert [result.key for result in results] == ["a", "b"]
    assert all(result.ok and result.status == "sent" for result in results)
    assert all(re.fullmatch(r"DRY[0-9a-f]{32}", result.sid) for result in results)
    assert len({result.sid for result in results}) == 2
    assert fake_twilio.attempts == []


def test_500_messages_at_100_ms_go_out_concurrently_in_input_order(send, fake_twilio):
    fake_twilio.set_latency(0.1)
    fake_twilio.fail_for("+15557770013", status=400, code=21614)
    messages = [sms(str(number), to=f"+1555777{number:04d}", body=f"message {number}") for number in range(500)]

    started = time.monotonic()
    results = send(messages)
    elapsed = time.monotonic() - started

    assert elapsed < 10  # one at a time would take 50 s
    assert [result.key for result in results] == [message.key for message in messages]
    assert sum(not result.ok for result in results) == 1 and results[13].error_code == 21614
    to_by_sid = {call.sid: call.to for call in fake_twilio.calls}
    assert all(to_by_sid[result.sid] == message.to for result, message in zip(results, messages) if result.ok)
    assert 1 < fake_twilio.max_in_flight <= 100


def test_concurrency_setting_caps_calls_in_flight(send, fake_twilio):
    fake_twilio.set_latency(0.05)

    results = send([sms(str(number)) for number in range(40)], concurrency=5)

    assert all(result.ok for result in results)
    assert 1 < fake_twilio.max_in_flight <= 5


def test_send_many_can_be_called_again_and_after_close(fake_twilio):
    sender = get_sender(settings_for(fake_twilio))
    assert isinstance(sender, TwilioSender)

    first = sender.send_many([sms("1")])
    second = sender.send_many([sms("2"), sms("3")])
    sender.close()
    third = sender.send_many([sms("4")])
    sender.close()

    assert [result.ok for result in first + second + third] == [True] * 4
    assert len(fake_twilio.calls) == 4
    assert sender.send_many([]) == []


def test_edge_and_region_settings_still_reach_the_configured_base_url(send, fake_twilio, monkeypatch):
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    [result] = send([sms()])

    assert result.ok
    assert len(fake_twilio.calls) == 1


def test_settings_never_show_the_auth_token():
    settings = SenderSettings("AC123", "very-secret-token", sms_from="+15005550001")

    assert "very-secret-token" not in repr(settings)
    assert "very-secret-token" not in repr(TwilioSender(settings))


def test_settings_from_app_config():
    config = {
        "TWILIO_ACCOUNT_SID": "AC123",
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_FROM": "+15005550001",
        "TWILIO_MESSAGING_SERVICE_SID": None,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+15005550002",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:8765",
        "DRY_RUN": False,
        "SEND_CONCURRENCY": 50,
    }

    settings = SenderSettings.from_config(config)

    assert (settings.sms_from, settings.whatsapp_from, settings.concurrency) == (
        "+15005550001",
        "whatsapp:+15005550002",
        50,
    )
    assert settings.dry_run is False
    assert SenderSettings.from_config({}).dry_run is True  # no credentials: dry run by default
    assert SenderSettings.from_config({**config, "DRY_RUN": "1"}).dry_run is True


@pytest.mark.parametrize(
    "field, value",
    [("concurrency", 0), ("timeout", 0), ("api_base_url", "127.0.0.1:8765")],
)
def test_bad_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SenderSettings("AC123", "token", **{field: value})


def test_channels_format_addresses_and_name_their_setting():
    assert CHANNELS["sms"].address("+15551230001") == "+15551230001"
    assert CHANNELS["whatsapp"].address("+15551230001") == "whatsapp:+15551230001"
    assert CHANNELS["whatsapp"].address("whatsapp:+15551230001") == "whatsapp:+15551230001"
    assert CHANNELS["sms"].required_setting == "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
    assert CHANNELS["whatsapp"].required_setting == "TWILIO_WHATSAPP_FROM"


@pytest.mark.parametrize(
    "http_status, code, transient",
    [
        (429, 20429, True),
        (429, None, True),
        (None, 20429, True),
        (500, None, True),
        (503, 503, True),
        (None, None, True),
        (400, 21211, False),
        (400, 21610, False),
        (400, 21614, False),
        (400, 63016, False),
        (400, 21408, False),
        (400, 21606, False),
        (None, "30003", False),
        (None, 30007, False),
        (400, 63024, False),
        (404, None, False),
    ],
)
def test_classify_error(http_status, code, transient):
    is_transient, explanation = classify_error(http_status, code)

    assert is_transient is transient
    assert explanation.endswith(".")


def test_explain_error_in_plain_language():
    assert explain_error(21610) == "The recipient replied STOP and has unsubscribed; Twilio refuses to message them."
    assert "24 hours" in explain_error("63016")
    assert "landline" in explain_error(30006)
    assert "https://www.twilio.com/docs/errors/12345" in explain_error(12345)
    assert explain_error(None) == "The message failed for an unknown reason."


def test_sender_stays_usable_after_a_job_timeout_interrupts_a_batch(fake_twilio):
    from rq.timeouts import JobTimeoutException

    def interrupt(signum, frame):
        raise JobTimeoutException("Task exceeded maximum timeout value")

    fake_twilio.set_latency(1.0)
    sender = get_sender(settings_for(fake_twilio))
    previous = signal.signal(signal.SIGALRM, interrupt)  # how RQ's SimpleWorker enforces job_timeout
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(JobTimeoutException):
            sender.send_many([sms(str(number)) for number in range(10)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    fake_twilio.set_latency(0)

    [result] = sender.send_many([sms("after")])
    sender.close()

    assert result.ok


def test_a_job_timeout_inside_a_send_stops_the_batch_instead_of_refusing_the_message(fake_twilio, monkeypatch):
    """RQ's timeout may land anywhere, e.g. in the twilio library's first import (seen under load): a message
    refused for it would be lost; the job must stop so that recovery looks its messages up."""
    from rq.timeouts import JobTimeoutException

    from app.sending.channels.channels import CHANNELS

    def time_is_up(*args, **kwargs):
        raise JobTimeoutException("Task exceeded maximum timeout value")

    monkeypatch.setattr(CHANNELS["sms"], "create_params", time_is_up)
    sender = get_sender(settings_for(fake_twilio))
    try:
        with pytest.raises(JobTimeoutException):
            sender.send_many([sms("interrupted")])
    finally:
        sender.close()
    assert fake_twilio.calls == []
