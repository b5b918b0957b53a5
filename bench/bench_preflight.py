"""The pre-flight's estimated duration against the measured duration of real runs at a rate limit.

Prints figures; asserts nothing. Real parts: a scratch SQLite file, Redis
(TEST_REDIS_URL, default DB 7, flushed), one `python -m app.worker`
subprocess, the fake Twilio in its own process. For each case the preview
is asked first (`POST /api/journeys/<id>/runs/preview`), then the same body
starts the run; measured = from the start request to the last message the
fake Twilio accepted.

    .venv/bin/python -m bench.bench_preflight [--contacts 200] [--rate 20]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, User
from bench.bench_runs import contacts, fake_stats, wait_until
from bench.bench_sender import fake_twilio_process
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def journey(messages: int) -> dict:
    nodes = [{"id": "start", "type": "audience"}]
    nodes += [{"id": f"m{n}", "type": "message", "body": f"Message {n} for <<name>>"} for n in range(1, messages + 1)]
    nodes += [{"id": "done", "type": "end"}]
    ids = [node["id"] for node in nodes]
    return {
        "format": "journey/v1",
        "name": f"{messages} messages",
        "nodes": nodes,
        "edges": [{"from": a, "to": b} for a, b in zip(ids, ids[1:])],
    }


def worker(database_url: str, twilio_url: str, rate: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": SMS_FROM,
        "TWILIO_API_BASE_URL": twilio_url,
        "DRY_RUN": "0",
        "MESSAGE_RATE_LIMIT": str(rate),
        "PUBLIC_BASE_URL": "https://app.example.com",
        "SECRET_KEY": "bench",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(app, api, twilio_url: str, messages: int, count: int) -> tuple[dict, float]:
    requests.post(f"{twilio_url}/_fake/reset", timeout=5)
    with app.app_context():
        journey_id = journeys.create_journey(journey(messages)).id
    body = {"contacts": contacts(count)}
    preview = api.post(f"/api/journeys/{journey_id}/runs/preview", json=body).json
    started = time.perf_counter()
    response = api.post(f"/api/journeys/{journey_id}/runs", json=body)
    assert response.status_code == 202, response.text
    finished = wait_until(lambda: fake_stats(twilio_url)["calls"] >= messages * count, timeout=600)
    return preview, finished - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="MESSAGE_RATE_LIMIT, messages per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fake_twilio_process(0.05) as twilio_url:
        database_url = f"sqlite:///{folder}/bench.sqlite3"
        config = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_DASHBOARD_REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "DRY_RUN": False,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": SMS_FROM,
            "TWILIO_API_BASE_URL": twilio_url,
            "MESSAGE_RATE_LIMIT": args.rate,
        }
        app = create_app(config)
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
        process = worker(database_url, twilio_url, args.rate)
        try:
            time.sleep(3)  # let the worker come up before the clock starts
            measure(app, api, twilio_url, 1, 5)  # warm-up, not counted: the worker's first jobs load the Twilio SDK
            print(
                f"load average {os.getloadavg()[0]:.2f} (2 cores); MESSAGE_RATE_LIMIT={args.rate:g}/s; fake Twilio 50 ms"
            )
            print(f"{'messages':>8} {'contacts':>9} {'estimate s':>11} {'measured s':>11} {'measured/estimate':>18}")
            print("(measured: from the start request to the last message the fake Twilio accepted)")
            for messages in (1, 2):
                preview, measured = measure(app, api, twilio_url, messages, args.contacts)
                estimate = preview["estimated_seconds"]
                print(
                    f"{messages:>8} {args.contacts:>9} {estimate:>11.1f} {measured:>11.1f} {measured / estimate:>18.2f}"
                )
            print(f"load average {os.getloadavg()[0]:.2f} after")
        finally:
            process.terminate()
            process.wait(30)
            with app.app_context():
                app.extensions["redis"].flushdb()


if __name__ == "__main__":
    main()
