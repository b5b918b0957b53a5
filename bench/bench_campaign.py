"""Campaign sending, end to end: API call -> RQ -> 2 worker processes -> fake Twilio -> message log.

Prints figures; asserts nothing. Each scenario starts `python -m app.worker
--processes 2` (as honcho would), warms it up with a small campaign, then
times `POST /api/campaign/send` with N rows until the campaign is
`completed` (every log row written). Rate-limited runs also report the
busiest one-second window at the fake Twilio. The baseline is the
predecessor's design: one message per job, ten threads each taking one job
at a time and making one blocking call with the synchronous twilio client,
one commit per message.

    .venv/bin/python -m bench.bench_campaign [--rows 10000] [--postgres] [--skip-baseline] [--no-callbacks]

The fake Twilio posts status callbacks (sent, then delivered) to the app
served by gunicorn (`bench.web_server`), as Twilio does, unless
`--no-callbacks`; each run then reports when the last message was accepted
and when the last status was recorded. Uses Redis `BENCH_REDIS_URL` (else
`TEST_REDIS_URL`, else DB 1; flushed per scenario) and, with --postgres, the
database jd_bench_d1 (dropped and created again).
"""

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask_migrate import upgrade
from redis import Redis
from rq import Queue, Worker
from sqlalchemy import create_engine, func, insert, select, text

from bench.web_server import load_line, web_process

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/1"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_BENCH_DB = "jd_bench_d1"
BASELINE_QUEUE = "bench-baseline"


def phone(number: int) -> str:
    return f"+1206{4560000 + number:07d}"


def rows(count: int, start: int = 0) -> list[dict]:
    return [{"phone": phone(number), "name": f"Contact {number}"} for number in range(start, start + count)]


# -- databases -----------------------------------------------------------------


def sqlite_url(directory: str) -> str:
    return f"sqlite:///{directory}/bench.sqlite3"


def fresh_postgres() -> str:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{POSTGRES_BENCH_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{POSTGRES_BENCH_DB}"'))
    admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{POSTGRES_BENCH_DB}"


# -- the app in this process: API calls and polling ------------------------------


class BenchApp:
    """The real app against the bench database, with an API token; the fake Twilio runs in a thread here."""

    public_url = "http://bench.local"

    def __init__(self, database_url: str, fake):
        from app import create_app
        from app.extensions import db
        from app.models import ApiToken, User

        self.database_url, self.fake = database_url, fake
        self.app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": REDIS_URL,
                "SECRET_KEY": "bench",
                **{key: value for key, value in fake.env().items() if key != "DRY_RUN"},
                "DRY_RUN": False,
                "PUBLIC_BASE_URL": "http://bench.local",
                "MESSAGE_RATE_LIMIT": 0,
            }
        )
        with self.app.app_context():
            upgrade()
            user = User(email="bench@example.com")
            user.set_password("bench-password")
            token_row, self.token = ApiToken.issue(user)
            db.session.add_all([user, token_row])
            db.session.commit()
        self.db = db
        self.client = self.app.test_client()
        self.redis = Redis.from_url(REDIS_URL)

    def worker_env(self, **settings) -> dict:
        return {
            **os.environ,
            **self.fake.env(),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "PUBLIC_BASE_URL": self.public_url,
            **{name: str(value) for name, value in settings.items()},
        }

    def send_campaign(self, campaign_rows: list[dict]) -> int:
        answer = self.client.post(
            "/api/campaign/send",
            json={"name": "Bench", "body": "Hello <<name>>, your order has shipped.", "rows": campaign_rows},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code == 202, answer.text
        return answer.json["campaignId"]

    def wait_completed(self, campaign_id: int, timeout: float = 600) -> None:
        from app.models import Campaign

        deadline = time.monotonic() + timeout
        with self.app.app_context():
            while self.db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)) != "completed":
                self.db.session.rollback()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"campaign {campaign_id} did not complete in {timeout} s")
                time.sleep(0.05)

    def sent_count(self, campaign_id: int) -> int:
        from app.campaigns.counts import campaign_counts

        with self.app.app_context():
            return campaign_counts(campaign_id)["sent"]

    def wait_statuses(self, campaign_id: int, count: int, timeout: float = 120) -> float:
        """Wait until every message of the campaign is recorded delivered; returns `time.monotonic()` then."""
        from app.campaigns.counts import campaign_counts

        deadline = time.monotonic() + timeout
        with self.app.app_context():
            while campaign_counts(campaign_id)["delivered"] < count:
                self.db.session.rollback()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"statuses of campaign {campaign_id} not all recorded in {timeout} s: "
                        f"{campaign_counts(campaign_id)}; callbacks {self.fake.callback_stats()}"
                    )
                time.sleep(0.05)
        return time.monotonic()


@contextmanager
def workers(bench: BenchApp, command: list[str], expected_workers: int, **settings):
    """Run a worker command until the block ends; yield once its workers are registered (imports done)."""
    log = tempfile.NamedTemporaryFile("w", prefix="bench-workers-", suffix=".log", delete=False)
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=bench.worker_env(**settings), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=bench.redis)) < expected_workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start; see {log.name}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        os.unlink(log.name)


