"""Journey runs end to end against campaigns, measured in the same run. Prints figures; asserts nothing.

Everything real: PostgreSQL (a scratch database `jd_bench_runs_<pid>`,
dropped at the end) and/or SQLite (a temporary file), Redis (the DB of
`BENCH_REDIS_URL` or `TEST_REDIS_URL`, flushed), `python -m app.worker
--processes 2` as a subprocess (this machine has 2 cores), the fake Twilio
in its own process (no status callbacks), the rate limit off.

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
"""

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from flask_migrate import upgrade
from sqlalchemy import insert, select
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, Audience, AudienceContact, Contact, Run, User
from bench.bench_sender import fake_twilio_process
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


@contextmanager
def worker_processes(database_url: str, twilio_url: str, processes: int = 2):
    """`python -m app.worker --processes N` against the bench database; yields the Popen."""
    env = {
        **os.environ,
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
    env.pop("PUBLIC_BASE_URL", None)  # no status callbacks: this measures sending
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
    return requests.get(f"{twilio_url}/_fake/stats", timeout=5).json()["calls"]


def wait_until(condition, timeout: float = 1800, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(interval)
    return time.perf_counter()


def timed_send(post, twilio_url: str, expected: int) -> tuple[float, float]:
    """Call `post()` (which starts the sending); return seconds until the first and the last accepted call."""
    requests.post(f"{twilio_url}/_fake/reset", timeout=5)
    started = time.perf_counter()
    post()
    first = wait_until(lambda: fake_calls(twilio_url) >= 1, interval=0.02)
    last = wait_until(lambda: fake_calls(twilio_url) >= expected)
    return first - started, last - started


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
        return audience.id


def speed(app, api, database_url: str, args) -> None:
    """A 3-message journey against a campaign of as many messages, at 0 and 300 ms."""
    print(
        f"{'latency':>8} {'contacts':>9} {'journey s':>10} {'msg/s':>7} {'campaign s':>11} {'msg/s':>7}"
        f" {'journey/campaign':>17} {'predecessor msg/s':>18}"
    )
    for latency, count in ((0.0, args.contacts), (0.3, args.slow_contacts)):
        with fake_twilio_process(latency) as twilio_url:
            with worker_processes(database_url, twilio_url):
                send_campaign(api, campaign_rows(30, start=900_000))  # warm up both workers
                wait_until(lambda: fake_calls(twilio_url) >= 30)
                with app.app_context():
                    journey_id = journeys.create_journey(messages_journey()).id
                _, journey_s = timed_send(
                    lambda: start_run(api, journey_id, {"contacts": contacts(count)}), twilio_url, 3 * count
                )
                rows = campaign_rows(3 * count, start=200_000)
                _, campaign_s = timed_send(lambda: send_campaign(api, rows), twilio_url, 3 * count)
            baseline = min(count, args.baseline_contacts)
            baseline_rate = 3 * baseline / predecessor(twilio_url, baseline)
        journey_rate, campaign_rate = 3 * count / journey_s, 3 * count / campaign_s
        print(
            f"{latency * 1000:>6.0f}ms {count:>9} {journey_s:>10.2f} {journey_rate:>7.0f} {campaign_s:>11.2f}"
            f" {campaign_rate:>7.0f} {journey_rate / campaign_rate:>16.0%} {baseline_rate:>18.0f}"
        )


def big(app, api, database_url: str, args) -> None:
    """A one-message journey for a 100,000-contact audience against a campaign of as many rows."""
    count = args.big_contacts
    audience_id = make_audience(app, count)
    with app.app_context():
        journey_id = journeys.create_journey(messages_journey(BODIES[:1])).id
    with fake_twilio_process(0.0) as twilio_url, worker_processes(database_url, twilio_url) as workers:
        send_campaign(api, campaign_rows(30, start=900_000))
        wait_until(lambda: fake_calls(twilio_url) >= 30)
        rss_start = rss_mb(worker_children(workers))
        run_first, run_all = timed_send(
            lambda: start_run(api, journey_id, {"audience_id": audience_id}), twilio_url, count
        )
        rss_end = rss_mb(worker_children(workers))
        with app.app_context():
            wait_until(lambda: _run_status(app) == "completed", timeout=120, interval=0.5)
        rows = campaign_rows(count)
        campaign_first, campaign_all = timed_send(lambda: send_campaign(api, rows), twilio_url, count)
    print(f"{'':>24} {'first message s':>16} {'all accepted s':>15} {'msg/s':>7}")
    print(f"{f'journey, {count:,} contacts':>24} {run_first:>16.1f} {run_all:>15.1f} {count / run_all:>7.0f}")
    print(
        f"{f'campaign, {count:,} rows':>24} {campaign_first:>16.1f} {campaign_all:>15.1f} {count / campaign_all:>7.0f}"
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
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    for kind in args.databases.split(","):
        for mode in args.modes.split(","):
            with bench_database(kind) as database_url:
                app, api = bench_app(database_url)
                print(f"\n== {mode} on {kind} (2 worker processes, rate limit off, no callbacks)")
                if mode == "speed":
                    speed(app, api, database_url, args)
                else:
                    big(app, api, database_url, args)
                    redis_memory_per_queued(app)
                with app.app_context():
                    app.extensions["redis"].flushdb()
                    db.session.remove()
                    db.engine.dispose()
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
