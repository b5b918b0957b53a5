"""The fake Twilio server itself: its answers, its scripting and its helpers."""

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from twilio.request_validator import RequestValidator

from tests.fake_twilio import AUTH_TOKEN, sign, status_callback_params

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def post(fake, fields: dict, token: str | None = None) -> tuple[int, dict]:
    """POST a form to the fake's Messages endpoint with Basic auth; return (status, JSON body)."""
    credentials = base64.b64encode(f"{fake.account_sid}:{token or fake.auth_token}".encode()).decode()
    request = urllib.request.Request(
        fake.messages_url,
        data=urllib.parse.urlencode(fields, doseq=True).encode(),
        headers={"Authorization": f"Basic {credentials}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_accepts_a_message_like_twilio(fake_twilio):
    status, body = post(fake_twilio, {"To": "+15551230001", "From": "+15005550001", "Body": "hi"})

    assert status == 201
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert (body["status"], body["to"], body["from"], body["body"]) == ("queued", "+15551230001", "+15005550001", "hi")
    [call] = fake_twilio.calls
    assert call.sid == body["sid"] and call.body == "hi"


def test_refuses_bad_credentials_and_incomplete_messages(fake_twilio):
    assert post(fake_twilio, {"To": "+1555", "From": "+1500", "Body": "x"}, token="wrong")[1]["code"] == 20003
    assert post(fake_twilio, {"From": "+1500", "Body": "x"})[1]["code"] == 21604
    assert post(fake_twilio, {"To": "+1555", "Body": "x"})[1]["code"] == 21603
    status, body = post(fake_twilio, {"To": "+1555", "From": "+1500"})
    assert (status, body["code"], body["status"]) == (400, 21602, 400)
    assert fake_twilio.calls == []
    assert [attempt.http_status for attempt in fake_twilio.attempts] == [401, 400, 400, 400]


def test_fail_next_then_accepts_and_fail_for_sticks_to_its_recipient(fake_twilio):
    fake_twilio.fail_next(2, status=429, code=20429)
    fake_twilio.fail_for("whatsapp:+15550000009", status=400, code=63016)
    message = {"To": "+15551230001", "From": "+15005550001", "Body": "hi"}

    statuses = [post(fake_twilio, message)[0] for _ in range(3)]
    blocked = post(fake_twilio, {**message, "To": "+15550000009"})

    assert statuses == [429, 429, 201]
    assert blocked[0] == 400 and blocked[1]["code"] == 63016
    assert len(fake_twilio.calls) == 1 and len(fake_twilio.attempts) == 4


def test_max_in_any_window_counts_accepted_calls(fake_twilio):
    for _ in range(3):
        post(fake_twilio, {"To": "+15551230001", "From": "+15005550001", "Body": "hi"})

    assert fake_twilio.max_in_any_window(1.0) == 3
    assert fake_twilio.max_in_any_window(0.0) == 1
    fake_twilio.reset()
    assert fake_twilio.max_in_any_window() == 0


def test_signature_helper_matches_twilios_validator():
    url = "http://testserver.local/webhooks/twilio/status"
    params = status_callback_params("SM" + "1" * 32, "undelivered", error_code=30003)

    assert params["MessageSid"] == "SM" + "1" * 32
    assert (params["MessageStatus"], params["ErrorCode"]) == ("undelivered", "30003")
    assert RequestValidator(AUTH_TOKEN).validate(url, params, sign(url, params))
    assert not RequestValidator(AUTH_TOKEN).validate(url, params, sign(url, params, "another-token"))


def test_runs_standalone_and_reports_stats():
    with subprocess.Popen(
        [sys.executable, "-m", "tests.fake_twilio", "--port", "0", "--latency", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            lines = [process.stdout.readline() for _ in range(7)]
            base_url = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("TWILIO_API_BASE_URL="))
            with urllib.request.urlopen(base_url + "/_fake/stats", timeout=5) as response:
                stats = json.load(response)
        finally:
            process.terminate()
        assert process.wait(10) == 0
    assert {key: stats[key] for key in ("calls", "attempts", "max_per_second")} == {
        "calls": 0,
        "attempts": 0,
        "max_per_second": 0,
    }
    assert stats["callbacks"]["posted"] == 0
