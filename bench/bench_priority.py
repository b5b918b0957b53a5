"""Conversations ahead of bulk: reply-to-next-message latency while a big campaign sends at the limit.

Prints figures; asserts nothing. Everything real: the app under gunicorn
(`bench.web_server`) receiving signed inbound webhooks, `python -m app.worker
--processes 2` (plus its default conversation process), the fake Twilio in
this process, SQLite (or PostgreSQL with --postgres), Redis `BENCH_REDIS_URL`
(else `TEST_REDIS_URL`, else DB 1; flushed).

1. A journey `message -> wait -> message` is started for `--contacts` contacts;
   all of them get the first message and wait.
2. A campaign of `--campaign` rows is sent at `MESSAGE_RATE_LIMIT` (`--limit`).
3. While it sends, a waiting contact replies through the signed inbound
   webhook every 100 ms; for each reply we time how long until the fake
   Twilio accepts that contact's next message. p50/p95/max are printed,
   with the busiest 1 s window at the fake (the limit is shared, never exceeded)
   and the campaign's own rate meanwhile.

    .venv/bin/python -m bench.bench_priority [--campaign 3000] [--limit 50] [--replies 100] [--postgres]
    .venv/bin/python -m bench.bench_priority --campaign 50000 --limit 200   # the issue's full size
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack

import requests
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, User
from bench.bench_campaign import no_garbage_collection, workers
from bench.web_server import load_line, web_process
from tests.databases import scratch_postgres
from tests.fake_twilio import SMS_FROM, FakeTwilio, sign

REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/1"
REPLY_EVERY = 0.1


def conversation() -> dict:
    return {
        "format": "journey/v1",
        "name": "Ask and answer",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "ask", "type": "message", "body": "Question for <<name>>"},
            {"id": "wait", "type": "wait"},
            {"id": "answer", "type": "message", "body": "Thanks <<name>>"},
            {"id": "done", "type": "end"},
        ],
        "edges": [
            {"from": "start", "to": "ask"},
            {"from": "ask", "to": "wait"},
            {"from": "wait", "to": "answer", "when": "fallback"},
            {"from": "answer", "to": "done"},
        ],
    }


class Bench:
    def __init__(self, database_url: str, fake: FakeTwilio, limit: float):
        self.fake = fake
        self.env = {
            **fake.env(),
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "MESSAGE_RATE_LIMIT": str(limit),
        }
        self.app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": REDIS_URL,
                "SECRET_KEY": "bench",
                **{key: value for key, value in fake.env().items() if key != "DRY_RUN"},
                "DRY_RUN": False,
                "MESSAGE_RATE_LIMIT": limit,
            }
        )
        with self.app.app_context():
            upgrade()
            self.app.extensions["redis"].flushdb()
            user = User(email="bench@example.com")
            user.set_password("bench-password")
            token_row, token = ApiToken.issue(user)
            db.session.add_all([user, token_row])
            db.session.commit()
        self.api = self.app.test_client()
        self.api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def start_conversations(self, count: int) -> list[str]:
        with self.app.app_context():
            journey_id = journeys.create_journey(conversation()).id
        people = [{"phone": f"+1500555{n:04d}", "name": f"c{n}"} for n in range(count)]
        answer = self.api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": people})
        assert answer.status_code == 202, answer.text
        return [person["phone"] for person in people]

    def send_campaign(self, count: int) -> int:
        rows = [{"phone": f"+1206{4560000 + n:07d}", "name": f"r{n}"} for n in range(count)]
        answer = self.api.post("/api/campaign/send", json={"body": "Sale for <<name>>", "rows": rows})
        assert answer.status_code == 202, answer.text
        return answer.json["campaignId"]


def reply(web_url: str, phone: str, session: requests.Session) -> None:
    url = f"{web_url}/webhooks/twilio/inbound"
    params = {"From": phone, "To": SMS_FROM, "Body": "ok", "MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0"}
    answer = session.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)}, timeout=15)
    answer.raise_for_status()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def measure(bench: Bench, web_url: str, args) -> None:
    fake = bench.fake
    phones = bench.start_conversations(args.replies)
    wait_for(lambda: fake.call_count >= len(phones), 300, "the first message to every contact")
    time.sleep(2)  # they reach their wait
    fake.reset()
    fake.set_latency(args.latency)
    bench.send_campaign(args.campaign)
    wait_for(lambda: fake.call_count >= args.limit * 2, 120, "the campaign to send at its limit")
    replied: dict[str, float] = {}
    session = requests.Session()
    with no_garbage_collection():
        for phone in phones:
            tick = time.monotonic()
            reply(web_url, phone, session)
            replied[phone] = tick
            time.sleep(max(REPLY_EVERY - (time.monotonic() - tick), 0))
        wait_for(lambda: sum(c.body.startswith("Thanks") for c in fake.calls) >= len(phones), 120, "every answer")
    calls = fake.calls
    answered = {call.to: call.at for call in calls if (call.body or "").startswith("Thanks")}
    latencies = sorted(answered[phone] - replied[phone] for phone in phones)
    bulk = [call.at for call in calls if (call.body or "").startswith("Sale")]
    window = bulk[-1] - bulk[0] if len(bulk) > 1 else 0
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"  {len(latencies)} replies every {REPLY_EVERY * 1000:.0f} ms during a {args.campaign:,}-message campaign "
        f"at {args.limit:g}/s ({args.latency * 1000:.0f} ms per Twilio call)",
        flush=True,
    )
    print(
        f"  reply -> next message accepted: p50 {statistics.median(latencies):.3f} s, p95 {p95:.3f} s, "
        f"max {latencies[-1]:.3f} s",
        flush=True,
    )
    created, sending = stages(bench)
    print(
        f"  of which: reply stored -> next message queued p50 {created:.3f} s; queued -> accepted p50 {sending:.3f} s"
    )
    print(
        f"  limiter windows at the fake Twilio: busiest 1 s window {fake.max_in_any_window(1.0)} "
        f"(limit {args.limit:g}); campaign {len(bulk)} sent meanwhile at {(len(bulk) - 1) / window:.1f} msg/s; "
        f"all sends {len(calls)}",
        flush=True,
    )


def stages(bench: Bench) -> tuple[float, float]:
    """Median seconds from a stored reply to its answer's queueing, and from queueing to acceptance."""
    from sqlalchemy import select

    from app.models import InboundMessage, Message

    with bench.app.app_context():
        replies = dict(db.session.execute(select(InboundMessage.from_phone, InboundMessage.received_at)).all())
        answers = db.session.execute(
            select(Message.to_phone, Message.created_at, Message.sent_at).where(Message.body.like("Thanks%"))
        ).all()
    created = [(row.created_at - replies[row.to_phone]).total_seconds() for row in answers if row.to_phone in replies]
    sending = [(row.sent_at - row.created_at).total_seconds() for row in answers if row.sent_at]
    return statistics.median(created or [0]), statistics.median(sending or [0])


