"""Several worker hosts on PostgreSQL, full size. Prints figures; asserts nothing.

Two worker "hosts" (`tests.worker_groups.WorkerGroup`: `python -m app.worker --processes 2` each, in a
session and environment of its own) share a scratch PostgreSQL database (`jd_bench_multihost_<pid>`) and
a private `redis-server`; the web tier is gunicorn (the Procfile's command) on a free port; the fake
Twilio runs in its own process and posts status callbacks (`--no-callbacks`: none). A journey asks
each contact a question, waits for the reply, thanks them, pauses (a `delay`) and sends a last
message. Replies arrive through the signed inbound webhook at `--replies-per-second`, from each
contact once it waits at the question.

Scenario 1: the run completes exactly with both hosts up. Scenario 2: the same, but host A is killed
(`kill -9` of its whole process group) once a third of the messages are out; host B finishes alone.
For each: seconds to complete, messages, lost, doubled (Twilio accepted more than were recorded),
contacts advanced twice, the busiest second at Twilio against `MESSAGE_RATE_LIMIT` (and per sender of
a pool of two, against `SENDER_RATE_LIMIT`), how long host B took after the kill, and how many of host A's
messages were in flight (claimed, `sending`) when it died and how soon host B had taken them over.

    .venv/bin/python -m bench.bench_multihost [--contacts 20000] [--rate-limit 400] [--replies-per-second 200]
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from flask_migrate import upgrade
from sqlalchemy import func, or_, select

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, User, message_table
from bench.bench_explain import private_redis
from bench.bench_sender import fake_twilio_process, free_port
from tests.databases import scratch_postgres
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM
from tests.worker_groups import (
    ReplyPump,
    WorkerGroup,
    conversation_journey,
    exactness,
    phones,
    run_completed,
    waiting_for_reply,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


SECOND_SENDER = "+15005550002"


def settings(database_url: str, redis_url: str, twilio_url: str, web_url: str, args) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": f"{SMS_FROM},{SECOND_SENDER}",  # a pool of two senders, each with its own limit
        "SENDER_RATE_LIMIT": str(args.sender_rate_limit),
        "TWILIO_API_BASE_URL": twilio_url,
        "PUBLIC_BASE_URL": web_url,  # where the fake Twilio posts status callbacks, and what webhooks are signed for
        "DRY_RUN": "0",
        "MESSAGE_RATE_LIMIT": str(args.rate_limit),
        "SECRET_KEY": "bench",
        # Dead work is noticed in seconds, not the defaults' minutes (the send pipeline's heartbeat may do better).
        "RUNNER_LEASE_SECONDS": "15",
        "MESSAGE_STALE_SECONDS": "30",
    }


def web_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "2", "--threads", "32"]
            + ["--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def processes_of(group: WorkerGroup) -> list[int]:
    """The pids of a group's processes (its session), read before it is killed."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.getsid(int(pid)) == group.process.pid:
                pids.append(int(pid))
    return pids


def claimed_by(pids: list[int]) -> int:
    """Messages still `sending` under a claim of one of these processes (`liveness.worker_id` holds the pid)."""
    if not pids:
        return 0
    m = message_table.c
    owned = or_(*(m.claimed_by.like(f"%:{pid}:%") for pid in pids))
    count = db.session.scalar(select(func.count()).where(m.status == "sending", owned))
    db.session.rollback()
    return count


def scenario(app, api, env, twilio_url, web_url, args, kill: bool, log_dir: Path) -> dict:
    requests.post(f"{twilio_url}/_fake/reset", timeout=5)
    groups = [WorkerGroup(name, env, log_dir) for name in ("a", "b")]
    pump = ReplyPump(web_url, f"{web_url}/webhooks/twilio/inbound", AUTH_TOKEN, args.replies_per_second)
    for group in groups:
        group.start()
    time.sleep(3)
    try:
        with app.app_context():
            journey_id = journeys.create_journey(conversation_journey()).id
        contacts = [{"phone": phone, "name": f"c{n}"} for n, phone in enumerate(phones(args.contacts))]
        started = time.monotonic()
        answer = api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": contacts})
        assert answer.status_code == 202, answer.text[:300]
        run_id, killed_at, orphans = answer.json["run_id"], None, None
        with app.app_context():
            while not run_completed(run_id):
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"run {run_id} did not complete in {args.timeout} s")
                pump.reply_to(waiting_for_reply(run_id))
                calls = requests.get(f"{twilio_url}/_fake/count", timeout=5).json()["calls"]
                if kill and killed_at is None and calls >= args.contacts:
                    dead = processes_of(groups[0])
                    groups[0].kill_9()
                    killed_at = time.monotonic()
                    orphans = {"left_sending": claimed_by(dead), "taken_over_after": None}
                if orphans and orphans["taken_over_after"] is None and not claimed_by(dead):
                    orphans["taken_over_after"] = round(time.monotonic() - killed_at, 1)
                time.sleep(0.2)
            finished = time.monotonic()
            stats = requests.get(f"{twilio_url}/_fake/stats", timeout=5).json()
            figures = exactness(run_id, stats["calls"])
        figures.update(
            seconds=round(finished - started, 1),
            busiest_second=stats["max_per_second"],
            busiest_second_per_sender=stats["per_sender_max_per_second"],
            replies=len(pump.sent),
            reply_failures=len(pump.failures),
            busiest_reply_second=max(pump.window_counts.values(), default=0),
            host_b_after_kill=round(finished - killed_at, 1) if killed_at else None,
            host_a_messages_in_flight_at_kill=orphans and orphans["left_sending"],
            host_a_messages_taken_over_after=orphans and orphans["taken_over_after"],
        )
        return figures
    finally:
        pump.close()
        for group in groups:
            group.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--rate-limit", type=int, default=400, help="MESSAGE_RATE_LIMIT")
    parser.add_argument("--sender-rate-limit", type=int, default=250, help="SENDER_RATE_LIMIT, for each of 2 senders")
    parser.add_argument("--replies-per-second", type=float, default=200)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--no-callbacks", action="store_true", help="the fake Twilio posts no status callbacks")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with (
        private_redis() as redis_url,
        scratch_postgres(f"jd_bench_multihost_{os.getpid()}") as database_url,
        fake_twilio_process(0.05, callbacks=not args.no_callbacks) as twilio_url,
        tempfile.TemporaryDirectory() as log_dir,
    ):
        port = free_port()
        web_url = f"http://127.0.0.1:{port}"
        env = settings(database_url, redis_url, twilio_url, web_url, args)
        app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade()
            user = User(email="bench@example.com")
            user.set_password("bench-password")
            token_row, token = ApiToken.issue(user)
            db.session.add_all([user, token_row])
            db.session.commit()
        api = app.test_client()
        api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        web = web_server(env, port, Path(log_dir) / "web.log")
        time.sleep(3)
        try:
            for kill in (False, True):
                figures = scenario(app, api, env, twilio_url, web_url, args, kill, Path(log_dir))
                title = "host A killed (kill -9 of its group) mid-run" if kill else "both hosts up"
                limits = f"limit {args.rate_limit}/s, {args.sender_rate_limit}/s per sender"
                print(f"\n{args.contacts:,} contacts, {limits}, {title}:")
                for key, value in figures.items():
                    print(f"  {key}: {value}")
        finally:
            web.terminate()
            web.wait(15)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
