"""Journey runs end to end: contacts per second, starting 100,000 contacts, and the predecessor's way.

Prints figures; asserts nothing. Everything real: PostgreSQL (a scratch
database `jd_bench_e2_<pid>`, dropped at the end), Redis DB 5 (flushed),
`python -m app.worker --processes 2` as a subprocess (this machine has 2
cores), the fake Twilio in its own process, the rate limit off.

1. A 3-message journey for N contacts, from the API call that starts the run
   to the last message Twilio accepted, at 0 ms and 300 ms per Twilio call.
2. The predecessor's way, same journey and contacts: one blocking twilio SDK
   call per message, 10 in parallel (10 threads, each taking a contact and
   sending its 3 messages in order); the ratio to (1).
3. Starting a 100,000-contact run from an audience: the request's time, then
   the time until every participation exists and has taken its first step.

    .venv/bin/python -m bench.bench_runs [--contacts 3000] [--slow-contacts 1500] [--baseline-contacts 300]
                                          [--start-contacts 100000] [--no-callbacks]

The fake Twilio posts status callbacks (sent, delivered) to the app under
gunicorn unless `--no-callbacks`; (1) then also reports when the last status
was recorded ("status s").
"""

import argparse
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests
from flask_migrate import upgrade
from sqlalchemy import func, insert, select
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, Audience, AudienceContact, Contact, Message, Participation, User
from bench.bench_sender import fake_twilio_process
from bench.web_server import web_process
from tests.databases import scratch_postgres
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/5"
BODIES = ("Hi <<name>>, your order is confirmed.", "It ships today, <<name>>.", "Thanks for buying, <<name>>!")


def three_messages() -> dict:
    nodes = [{"id": "start", "type": "audience"}]
    nodes += [{"id": f"m{n}", "type": "message", "body": body} for n, body in enumerate(BODIES, 1)]
    nodes += [{"id": "done", "type": "end"}]
    ids = [node["id"] for node in nodes]
    return {
        "format": "journey/v1",
        "name": "Three messages",
        "nodes": nodes,
        "edges": [{"from": a, "to": b} for a, b in zip(ids, ids[1:])],
    }


def delayed_message() -> dict:
    return {
        "format": "journey/v1",
        "name": "Start then wait",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "pause", "type": "delay", "duration": "1d"},
            {"id": "hello", "type": "message", "body": "Hello <<name>>"},
            {"id": "done", "type": "end"},
        ],
        "edges": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "hello"}, {"from": "hello", "to": "done"}],
    }


def contacts(count: int, area: str = "500555") -> list[dict]:
    """Fictional numbers: +1 500 555 xxxx (valid, up to 10,000) for runs, +1 415 xxx xxxx for the audience."""
    return [{"phone": f"+1{area}{n:0{10 - len(area)}d}", "name": f"c{n}"} for n in range(count)]


@contextmanager
def worker_processes(database_url: str, twilio_url: str, processes: int = 2, public_url: str | None = None):
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
        "PUBLIC_BASE_URL": public_url or "https://app.example.com",
        "SECRET_KEY": "bench",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", str(processes)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # let both workers come up before the clock starts
        yield
    finally:
        process.terminate()
        process.wait(30)


def fake_stats(twilio_url: str) -> dict:
    return requests.get(f"{twilio_url}/_fake/stats", timeout=5).json()


