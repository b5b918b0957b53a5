"""Journey runs end to end against campaigns, measured in the same run. Prints figures; asserts nothing.

Everything real: PostgreSQL (a scratch database `jd_bench_runs_<pid>`,
dropped at the end) and/or SQLite (a temporary file), Redis (the DB of
`BENCH_REDIS_URL` or `TEST_REDIS_URL`, flushed), `python -m app.worker
--processes 2` as a subprocess (this machine has 2 cores), the fake Twilio
in its own process, the rate limit off. As Twilio does, the fake posts
signed status callbacks (sent, then delivered) to the app served by
gunicorn (`bench.web_server`), whose address the workers get as
`PUBLIC_BASE_URL`; every sending figure then comes with "status s", the
seconds until the last delivered status is recorded. `--no-callbacks` turns
them off (and the web tier with them).

1. speed: a 3-message journey for N contacts, from the API call that starts
   the run to the last message Twilio accepted, at 0 ms and 300 ms per
   Twilio call, against a campaign of the same number of messages (3 N rows)
   with the same workers; and the predecessor's way (one blocking twilio
   SDK call per message, 10 threads).
2. big: a one-message journey for an audience of 100,000 contacts (0 ms):
   seconds from the start request to the first message and to the last one
   Twilio accepted, against a 100,000-row campaign; the workers' memory
   (RSS) at the start and the end of the run; Redis memory per 100,000
   queued messages.

    .venv/bin/python -m bench.bench_runs [--databases postgresql,sqlite] [--modes speed,big]
        [--contacts 3000] [--slow-contacts 1500] [--baseline-contacts 300] [--big-contacts 100000]
        [--no-callbacks]
"""

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from flask_migrate import upgrade
from sqlalchemy import func, insert, select
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, Audience, AudienceContact, Contact, Run, User, bulk, message_table
from app.models.vocabulary import DELIVERED_STATUSES
from bench.bench_sender import fake_twilio_process
from bench.web_server import load_line, web_process
from tests.databases import scratch_postgres
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/4"
BODIES = ("Hi <<name>>, your order is confirmed.", "It ships today, <<name>>.", "Thanks for buying, <<name>>!")


def messages_journey(bodies=BODIES) -> dict:
    nodes = [{"id": "start", "type": "audience"}]
    nodes += [{"id": f"m{n}", "type": "message", "body": body} for n, body in enumerate(bodies, 1)]
    nodes += [{"id": "done", "type": "end"}]
    ids = [node["id"] for node in nodes]
    return {
        "format": "journey/v1",
        "name": f"{len(bodies)} messages",
        "nodes": nodes,
        "edges": [{"from": a, "to": b} for a, b in zip(ids, ids[1:])],
    }


def contacts(count: int, area: str = "500555", start: int = 0) -> list[dict]:
    """Fictional numbers: +1 500 555 xxxx (valid, up to 10,000) for runs, +1 415 xxx xxxx for audiences."""
    return [{"phone": f"+1{area}{n:0{10 - len(area)}d}", "name": f"c{n}"} for n in range(start, start + count)]


def campaign_rows(count: int, start: int = 0) -> list[dict]:
    """Valid numbers +1 206 456 xxxx and on (bench_campaign's), for campaign rows."""
    return [{"phone": f"+1206{4560000 + n:07d}", "name": f"r{n}"} for n in range(start, start + count)]