def run(database: str, database_url: str, args) -> None:
    with FakeTwilio(latency=args.latency, callbacks=not args.no_callbacks) as fake:
        bench = Bench(database_url, fake, args.limit)
        with ExitStack() as stack:
            web_url = stack.enter_context(web_process(bench.env))
            stack.enter_context(
                workers(bench_shim(bench, web_url), [sys.executable, "-m", "app.worker", "--processes", "2"], 3)
            )
            print(f"{database}:", flush=True)
            measure(bench, web_url, args)


def bench_shim(bench: Bench, web_url: str):
    """What `bench_campaign.workers` needs: the worker environment and a Redis connection."""

    class Shim:
        redis = bench.app.extensions["redis"]

        @staticmethod
        def worker_env(**settings):
            return {**os.environ, **bench.env, "PUBLIC_BASE_URL": web_url, **settings}

    return Shim()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=int, default=3000, help="campaign size (the issue: 50,000)")
    parser.add_argument("--limit", type=float, default=50, help="MESSAGE_RATE_LIMIT")
    parser.add_argument("--replies", type=int, default=100, help="waiting contacts, one reply each, every 100 ms")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per fake Twilio call")
    parser.add_argument("--no-callbacks", action="store_true", help="the fake Twilio posts no status callbacks")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    print(f"bench_priority; {load_line()}", flush=True)
    if args.postgres:
        with scratch_postgres(f"jd_bench_priority_{os.getpid()}") as url:
            run("postgresql", url, args)
        return
    with tempfile.TemporaryDirectory() as directory:
        run("sqlite", f"sqlite:///{directory}/bench.sqlite3", args)


if __name__ == "__main__":
    main()
