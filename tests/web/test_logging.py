"""One logging setup: JSON lines with the request id (X-Request-ID in and out), job ids in workers, no secrets."""

import base64
import io
import json
import logging

import pytest

from app.logging_setup import install_handler
from app.queues import get_queue
from tests.conftest import TEST_AUTH_TOKEN, USER_EMAIL, USER_PASSWORD, csrf_token_of, drain


@pytest.fixture
def json_log(app):
    """Everything logged during the test, as parsed JSON lines."""
    stream = io.StringIO()
    install_handler({**app.config, "LOG_FORMAT": "json"}, stream)
    lines = []

    def read() -> list[dict]:
        lines[:] = [json.loads(line) for line in stream.getvalue().splitlines()]
        return lines

    read.text = stream.getvalue
    yield read
    install_handler(app.config)


def test_every_line_of_a_request_carries_its_id(app, user, json_log):
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"email": USER_EMAIL, "password": "wrong password", "csrf_token": token},
        headers={"X-Request-ID": "req-abc-123"},
    )
    assert response.status_code == 401 and response.headers["X-Request-ID"] == "req-abc-123"
    mine = [line for line in json_log() if line.get("request_id") == "req-abc-123"]
    messages = [line["message"] for line in mine]
    assert any(message.startswith("failed login for 'operator@example.com'") for message in messages), messages
    assert "POST /login 401" in messages[-1] and mine[-1]["logger"] == "app.access"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in json_log())


def test_a_request_id_is_made_when_none_or_a_strange_one_is_sent(app, json_log):
    client = app.test_client()
    made = client.get("/login").headers["X-Request-ID"]
    assert len(made) == 32
    replaced = client.get("/login", headers={"X-Request-ID": "x" * 200}).headers["X-Request-ID"]
    assert replaced != "x" * 200 and len(replaced) == 32
    assert {line["request_id"] for line in json_log()} == {made, replaced}


def test_refused_webhooks_are_logged_with_their_ids(app, json_log):
    response = app.test_client().post(
        "/webhooks/twilio/inbound", data={"MessageSid": "SM" + "1" * 32, "From": "+15005550006", "Body": "hi"}
    )
    assert response.status_code == 403
    (refused,) = [line for line in json_log() if line["message"].startswith("refused Twilio webhook")]
    assert refused["level"] == "WARNING" and refused["message_sid"] == "SM" + "1" * 32 and refused["request_id"]


def test_lines_written_inside_a_job_carry_the_job_id(app, json_log):
    job = get_queue("flows").enqueue("logging.warning", "hello from a job")
    drain(["flows"])
    (line,) = [line for line in json_log() if line["message"] == "hello from a job"]
    assert line["job_id"] == job.id


def test_no_secret_is_ever_logged(app, user, api_token, json_log):
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)
    client.post("/login", data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": token})
    client.post("/login", data={"email": USER_EMAIL, "password": "my wrong secret pw", "csrf_token": token})
    app.test_client().get("/api/campaign/history", headers={"Authorization": f"Bearer {api_token}"})
    app.test_client().get("/api/campaign/history", headers={"Authorization": "Bearer jd_" + "z" * 43})
    logger = logging.getLogger("app.test")
    logger.error("talking to Twilio with %s failed", TEST_AUTH_TOKEN)
    logger.warning("client sent Authorization: Bearer %s and password=%s", api_token, USER_PASSWORD)
    logger.warning("signing with %s", app.config["SECRET_KEY"])
    basic = base64.b64encode(f"AC123:{TEST_AUTH_TOKEN}".encode()).decode()
    logger.info("Twilio request with Authorization: Basic %s", basic)
    text = json_log.text()
    assert "talking to Twilio with [redacted] failed" in text
    for secret in (
        basic,
        USER_PASSWORD,
        "my wrong secret pw",
        api_token,
        "jd_" + "z" * 43,
        TEST_AUTH_TOKEN,
        "test-secret",
    ):
        assert secret not in text, secret