def wait_until(condition, timeout: float = 1800, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(interval)
    return time.perf_counter()


def run_journey(app, api, twilio_url: str, count: int) -> tuple[float, float]:
    """Start a 3-message run for `count` contacts through the API; return (request s, end-to-end s)."""
    requests.post(f"{twilio_url}/_fake/reset", timeout=5)
    with app.app_context():
        journey_id = journeys.create_journey(three_messages()).id
    started = time.perf_counter()
    response = api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": contacts(count)})
    requested = time.perf_counter()
    assert response.status_code == 202, response.text
    finished = wait_until(lambda: fake_stats(twilio_url)["calls"] >= 3 * count)
    return requested - started, finished - started, started


def wait_for_statuses(app, count: int, started: float) -> float:
    """Seconds from `started` until `count` messages are recorded delivered (status callbacks applied)."""

    def delivered() -> bool:
        with app.app_context():
            return db.session.scalar(select(func.count()).where(Message.status == "delivered")) >= count

    return wait_until(delivered, timeout=600, interval=0.1) - started


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


def start_big_run(app, api, audience_id: int, count: int) -> tuple[float, float, float]:
    with app.app_context():
        journey_id = journeys.create_journey(delayed_message()).id
    started = time.perf_counter()
    response = api.post(f"/api/journeys/{journey_id}/runs", json={"audience_id": audience_id})
    requested = time.perf_counter()
    assert response.status_code == 202, response.text
    run_id = response.json["run_id"]

    def count_where(*criteria) -> int:
        with app.app_context():
            return db.session.scalar(
                select(func.count()).select_from(Participation).where(Participation.run_id == run_id, *criteria)
            )

    exist = wait_until(lambda: count_where() >= count, interval=0.1)
    stepped = wait_until(lambda: count_where(Participation.state == "delayed") >= count, interval=0.2)
    api.post(f"/api/runs/{run_id}/stop")
    return requested - started, exist - started, stepped - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=3000, help="contacts at 0 ms")
    parser.add_argument("--slow-contacts", type=int, default=1500, help="contacts at 300 ms")
    parser.add_argument("--baseline-contacts", type=int, default=300, help="contacts for the predecessor's way")
    parser.add_argument("--start-contacts", type=int, default=100_000)
    parser.add_argument("--no-callbacks", action="store_true", help="the fake Twilio posts no status callbacks")
    args = parser.parse_args()
    callbacks = not args.no_callbacks

    with scratch_postgres(f"jd_bench_runs_{os.getpid()}") as database_url:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": REDIS_URL,
                "RQ_DASHBOARD_REDIS_URL": REDIS_URL,
                "SECRET_KEY": "bench",
                "DRY_RUN": False,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
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

        print("3-message journey, 2 worker processes, PostgreSQL, rate limit off")
        print(
            f"{'latency':>8} {'contacts':>9} {'request s':>10} {'total s':>8} {'contacts/s':>11} {'msg/s':>7}"
            f" {'predecessor c/s':>16} {'ratio':>6} {'status s':>9}"
        )
        web_env = {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench"}
        web_env |= {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
        for latency, count in ((0.0, args.contacts), (0.3, args.slow_contacts)):
            with ExitStack() as stack:
                twilio_url = stack.enter_context(fake_twilio_process(latency, callbacks))
                public_url = stack.enter_context(web_process(web_env)) if callbacks else None
                with worker_processes(database_url, twilio_url, public_url=public_url):
                    request_s, total_s, started = run_journey(app, api, twilio_url, count)
                    status_s = wait_for_statuses(app, 3 * count, started) if callbacks else None
                baseline_count = min(count, args.baseline_contacts)
                baseline_rate = baseline_count / predecessor(twilio_url, baseline_count)
            rate = count / total_s
            print(
                f"{latency * 1000:>6.0f}ms {count:>9} {request_s:>10.2f} {total_s:>8.2f} {rate:>11.0f}"
                f" {3 * rate:>7.0f} {baseline_rate:>16.1f} {rate / baseline_rate:>5.1f}x"
                f" {f'{status_s:.2f}' if status_s is not None else 'off':>9}"
            )

        print(f"\nStarting a {args.start_contacts:,}-contact run from an audience (journey: start -> 1 day delay)")
        audience_id = make_audience(app, args.start_contacts)
        with fake_twilio_process(0.0) as twilio_url, worker_processes(database_url, twilio_url):
            request_s, exist_s, stepped_s = start_big_run(app, api, audience_id, args.start_contacts)
        print(f"  request (202 with run id): {request_s * 1000:.0f} ms")
        print(f"  every participation exists: {exist_s:.1f} s ({args.start_contacts / exist_s:,.0f}/s)")
        print(
            f"  every contact took its first step (delayed): {stepped_s:.1f} s "
            f"({args.start_contacts / stepped_s:,.0f}/s)"
        )
        with app.app_context():
            app.extensions["redis"].flushdb()
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
