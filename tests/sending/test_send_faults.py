"""Faults around sending, injected from outside: Redis flushed or down, Twilio answering late, Twilio down.

Each test prints what was sent, lost and duplicated, and asserts none lost and none duplicated.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Campaign, Message, utcnow
from app.queues import get_redis
from app.sending import breaker, log, messaging, orphans, recovery
from tests.conftest import drain, worker_env
from tests.runs.test_runs_helpers import phones

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _report(what: str, expected: list[str], fake_twilio, capsys) -> None:
    """Print and check sent / lost / duplicated against the recipients expected at Twilio."""
    got = Counter(call.to for call in fake_twilio.calls)
    lost = [phone for phone in expected if got[phone] == 0]
    duplicated = sum(count - 1 for count in got.values() if count > 1)
    with capsys.disabled():
        print(f"\n[fault] {what}: sent {len(got)}, lost {len(lost)}, duplicated {duplicated}")
    assert not lost and duplicated == 0


def _statuses() -> dict[str, int]:
    db.session.expire_all()
    found = dict(db.session.execute(select(Message.status, func.count()).group_by(Message.status)).all())
    db.session.commit()
    return found


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class _Worker:
    """One `python -m app.worker` process (no separate conversation process) on the test's database and Redis."""

    def __init__(self, app, fake_twilio, log: Path, **settings):
        env = worker_env(app, fake_twilio, MESSAGE_RATE_LIMIT=0, **settings)
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--processes", "1", "--conversation-processes", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def _send_campaign(api, numbers, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return api.post(
        "/api/campaign/send", json={"body": "Hi {{phone}}", "rows": [{"phone": p} for p in numbers]}, headers=headers
    )


# -- 1. campaigns are as durable as runs ---------------------------------------------------------------------


def test_campaign_jobs_lost_in_a_flush_are_sent_once(app, api, fake_twilio, tmp_path, capsys):
    numbers = phones(40)
    answer = _send_campaign(api, numbers)
    assert answer.status_code == 202
    get_redis().flushdb()  # Redis restarted without persistence before any worker took the jobs
    back = time.monotonic()
    worker = _Worker(app, fake_twilio, tmp_path / "worker.log")
    try:
        _wait_for(lambda: _statuses() == {"sent": 40}, 60, "every campaign message to be sent")
    finally:
        worker.stop()
    with capsys.disabled():
        print(f"\n[fault] campaign jobs flushed: all sent {time.monotonic() - back:.1f} s after Redis was back")
    _report("campaign jobs flushed from Redis", numbers, fake_twilio, capsys)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (the shared one is never stopped), and a function to stop it."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = Redis(port=port)
    _wait_for(lambda: _pings(client), 10, "the private redis-server")
    yield port, server
    if server.poll() is None:
        server.kill()
    server.wait(5)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_send_api_with_redis_down_answers_202_and_a_retry_makes_no_second_campaign(
    app, api, fake_twilio, private_redis, capsys
):
    port, server = private_redis
    shared = app.extensions["redis"]
    app.extensions["redis"] = Redis(port=port)
    server.kill()  # Redis is down
    server.wait(5)
    try:
        numbers = phones(5)
        first = _send_campaign(api, numbers, key="order-42")
        retry = _send_campaign(api, numbers, key="order-42")
    finally:
        app.extensions["redis"] = shared
    assert first.status_code == 202, first.text
    assert retry.status_code == 202 and retry.json["campaignId"] == first.json["campaignId"]
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 1
    assert _statuses() == {"queued": 5}

    # Redis is back (empty): recovery finds the queued messages that no job names.
    assert orphans.requeue_orphans(utcnow() + orphans.GRACE * 2, force=True) == 5
    drain()
    assert _statuses() == {"sent": 5}
    _report("campaign sent while Redis was down", numbers, fake_twilio, capsys)


def test_idempotency_key_is_checked(app, api):
    answer = _send_campaign(api, phones(1), key="x" * 200)
    assert answer.status_code == 400 and "Idempotency-Key" in answer.json["error"]


# -- 3. unknown outcomes are looked up before any resend ------------------------------------------------------