@contextmanager
def no_garbage_collection():
    """The fake Twilio runs in this process: a full collection here (50-130 ms measured) would stall its
    clock, and the calls waiting meanwhile would look like a burst that never happened."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- scenarios -------------------------------------------------------------------


def run_pipeline(bench: BenchApp, count: int, latency: float, rate_limit: float, **settings) -> dict:
    """Our pipeline: one API call, 2 worker processes; returns the figures."""
    bench.redis.flushdb()
    with workers(
        bench, [sys.executable, "-m", "app.worker", "--processes", "2"], 2, MESSAGE_RATE_LIMIT=rate_limit, **settings
    ):
        bench.app.config["MESSAGE_RATE_LIMIT"] = rate_limit
        bench.app.config.update(settings)
        bench.fake.set_latency(latency)
        warm_up = bench.send_campaign(rows(20, start=90000))
        bench.wait_completed(warm_up)
        time.sleep(1.2)  # the warm-up leaves the rate window
        bench.fake.reset()
        bench.fake.set_latency(latency)

        with no_garbage_collection():
            started, started_clock = time.perf_counter(), time.monotonic()
            campaign_id = bench.send_campaign(rows(count))
            api_seconds = time.perf_counter() - started
            bench.wait_completed(campaign_id)
            seconds = time.perf_counter() - started
            statuses_at = bench.wait_statuses(campaign_id, count) if bench.fake.callbacks else None
    calls = bench.fake.calls
    sending = calls[-1].at - calls[0].at if len(calls) > 1 else 0.0
    return {
        "started_clock": started_clock,
        "accepted_seconds": calls[-1].at - started_clock,
        "status_seconds": statuses_at - started_clock if statuses_at else None,
        "callbacks": bench.fake.callback_stats() if bench.fake.callbacks else None,
        "sent": bench.sent_count(campaign_id),
        "calls": len(calls),
        "seconds": seconds,
        "api_seconds": api_seconds,
        "rate": count / seconds,
        "send_rate": (len(calls) - 1) / sending if sending else 0.0,
        "busiest_second": bench.fake.max_in_any_window(1.0),
    }


def run_baseline(bench: BenchApp, count: int, latency: float, threads: int = 10) -> dict:
    """The predecessor's design, for comparison (see the module docstring); timed like ours, rows to last send."""
    from app.models import Campaign, Message, utcnow

    bench.redis.flushdb()
    bench.fake.reset()
    bench.fake.set_latency(latency)
    command = [sys.executable, "-m", "bench.bench_campaign", "--baseline-worker", "--threads", str(threads)]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=bench.worker_env())
    try:
        while int(bench.redis.get("bench:baseline:ready") or 0) < threads:
            if process.poll() is not None:
                raise RuntimeError("the baseline worker did not start")
            time.sleep(0.05)
        with bench.app.app_context():
            db = bench.db
            started = time.perf_counter()
            campaign = Campaign(name="Baseline", body="Hello", status="queued")
            db.session.add(campaign)
            db.session.commit()
            now = utcnow()
            db.session.execute(
                insert(Message.__table__),
                [
                    {
                        "campaign_id": campaign.id,
                        "to_phone": phone(n),
                        "channel": "sms",
                        "status": "queued",
                        "body": f"Hello Contact {n}, your order has shipped.",
                        "attempts": 0,
                        "dry_run": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(count)
                ],
            )
            db.session.commit()
            ids = db.session.scalars(select(Message.id).where(Message.campaign_id == campaign.id)).all()
            queue = Queue(BASELINE_QUEUE, connection=bench.redis)
            for message_id in ids:
                queue.enqueue("bench.bench_campaign.baseline_send", message_id, result_ttl=0)
            sent = (
                select(func.count())
                .select_from(Message)
                .where(Message.campaign_id == campaign.id, Message.status == "sent")
            )
            while db.session.scalar(sent) < count:
                db.session.rollback()
                time.sleep(0.05)
            seconds = time.perf_counter() - started
    finally:
        bench.redis.set("bench:baseline:stop", 1)
        process.wait(60)
    return {"sent": count, "calls": len(bench.fake.calls), "seconds": seconds, "rate": count / seconds}


# -- the baseline's worker (runs in its own process) -------------------------------

_baseline = threading.local()


def baseline_send(message_id: int) -> None:
    """One job = one message: a blocking twilio call, then an ORM update and a commit."""
    from twilio.rest import Client

    from app.extensions import db
    from app.models import Message, utcnow

    if not hasattr(_baseline, "client"):
        _baseline.client = Client(
            os.environ["TWILIO_ACCOUNT_SID"],
            os.environ["TWILIO_AUTH_TOKEN"],
            http_client=_rebased_http_client(os.environ["TWILIO_API_BASE_URL"]),
        )
    message = db.session.get(Message, message_id)
    created = _baseline.client.messages.create(to=message.to_phone, from_=os.environ["TWILIO_FROM"], body=message.body)
    message.status, message.sid, message.sent_at, message.attempts = "sent", created.sid, utcnow(), 1
    db.session.commit()


def _rebased_http_client(base_url: str):
    from twilio.http.http_client import TwilioHttpClient

    base = urlsplit(base_url)

    class RebasedHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            parts = urlsplit(url)
            return super().request(
                method, urlunsplit((base.scheme, base.netloc, parts.path, parts.query, "")), *args, **kwargs
            )

    return RebasedHttpClient()


def baseline_worker(threads: int) -> None:
    """Ten threads, each taking one job at a time from the baseline queue, until told to stop."""
    from app import create_app
    from app.extensions import db

    app = create_app()
    redis = Redis.from_url(os.environ["REDIS_URL"])
    queue = Queue(BASELINE_QUEUE, connection=redis)

    def work():
        with app.app_context():
            redis.incr("bench:baseline:ready")
            while not redis.exists("bench:baseline:stop"):
                found = Queue.dequeue_any([queue], None, connection=redis)
                if found is None:
                    time.sleep(0.01)
                    continue
                found[0].perform()
                db.session.remove()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


# -- main --------------------------------------------------------------------------


def unanswered(callbacks: dict) -> str:
    """What the fake Twilio got instead of a 2xx, when anything: refused (an answer of 3xx-5xx) and failed posts."""
    parts = [
        f"{callbacks[key]} {label}" for key, label in (("refused", "refused"), ("errors", "failed")) if callbacks[key]
    ]
    return f"; {', '.join(parts)}" if parts else ""


def report(database: str, scenario: str, figures: dict) -> None:
    line = (
        f"{database:<10} {scenario:<34} {figures['sent']:>7} sent {figures['seconds']:>7.2f} s "
        f"{figures['rate']:>7.0f} msg/s"
    )
    if "api_seconds" in figures:
        line += f"  (API call {figures['api_seconds'] * 1000:.0f} ms)"
    if "accepted_seconds" in figures:
        line += f"  last accepted {figures['accepted_seconds']:.2f} s"
        if figures["status_seconds"] is not None:
            callbacks = figures["callbacks"]
            line += (
                f", last callback answered {callbacks['last_answered_at'] - figures['started_clock']:.2f} s"
                f", last status recorded {figures['status_seconds']:.2f} s "
                f"(callbacks {callbacks['answered']}/{callbacks['posted']} answered"
                f"{unanswered(callbacks)})"
            )
    if figures.get("limit"):
        line += (
            f"  sending {figures['send_rate']:.1f} msg/s = {figures['send_rate'] / figures['limit']:.1%}"
            f" of the limit; busiest second {figures['busiest_second']}"
        )
    print(line, flush=True)


def bench_database(name: str, database_url: str, args) -> None:
    from tests.fake_twilio import FakeTwilio

    with FakeTwilio(callbacks=not args.no_callbacks) as fake:
        bench = BenchApp(database_url, fake)
        with ExitStack() as stack:
            if fake.callbacks:
                bench.public_url = stack.enter_context(web_process(bench.worker_env(MESSAGE_RATE_LIMIT=0)))
            run_scenarios(name, bench, args)


def run_scenarios(name: str, bench: BenchApp, args) -> None:
    for latency in args.latencies:
        figures = run_pipeline(bench, args.rows, latency, 0)
        report(name, f"pipeline, {latency * 1000:.0f} ms, no limit", figures)
        if not args.skip_baseline:
            count = args.baseline_rows if latency == 0 else args.baseline_rows // 4
            baseline = run_baseline(bench, count, latency)
            report(name, f"baseline, {latency * 1000:.0f} ms, no limit", baseline)
            print(f"{'':<10} {'':<34} ratio {figures['rate'] / baseline['rate']:.1f}x", flush=True)
    for limit in args.limits:
        count = int(limit * args.limited_seconds)
        figures = run_pipeline(bench, count, args.limited_latency, limit)
        figures["limit"] = limit
        report(name, f"pipeline, {args.limited_latency * 1000:.0f} ms, limit {limit:g}/s", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="campaign size for the unlimited runs")
    parser.add_argument("--latencies", type=float, nargs="*", default=[0.0, 0.3])
    parser.add_argument("--limits", type=float, nargs="*", default=[50, 200])
    parser.add_argument("--limited-seconds", type=float, default=15, help="messages = limit x this")
    parser.add_argument("--limited-latency", type=float, default=0.3)
    parser.add_argument("--baseline-rows", type=int, default=2_000, help="at 0 ms; a quarter of it at 300 ms")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-callbacks", action="store_true", help="the fake Twilio posts no status callbacks")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL (database jd_bench_d1)")
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(args.threads)
        return
    print(
        f"2 worker processes; SEND_BATCH_SIZE/SEND_CONCURRENCY from the environment or their defaults; "
        f"status callbacks {'off' if args.no_callbacks else 'on'}; {load_line()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as directory:
        bench_database("sqlite", sqlite_url(directory), args)
    if args.postgres:
        bench_database("postgresql", fresh_postgres(), args)


if __name__ == "__main__":
    main()
