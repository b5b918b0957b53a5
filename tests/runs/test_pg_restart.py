"""PostgreSQL restarted under a running journey (issue 13, fault 7): web and workers recover without a restart.

A PostgreSQL server of the test's own (never the shared one) holds the
database; gunicorn serves the app and two `python -m app.worker` processes
send a 200-contact × 2-message run through the fake Twilio. In the middle of
the sending the server is stopped (`pg_ctl stop -m fast`: every connection
is cut), left down 2 s, and started again; signed webhooks are posted while
it is down and right after. Nobody restarts the web or the workers: the run
must complete with every message sent once, in order, no RQ job failed for
good, the webhooks stored once (those answered 503 are posted again, as
Twilio retries them) and the web answering again. The figures are printed.
"""

import glob
import shutil
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import requests
from flask_migrate import upgrade
from rq.registry import FailedJobRegistry
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import OperationalError

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, Campaign, InboundMessage, Message, Participation, Run, User, utcnow
from app.models.vocabulary import RECEIVED
from app.queues import QUEUE_NAMES, get_queue, get_redis
from app.sending import liveness, messaging, recovery
from tests.conftest import TEST_AUTH_TOKEN, TEST_REDIS_URL, drain, worker_env
from tests.databases import PrivatePostgres
from tests.fake_twilio import sign, status_callback_params
from tests.runs.test_runs_helpers import linear_journey, phones
from tests.sending.test_webhook_faults import free_port, served
from tests.sending.test_webhooks import INBOUND, STATUS, inbound

CONTACTS = 200
BODIES = ("first <<name>>", "second <<name>>")
OUTAGE_SECONDS = 2.0
RECOVERY_TIMEOUT = 120.0

needs_postgres_server = pytest.mark.skipif(
    shutil.which("pg_ctl") is None and not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
    reason="needs PostgreSQL's server binaries (initdb, pg_ctl)",
)


@pytest.fixture
def private_postgres():
    """A throwaway PostgreSQL server with a migrated database; yields (server, database URL)."""
    server = PrivatePostgres()
    server.start()
    try:
        admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "jd_pg_restart"'))
        admin.dispose()
        yield server, server.admin_url.rsplit("/", 1)[0] + "/jd_pg_restart"
    finally:
        server.stop_and_delete()


@pytest.fixture
def restart_app(private_postgres, fake_twilio):
    """The app on the private database (schema by the migrations), its context pushed; Redis DB emptied."""
    _, url = private_postgres
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": TEST_REDIS_URL,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "PUBLIC_BASE_URL": "http://testserver.local",
        }
    )
    with app.app_context():
        upgrade()
        get_redis().flushdb()
        yield app
        db.session.remove()
        db.engine.dispose()
        get_redis().flushdb()


def _token_and_journey() -> tuple[str, int]:
    user = User(email="operator@example.com", role="admin")
    user.set_password("correct horse battery")
    db.session.add(user)
    db.session.commit()
    row, token = ApiToken.issue(user)
    db.session.add(row)
    db.session.commit()
    return token, journeys.create_journey(linear_journey(*BODIES)).id


def _query(statement):
    """One fresh read (a new transaction; the pool's pre-ping replaces connections the restart cut)."""
    db.session.expire_all()
    try:
        return db.session.execute(statement).all()
    finally:
        db.session.rollback()