def test_a_late_answer_is_looked_up_not_resent(app, fake_twilio, capsys):
    app.config["TWILIO_TIMEOUT"] = 0.5
    fake_twilio.answer_late(1, delay=1.5)  # accepted at once, answered after the client gave up
    campaign = Campaign(name="late", body="Hello", channel="sms", total=1)
    db.session.add(campaign)
    db.session.flush()
    message = Message(campaign_id=campaign.id, to_phone=phones(1)[0], channel="sms", body="Hello")
    db.session.add(message)
    db.session.commit()
    message_id = message.id

    messaging.enqueue_messages([message_id], bulk=True)
    drain()
    message = db.session.get(Message, message_id)
    assert (message.status, message.sid, message.claimed_by) == ("sending", None, None)
    assert "looked up" in message.error_message
    # Later (recovery waits LOOKUP_AFTER): Twilio is asked and knows it.
    db.session.execute(
        update(Message).where(Message.id == message_id).values(updated_at=utcnow() - timedelta(seconds=5))
    )
    db.session.commit()
    recovery.requeue_stale()
    drain()
    message = db.session.get(Message, message_id)
    assert message.status == "sent" and message.sid == fake_twilio.calls[0].sid
    assert len(fake_twilio.attempts) == 1
    _report("Twilio answered after the client's timeout", [message.to_phone], fake_twilio, capsys)


# -- 4. a Twilio outage fails no message ---------------------------------------------------------------------


def test_twilio_outage_pauses_probes_and_resumes(app, api, client, fake_twilio, tmp_path, capsys):
    numbers = phones(30)
    bad = "+15005559999"
    fake_twilio.fail_for(bad, status=400, code=21211)  # a permanent error: still not retried
    fake_twilio.set_outage(503)
    worker = _Worker(app, fake_twilio, tmp_path / "worker.log", TWILIO_PROBE_BACKOFF="0.3,0.6,1.2")
    try:
        assert _send_campaign(api, [*numbers, bad]).status_code == 202
        _wait_for(lambda: breaker.state(), 20, "the breaker to open")
        db.session.commit()
        assert "Twilio has been unreachable since" in client.get("/").text
        time.sleep(2)
        fake_twilio.set_outage(None)
        fake_twilio.refuse_connections()  # then unreachable altogether
        time.sleep(2)
        fake_twilio.accept_connections()
        _wait_for(lambda: _statuses() == {"sent": 30, "failed": 1}, 30, "every message to be sent or failed")
    finally:
        fake_twilio.accept_connections()
        worker.stop()
    db.session.commit()
    assert breaker.state() is None
    assert "Twilio has been unreachable" not in client.get("/").text
    bad_attempts = [attempt for attempt in fake_twilio.attempts if attempt.fields.get("To") == bad and attempt.code]
    assert [attempt.code for attempt in bad_attempts if attempt.code != 20500] == [21211]
    with capsys.disabled():
        print(f"\n[fault] outage: {len(fake_twilio.attempts)} requests to the fake during and after it")
    _report("Twilio 503 then refusing connections", numbers, fake_twilio, capsys)


def test_an_acceptance_recorded_after_a_requeue_wins(app):
    # Recovery took a slow worker for dead and put its message back to `queued`; then the send answered.
    campaign = Campaign(name="slow", body="Hello", channel="sms", total=1)
    db.session.add(campaign)
    db.session.flush()
    message = Message(campaign_id=campaign.id, to_phone=phones(1)[0], channel="sms", body="Hello", status="queued")
    db.session.add(message)
    db.session.commit()
    now = utcnow()
    result = {"b_id": message.id, "b_status": "sent", "b_sid": "SM" + "1" * 32, "b_error_code": None}
    result |= {"b_error_message": None, "b_sent_at": now, "b_next_attempt_at": None, "b_dry_run": False}
    result |= {"b_attempts": 1, "b_from": None, "b_updated_at": now}
    log.write_results([result])
    db.session.commit()
    db.session.expire_all()
    assert (message.status, message.sid) == ("sent", "SM" + "1" * 32)
    message_id = message.id
    messaging.deliver([message_id])  # the requeued job finds nothing left to send
    row = db.session.get(Message, message_id)
    assert (row.status, row.attempts) == ("sent", 1)