def worker_children(process: subprocess.Popen) -> list[int]:
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def rss_mb(pids: list[int]) -> list[float]:
    """Resident memory of each process, in MB (from /proc)."""
    sizes = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def service_env(database_url: str, twilio_url: str) -> dict:
    """Settings the workers and the web tier share: the bench database, Redis, the fake Twilio."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": SMS_FROM,
        "TWILIO_API_BASE_URL": twilio_url,
        "DRY_RUN": "0",
        "MESSAGE_RATE_LIMIT": "0",
        "SECRET_KEY": "bench",
    }


@contextmanager
def worker_processes(database_url: str, twilio_url: str, public_url: str | None, processes: int = 2):
    """`python -m app.worker --processes N`; status callbacks go to `public_url` (none if None); yields the Popen."""
    env = {**os.environ, **service_env(database_url, twilio_url)}
    env.pop("PUBLIC_BASE_URL", None)
    if public_url:
        env["PUBLIC_BASE_URL"] = public_url
    process = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", str(processes)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # let the workers come up before the clock starts
        yield process
    finally:
        process.terminate()
        process.wait(30)


def fake_calls(twilio_url: str) -> int:
    return requests.get(f"{twilio_url}/_fake/count", timeout=5).json()["calls"]


def wait_until(condition, timeout: float = 1800, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(interval)
    return time.perf_counter()


def delivered_count(app) -> int:
    """Messages recorded delivered (or read): what the status callbacks applied."""
    with app.app_context():
        m = message_table.c
        return db.session.scalar(
            select(func.count()).select_from(message_table).where(m.status.in_(DELIVERED_STATUSES))
        )


@dataclass
class Rig:
    """The processes a measurement sends through: fake Twilio, workers, and (with callbacks) the web tier."""

    app: object
    twilio_url: str
    workers: subprocess.Popen
    callbacks: bool

    def accepted(self) -> int:
        return fake_calls(self.twilio_url)

    def warm_up(self, api) -> None:
        """A 30-row campaign through both workers (and its callbacks) before any clock starts."""
        delivered = delivered_count(self.app) if self.callbacks else 0
        send_campaign(api, campaign_rows(30, start=900_000))
        wait_until(lambda: self.accepted() >= 30)
        if self.callbacks:
            wait_until(lambda: delivered_count(self.app) >= delivered + 30, timeout=120, interval=0.1)


@contextmanager
def sending_rig(app, database_url: str, latency: float, callbacks: bool):
    """Fake Twilio at `latency`, gunicorn serving the app if `callbacks`, 2 workers; yields a Rig."""
    with ExitStack() as stack:
        twilio_url = stack.enter_context(fake_twilio_process(latency, callbacks))
        public_url = None
        if callbacks:
            public_url = stack.enter_context(web_process(service_env(database_url, twilio_url)))
        workers = stack.enter_context(worker_processes(database_url, twilio_url, public_url))
        yield Rig(app, twilio_url, workers, callbacks)


@dataclass
class Timing:
    """Seconds from the request that starts the sending to the first and the last message accepted, and to
    the last status recorded (None with callbacks off)."""

    first: float
    last: float
    status: float | None

    def status_text(self) -> str:
        return "off" if self.status is None else f"{self.status:.2f}"


def timed_send(rig: Rig, post, expected: int) -> Timing:
    """Call `post()` (which starts `expected` messages); time acceptance and, with callbacks, their statuses."""
    requests.post(f"{rig.twilio_url}/_fake/reset", timeout=5)
    delivered = delivered_count(rig.app) if rig.callbacks else 0
    started = time.perf_counter()
    post()
    first = wait_until(lambda: rig.accepted() >= 1, interval=0.02)
    last = wait_until(lambda: rig.accepted() >= expected)
    status = None
    if rig.callbacks:
        status = wait_until(lambda: delivered_count(rig.app) >= delivered + expected, interval=0.1) - started
    return Timing(first - started, last - started, status)


def start_run(api, journey_id: int, body: dict) -> None:
    response = api.post(f"/api/journeys/{journey_id}/runs", json=body)
    assert response.status_code == 202, response.text


def send_campaign(api, rows: list[dict]) -> None:
    response = api.post(
        "/api/campaign/send", json={"name": "Bench", "body": "Hi <<name>>, it ships today.", "rows": rows}
    )
    assert response.status_code == 202, response.text[:300]


class RebasedHttpClient(TwilioHttpClient):
    """The sync SDK client pointed at the fake Twilio (the predecessor's blocking calls)."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        path = url.split("://", 1)[1].split("/", 1)[1]
        return super().request(method, f"{self.base_url}/{path}", *args, **kwargs)


def predecessor(twilio_url: str, count: int, parallel: int = 10) -> float:
    """Each of `parallel` threads takes a contact and sends its 3 messages, one blocking call each."""
    requests.post(f"{twilio_url}/_fake/reset", timeout=5)
    work = queue.Queue()
    for contact in contacts(count):
        work.put(contact)

    def sender():
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=RebasedHttpClient(twilio_url))
        while True:
            try:
                contact = work.get_nowait()
            except queue.Empty:
                return
            for body in BODIES:
                client.messages.create(
                    to=contact["phone"], from_=SMS_FROM, body=body.replace("<<name>>", contact["name"])
                )

    started = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def make_audience(app, count: int) -> int:
    with app.app_context():
        audience = Audience(name="Bench", total=count)
        db.session.add(audience)
        db.session.flush()
        rows = [
            {"phone": c["phone"], "name": c["name"], "fields": {"name": c["name"]}, "opted_out": False}
            for c in contacts(count, area="415")
        ]
        for start in range(0, count, 10000):
            ids = db.session.execute(insert(Contact).returning(Contact.id), rows[start : start + 10000]).scalars().all()
            db.session.execute(insert(AudienceContact), [{"audience_id": audience.id, "contact_id": i} for i in ids])
        db.session.commit()
        bulk.refresh_statistics(Contact.__table__, AudienceContact.__table__)  # as importing an audience does
        return audience.id