def _wait_for(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Webhooks:
    """Signed posts to the web process, as Twilio makes them; those answered 503 are posted again later."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.answers: list[tuple[str, int]] = []
        self.retry: list[tuple[str, dict]] = []

    def post(self, path: str, params: dict) -> int:
        headers = {"X-Twilio-Signature": sign(self.base_url + path, params)}
        try:
            code = requests.post(self.base_url + path, data=params, headers=headers, timeout=15).status_code
        except requests.RequestException:
            code = 0
        self.answers.append((path.rsplit("/", 1)[1], code))
        if code != 200:
            self.retry.append((path, params))
        return code

    def post_some(self, fake_twilio, label: str) -> list[str]:
        """Two inbound messages and a status callback for a message Twilio accepted; returns the inbound sids."""
        sids = [f"SM{label}{n}{uuid.uuid4().hex}"[:34] for n in range(2)]
        for sid in sids:
            self.post(INBOUND, inbound(sid=sid, body=f"hello {label}", sender="+15557770001"))
        accepted = fake_twilio.calls
        if accepted:
            self.post(STATUS, status_callback_params(accepted[-1].sid, "delivered"))
        return sids

    def post_again(self) -> None:
        pending, self.retry = self.retry, []
        for path, params in pending:
            self.post(path, params)


def _restart_postgres(server: PrivatePostgres, hooks: Webhooks, fake_twilio) -> tuple[list[str], float]:
    """Stop the server, post webhooks while it is down, start it again; returns the inbound sids and when it was up."""
    server.stop("fast")
    down = time.monotonic()
    sids = hooks.post_some(fake_twilio, "down")
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
    server.start()
    return sids, time.monotonic()


def _every_message_once_in_order(run_id: int, fake_twilio, numbers) -> tuple[int, int]:
    """(lost, duplicated) at the fake Twilio; each contact's messages must have arrived in journey order."""
    per_contact: dict[str, list[str]] = {}
    for call in fake_twilio.calls:
        per_contact.setdefault(call.to, []).append(call.body)
    lost = 0
    for n, phone in enumerate(numbers):
        expected = [body.replace("<<name>>", f"c{n}") for body in BODIES]
        received = per_contact.get(phone, [])
        lost += len(set(expected) - set(received))
        assert list(dict.fromkeys(received)) == [body for body in expected if body in received], (phone, received)
    counts = Counter((call.to, call.body) for call in fake_twilio.calls)
    return lost, sum(count - 1 for count in counts.values() if count > 1)


def _run_status(run_id: int) -> str:
    return _query(select(Run.status).where(Run.id == run_id))[0][0]


def _webhooks_stored(sids: list[str]) -> bool:
    rows = _query(select(InboundMessage.sid, InboundMessage.outcome).where(InboundMessage.sid.in_(sids)))
    return len(rows) == len(sids) and all(outcome != RECEIVED for _, outcome in rows)


def _check_database(run_id: int) -> None:
    rows = _query(
        select(Message.status, Message.sid)
        .join(Participation, Participation.id == Message.participation_id)
        .where(Participation.run_id == run_id)
    )
    assert len(rows) == CONTACTS * len(BODIES)
    assert all(row.sid and row.status in ("sent", "delivered") for row in rows), Counter(r.status for r in rows)
    states = _query(
        select(Participation.state, func.count()).where(Participation.run_id == run_id).group_by(Participation.state)
    )
    assert dict(states) == {"completed": CONTACTS}
    failed = {name: FailedJobRegistry(queue=get_queue(name)).get_job_ids() for name in QUEUE_NAMES}
    assert not any(failed.values()), f"jobs failed for good: {failed}"


@needs_postgres_server
def test_postgres_restarted_mid_run_web_and_workers_recover(private_postgres, restart_app, fake_twilio, capsys):
    server, url = private_postgres
    token, journey_id = _token_and_journey()
    db.session.remove()
    fake_twilio.set_latency(0.05)
    fake_twilio.callbacks = True
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = worker_env(restart_app, fake_twilio, TWILIO_AUTH_TOKEN=TEST_AUTH_TOKEN, MESSAGE_RATE_LIMIT=0)
    env.update(DATABASE_URL=url, PUBLIC_BASE_URL=base_url)  # default retry, lease and stale settings
    web = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "1", "--threads", "4"]
    worker = [sys.executable, "-m", "app.worker", "--processes", "1", "--conversation-processes", "0"]
    hooks = Webhooks(base_url)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    numbers = phones(CONTACTS)
    contacts = [{"phone": phone, "name": f"c{n}"} for n, phone in enumerate(numbers)]
    with served([*web, "--bind", f"127.0.0.1:{port}", "wsgi:app"], env, port), served(worker, env), served(worker, env):
        answer = session.post(f"{base_url}/api/journeys/{journey_id}/runs", json={"contacts": contacts}, timeout=30)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        _wait_for(lambda: len(fake_twilio.calls) >= CONTACTS // 2, 60, "the run to be sending")
        sent_before = len(fake_twilio.calls)
        sids, up_at = _restart_postgres(server, hooks, fake_twilio)
        sids += hooks.post_some(fake_twilio, "after")
        _wait_for(lambda: session.get(f"{base_url}/api/runs/{run_id}", timeout=10).status_code == 200, 30, "the web")
        web_back = time.monotonic() - up_at
        _wait_for(lambda: len(fake_twilio.calls) > sent_before + 20, 60, "sending to resume")
        sending_again = time.monotonic() - up_at
        _wait_for(lambda: _run_status(run_id) == "completed", RECOVERY_TIMEOUT, "the run to complete")
        completed = time.monotonic() - up_at
        hooks.post_again()  # Twilio retries what was answered 503
        _wait_for(lambda: _webhooks_stored(sids), 30, "the webhooks to be stored and routed")
        assert session.get(f"{base_url}/api/runs/{run_id}", timeout=10).status_code == 200
    lost, duplicated = _every_message_once_in_order(run_id, fake_twilio, numbers)
    with capsys.disabled():
        print(
            f"\n[pg restart] PostgreSQL down {OUTAGE_SECONDS:.0f} s after {sent_before} accepted sends; web answered "
            f"again {web_back:.1f} s, sending resumed {sending_again:.1f} s, run completed {completed:.1f} s after it "
            f"was back; sent {len(fake_twilio.calls)} for {CONTACTS * len(BODIES)} messages, lost {lost}, "
            f"duplicated {duplicated}; webhook answers {Counter(hooks.answers)}"
        )
    assert (lost, duplicated) == (0, 0)
    _check_database(run_id)


# -- the short form, on both databases: a job that loses the database mid-send hands its claims to recovery ----


def test_claims_of_a_job_that_lost_the_database_are_looked_up_not_left(app, fake_twilio, monkeypatch):
    campaign = Campaign(name="db gone", body="Hello", channel="sms", total=1)
    db.session.add(campaign)
    db.session.flush()
    message = Message(campaign_id=campaign.id, to_phone=phones(1)[0], channel="sms", body="Hello")
    db.session.add(message)
    db.session.commit()
    message_id = message.id
    monkeypatch.setattr(liveness, "_last_beat", {})
    liveness.beat()  # this worker is alive: its heartbeat vouches for its claims

    def database_gone(*_args, **_kwargs):
        raise OperationalError("UPDATE message", {}, Exception("server closed the connection unexpectedly"))

    with monkeypatch.context() as patch:
        patch.setattr(messaging, "_record_results", database_gone)
        with pytest.raises(OperationalError):
            messaging.deliver([message_id])
    backdate = update(Message).where(Message.id == message_id).values(updated_at=utcnow() - timedelta(seconds=5))
    db.session.execute(backdate)
    db.session.commit()
    recovery.requeue_stale()
    row = db.session.get(Message, message_id)
    assert (row.status, row.claimed_by) == ("sending", liveness.worker_id())  # held for a live worker, for now

    assert liveness.release_abandoned() == 1  # the worker's sweeper thread does this once the database answers
    db.session.execute(backdate)
    db.session.commit()
    recovery.requeue_stale()
    drain()
    db.session.expire_all()
    row = db.session.get(Message, message_id)
    assert (row.status, row.sid) == ("sent", fake_twilio.calls[0].sid)  # found at Twilio, not sent again
    assert len(fake_twilio.attempts) == 1
