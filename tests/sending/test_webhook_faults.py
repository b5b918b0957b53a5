"""Webhook faults injected from outside (issue 13 §5): a database held by another process, Redis stopped.

The busy-database tests hold the lock from a separate Python process and
post to the app; the Redis test runs the app under gunicorn and a real
worker against a private `redis-server` of its own, which it stops and
starts again (never the shared one). Each prints what was sent, lost and
duplicated.
"""

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from app.extensions import db
from app.models import InboundMessage, Message, MessageEvent, StatusCallback
from app.sending import callbacks
from tests.conftest import TEST_AUTH_TOKEN, worker_env
from tests.fake_twilio import sign, status_callback_params
from tests.runs.test_runs_helpers import bodies_to, create_journey, example, participations, settle, start
from tests.runs.test_runs_helpers import phones as runs_phones
from tests.sending.test_messaging import make_campaign, message, phones, send
from tests.sending.test_webhooks import INBOUND, PUBLIC, STATUS, inbound, post_signed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOLD_SECONDS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def lock_held_by_another_process(database_url: str):
    """Another process takes the write lock (SQLite) or locks both webhook tables (PostgreSQL) and keeps it."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        script = f"""
            import sqlite3, sys, time
            connection = sqlite3.connect({path!r}, isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep({HOLD_SECONDS})
        """
    else:
        url = database_url.replace("postgresql+psycopg://", "postgresql://")
        script = f"""
            import psycopg, time
            with psycopg.connect({url!r}) as connection:
                connection.execute("LOCK TABLE status_callback, inbound_message IN ACCESS EXCLUSIVE MODE")
                print("locked", flush=True)
                time.sleep({HOLD_SECONDS})
        """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait(10)


def timed_post(app, path, params) -> tuple[int, float]:
    started = time.monotonic()
    answer = post_signed(app, path, params)
    return answer.status_code, time.monotonic() - started


def test_a_busy_database_is_answered_within_5_seconds_and_nothing_is_lost(app, fake_twilio):
    db.session.remove()
    _, [message_id] = make_campaign(phones(1))
    send([message_id])
    sid = message(message_id).sid
    db.session.remove()  # this test's own connection must not hold anything either
    status_params = status_callback_params(sid, "delivered")
    inbound_params = inbound(sid="SM" + "b" * 32, body="STOP")

    with lock_held_by_another_process(app.config["SQLALCHEMY_DATABASE_URI"]):
        status_answer, status_seconds = timed_post(app, STATUS, status_params)
        inbound_answer, inbound_seconds = timed_post(app, INBOUND, inbound_params)
    print(
        f"\nwith the database locked by another process: status callback {status_answer} in {status_seconds:.2f} s, "
        f"inbound {inbound_answer} in {inbound_seconds:.2f} s"
    )
    assert (status_answer, inbound_answer) == (503, 503)  # not stored: Twilio retries a 5xx
    assert status_seconds < 5 and inbound_seconds < 5

    # Twilio retries once the database is free: both are stored and applied, once.
    assert timed_post(app, STATUS, status_params)[0] == 200
    assert timed_post(app, INBOUND, inbound_params)[0] == 200
    assert timed_post(app, INBOUND, inbound_params)[0] == 200  # a repeat
    callbacks.apply_pending()
    db.session.expire_all()
    rows = db.session.scalars(select(InboundMessage)).all()
    print(f"sent 1 status + 1 inbound; stored {len(rows)} inbound, status now {message(message_id).status}")
    assert message(message_id).status == "delivered"
    assert [(row.body, row.outcome) for row in rows] == [("STOP", "opted_out")]


# -- Redis stopped: a private redis-server, the app under gunicorn, a real worker -------------------------------


@contextmanager
def private_redis(port: int):
    """A redis-server of this test's own (no persistence: a restart comes back empty, as a flushed Redis)."""
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield server
    finally:
        server.kill()
        server.wait(10)


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def served(command: list[str], env: dict, port: int | None = None):
    """Run a process until the block ends; its output is printed if the test fails (pytest shows it then)."""
    log = tempfile.TemporaryFile("w+")
    child = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if port is not None:
            wait_for_port(port)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        log.seek(0)
        print(f"--- {' '.join(command[2:4])} output (last lines) ---\n" + "".join(log.readlines()[-40:]))
        log.close()


def wait_until(condition, timeout: float = 40) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        db.session.expire_all()
        if condition():
            return time.monotonic() - started
        db.session.rollback()
        time.sleep(0.2)
    raise TimeoutError("condition not met in time")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_with_redis_stopped_webhooks_store_and_are_applied_once_it_is_back(app, api, fake_twilio):
    phone = runs_phones(1)[0]
    run_id = start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    settle()
    assert participations(run_id)[phone].state == "waiting"
    [first] = db.session.scalars(select(Message).where(Message.to_phone == phone)).all()
    db.session.remove()

    redis_port, web_port = free_port(), free_port()
    env = worker_env(app, fake_twilio, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", PUBLIC_BASE_URL=PUBLIC)
    env["TWILIO_AUTH_TOKEN"] = TEST_AUTH_TOKEN
    web = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "1", "--threads", "4"]
    web += ["--bind", f"127.0.0.1:{web_port}", "wsgi:app"]
    worker = [sys.executable, "-m", "app.worker", "--processes", "1"]

    def post(path, params):
        headers = {"X-Twilio-Signature": sign(PUBLIC + path, params)}
        started = time.monotonic()
        answer = requests.post(f"http://127.0.0.1:{web_port}{path}", data=params, headers=headers, timeout=15)
        return answer.status_code, time.monotonic() - started

    with served(web, env, web_port), private_redis(redis_port) as redis_server, served(worker, env):
        registered = Redis(port=redis_port)
        wait_until(lambda: registered.scard("rq:workers") >= 1)  # the worker is up before Redis goes
        redis_server.kill()
        redis_server.wait(10)
        answers = [post(STATUS, status_callback_params(first.sid, status)) for status in ("sent", "delivered")]
        answers.append(post(INBOUND, inbound(sid="SM" + "q" * 32, body="yes", sender=phone)))
        print(f"\nRedis stopped: answers {[(code, round(seconds, 2)) for code, seconds in answers]}")
        assert [code for code, _ in answers] == [200, 200, 200]
        assert all(seconds < 5 for _, seconds in answers)
        stored = set(db.session.scalars(select(StatusCallback.status)))
        recorded = set(db.session.scalars(select(MessageEvent.status).where(MessageEvent.message_id == first.id)))
        assert {"sent", "delivered"} <= stored | recorded  # stored, or applied already by the worker (no Redis needed)
        db.session.remove()

        # Redis back, empty (no persistence). RQ's worker exits when Redis is gone (app.worker, not the webhooks):
        # a supervisor starts it again.
        with private_redis(redis_port), served(worker, env):
            took = wait_until(
                lambda: (
                    db.session.get(Message, first.id).status == "delivered"
                    and db.session.scalar(select(InboundMessage.outcome)) == "matched"
                    and len(bodies_to(fake_twilio, phone)) >= 2
                    and participations(run_id)[phone].state == "completed"
                )
            )
            time.sleep(1)  # anything sent twice would show by now
    sent = bodies_to(fake_twilio, phone)
    print(
        f"Redis back: all applied after {took:.1f} s; sent {len(sent)} (expected 2), lost 0, duplicated {len(sent) - 2}"
    )
    assert sent == ["Hi there! Did order  arrive? Reply YES or NO.", "Great, thanks friend!"]
    assert db.session.scalars(select(StatusCallback)).all() == []