def speed(app, api, database_url: str, args) -> None:
    """A 3-message journey against a campaign of as many messages, at 0 and 300 ms."""
    print(
        f"{'latency':>8} {'contacts':>9} {'journey s':>10} {'msg/s':>7} {'status s':>9} {'campaign s':>11}"
        f" {'msg/s':>7} {'status s':>9} {'journey/campaign':>17} {'predecessor msg/s':>18}"
    )
    for latency, count in ((0.0, args.contacts), (0.3, args.slow_contacts)):
        with sending_rig(app, database_url, latency, args.callbacks) as rig:
            rig.warm_up(api)
            with app.app_context():
                journey_id = journeys.create_journey(messages_journey()).id
            journey = timed_send(rig, lambda: start_run(api, journey_id, {"contacts": contacts(count)}), 3 * count)
            rows = campaign_rows(3 * count, start=200_000)
            campaign = timed_send(rig, lambda: send_campaign(api, rows), 3 * count)
        baseline = min(count, args.baseline_contacts)
        with fake_twilio_process(latency) as twilio_url:
            baseline_rate = 3 * baseline / predecessor(twilio_url, baseline)
        journey_rate, campaign_rate = 3 * count / journey.last, 3 * count / campaign.last
        print(
            f"{latency * 1000:>6.0f}ms {count:>9} {journey.last:>10.2f} {journey_rate:>7.0f}"
            f" {journey.status_text():>9} {campaign.last:>11.2f} {campaign_rate:>7.0f} {campaign.status_text():>9}"
            f" {journey_rate / campaign_rate:>16.0%} {baseline_rate:>18.0f}"
        )


def big(app, api, database_url: str, args) -> None:
    """A one-message journey for a 100,000-contact audience against a campaign of as many rows."""
    count = args.big_contacts
    audience_id = make_audience(app, count)
    with app.app_context():
        journey_id = journeys.create_journey(messages_journey(BODIES[:1])).id
    with sending_rig(app, database_url, 0.0, args.callbacks) as rig:
        rig.warm_up(api)
        rss_start = rss_mb(worker_children(rig.workers))
        run = timed_send(rig, lambda: start_run(api, journey_id, {"audience_id": audience_id}), count)
        rss_end = rss_mb(worker_children(rig.workers))
        with app.app_context():
            wait_until(lambda: _run_status(app) == "completed", timeout=120, interval=0.5)
        rows = campaign_rows(count)
        campaign = timed_send(rig, lambda: send_campaign(api, rows), count)
    print(f"{'':>24} {'first message s':>16} {'all accepted s':>15} {'msg/s':>7} {'last status s':>14}")
    for label, timing in ((f"journey, {count:,} contacts", run), (f"campaign, {count:,} rows", campaign)):
        print(
            f"{label:>24} {timing.first:>16.1f} {timing.last:>15.1f} {count / timing.last:>7.0f}"
            f" {timing.status_text():>14}"
        )
    print(
        f"  worker RSS MB at the run's start {[round(x) for x in rss_start]}, at its end {[round(x) for x in rss_end]}"
    )


def _run_status(app) -> str | None:
    db.session.rollback()
    return db.session.scalar(select(Run.status).order_by(Run.id.desc()).limit(1))


def redis_memory_per_queued(app, count: int = 100_000) -> None:
    """Redis memory taken by the send jobs of `count` queued messages (the jobs only; no worker runs)."""
    from app.sending import messaging

    with app.app_context():
        redis = app.extensions["redis"]
        redis.flushdb()
        before = redis.info("memory")["used_memory"]
        jobs = messaging.enqueue_messages(range(1, count + 1))
        after = redis.info("memory")["used_memory"]
        redis.flushdb()
    print(f"  Redis memory for {count:,} queued messages ({jobs} send jobs): {(after - before) / 1e6:.1f} MB")


@contextmanager
def bench_database(kind: str):
    if kind == "postgresql":
        with scratch_postgres(f"jd_bench_runs_{os.getpid()}") as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.sqlite3"


def bench_app(database_url: str):
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_DASHBOARD_REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "DRY_RUN": False,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": SMS_FROM,
            "MESSAGE_RATE_LIMIT": 0,
        }
    )
    with app.app_context():
        upgrade()
        app.extensions["redis"].flushdb()
        user = User(email="bench@example.com")
        user.set_password("bench")
        token_row, token = ApiToken.issue(user)
        db.session.add_all([user, token_row])
        db.session.commit()
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return app, api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--modes", default="speed,big")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts at 0 ms")
    parser.add_argument("--slow-contacts", type=int, default=1500, help="contacts at 300 ms")
    parser.add_argument("--baseline-contacts", type=int, default=300, help="contacts for the predecessor's way")
    parser.add_argument("--big-contacts", type=int, default=100_000)
    parser.add_argument("--no-callbacks", action="store_true", help="the fake Twilio posts no status callbacks")
    args = parser.parse_args()
    args.callbacks = not args.no_callbacks
    print(f"at start: {load_line()}")
    for kind in args.databases.split(","):
        for mode in args.modes.split(","):
            with bench_database(kind) as database_url:
                app, api = bench_app(database_url)
                callbacks = "status callbacks on" if args.callbacks else "no callbacks"
                print(f"\n== {mode} on {kind} (2 worker processes, rate limit off, {callbacks})")
                if mode == "speed":
                    speed(app, api, database_url, args)
                else:
                    big(app, api, database_url, args)
                    redis_memory_per_queued(app)
                with app.app_context():
                    app.extensions["redis"].flushdb()
                    db.session.remove()
                    db.engine.dispose()
    print(f"\nat end: {load_line()}")


if __name__ == "__main__":
    main()
