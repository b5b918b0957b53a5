"""Benchmark the live run page on a synthetic 100,000-contact run, in PostgreSQL and in SQLite.

Builds the run with bulk inserts (participations in a realistic mix of states and nodes, ~7 steps each,
messages with their status events, replies), then times with the Flask test client: the run page, its live
fragment, a contacts-table page (filtered and not) and the CSV export (rows per second). Prints the median of
several requests; asserts nothing.

Run: .venv/bin/python bench/bench_run_page.py [--contacts N] [--only sqlite|postgresql] [--keep]
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade
from sqlalchemy import create_engine, func, insert, select, text, update

from app import create_app
from app.extensions import db
from app.models import (
    Audience,
    AudienceContact,
    Contact,
    InboundMessage,
    Journey,
    JourneyVersion,
    Message,
    MessageEvent,
    Participation,
    Run,
    Step,
    User,
    utcnow,
)
from app.queues import get_redis
from app.runs.read_models.tally import SETTLE_SECONDS

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "jd_bench_g_run_page"
REDIS_URL = "redis://127.0.0.1:6379/6"
EMAIL, PASSWORD = "bench@example.com", "bench password 123"
JOURNEY = {
    "format": "journey/v1",
    "name": "Delivery check",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Hi <<name|there>>! Did order <<order_id>> arrive? Reply YES/NO."},
        {"id": "ask", "type": "wait", "timeout": "2h"},
        {"id": "thanks", "type": "message", "body": "Great, thanks <<name|friend>>!"},
        {"id": "sorry", "type": "message", "body": "Sorry about that! Someone will call you today."},
        {"id": "again", "type": "message", "body": "Please answer YES or NO."},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"from": "start", "to": "hello"},
        {"from": "hello", "to": "ask"},
        {"from": "ask", "to": "thanks", "when": {"keywords": ["yes", "y", "sim"]}},
        {"from": "ask", "to": "sorry", "when": {"keywords": ["no", "n", "não"]}},
        {"from": "ask", "to": "sorry", "when": "timeout"},
        {"from": "ask", "to": "again", "when": "fallback"},
        {"from": "again", "to": "ask"},
        {"from": "thanks", "to": "done"},
        {"from": "sorry", "to": "done"},
    ],
}
# (weight, final state, path of edge indexes taken, reply that chose the branch)
PROFILES = [
    (0.02, "active", [], None),
    (0.03, "sending", [0], None),
    (0.27, "waiting", [0, 1], None),
    (0.03, "waiting", [0, 1, 5, 6], "maybe"),
    (0.25, "completed", [0, 1, 2, 7], "yes"),
    (0.10, "completed", [0, 1, 3, 8], "no"),
    (0.20, "completed", [0, 1, 4, 8], None),
    (0.03, "failed", [0], None),
    (0.02, "filtered", [], None),
    (0.04, "stopped", [0, 1], None),
    (0.01, "opted_out", [0, 1], "STOP"),
]
MESSAGE_STATUSES = [
    ("delivered", 0.70),
    ("read", 0.08),
    ("sent", 0.12),
    ("undelivered", 0.04),
    ("failed", 0.03),
    ("queued", 0.03),
]
ERROR_CODES = (30003, 30005, 30006, 30007, 21614)
CHUNK = 5000


def _bulk(table, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        db.session.execute(insert(table), rows[start : start + CHUNK])


def synthesise(contacts: int, seed: int = 7) -> int:
    """Insert a run of `contacts` participations with their history; return the run id."""
    rng = random.Random(seed)
    now = utcnow()
    started = now - timedelta(minutes=30)
    user = User(email=EMAIL)
    user.set_password(PASSWORD)
    journey = Journey(name=JOURNEY["name"], draft=JOURNEY)
    db.session.add_all([user, journey])
    db.session.flush()
    version = JourneyVersion(journey_id=journey.id, number=1, definition=JOURNEY, created_by_id=user.id)
    audience = Audience(name="Bench buyers", columns=["phone", "name", "order_id"], total=contacts)
    db.session.add_all([version, audience])
    db.session.flush()
    run = Run(
        journey_id=journey.id,
        version_id=version.id,
        audience_id=audience.id,
        status="active",
        total=contacts,
        created_by_id=user.id,
        created_at=started,
    )
    db.session.add(run)
    db.session.flush()

    _bulk(
        Contact.__table__,
        [
            {
                "id": n,
                "phone": f"+1555{n:07d}",
                "name": f"Contact {n}",
                "fields": {"order_id": f"A-{n}", "city": "Oakland"},
                "opted_out": False,
                "created_at": started,
                "updated_at": started,
            }
            for n in range(1, contacts + 1)
        ],
    )
    _bulk(AudienceContact.__table__, [{"audience_id": audience.id, "contact_id": n} for n in range(1, contacts + 1)])
    weights = [profile[0] for profile in PROFILES]
    statuses, status_weights = zip(*MESSAGE_STATUSES, strict=True)
    edges = JOURNEY["edges"]
    participations, steps, messages, events, inbound = [], [], [], [], []
    message_id = event_id = step_id = inbound_id = 0
    for n in range(1, contacts + 1):
        _weight, state, path, reply = rng.choices(PROFILES, weights)[0]
        at = started + timedelta(seconds=n * 0.01)
        node = "start"
        visits = {"start": 1}
        history = [("enter", "start", {"visit": 1})]
        for index in path:
            edge = edges[index]
            if edge["from"] == "ask" and reply is not None:
                inbound_id += 1
                inbound.append(
                    {
                        "id": inbound_id,
                        "sid": f"SMIN{inbound_id:030d}",
                        "from_phone": f"+1555{n:07d}",
                        "channel": "sms",
                        "body": reply,
                        "contact_id": n,
                        "participation_id": n,
                        "outcome": "matched",
                        "received_at": at,
                    }
                )
                history.append(
                    ("reply", "ask", {"text": reply, "payload": None, "matched": True, "inbound_id": inbound_id})
                )
            history.append(
                ("edge", edge["from"], {"from": edge["from"], "to": edge["to"], "index": index, "label": ""})
            )
            node = edge["to"]
            visits[node] = visits.get(node, 0) + 1
            history.append(("enter", node, {"visit": visits[node]}))
            if node in ("hello", "thanks", "sorry", "again"):
                message_id += 1
                status = "queued" if state == "sending" else rng.choices(statuses, status_weights)[0]
                if node != "hello" or state != "failed":
                    status = status if status not in ("failed", "undelivered") or state != "waiting" else "delivered"
                else:
                    status = "failed"
                code = rng.choice(ERROR_CODES) if status in ("failed", "undelivered") else None
                accepted = status not in ("queued", "failed")  # failed here: refused when sent
                messages.append(
                    {
                        "id": message_id,
                        "participation_id": n,
                        "run_id": run.id,
                        "node_id": node,
                        "idempotency_key": f"{n}:{node}:{visits[node]}",
                        "contact_id": n,
                        "to_phone": f"+1555{n:07d}",
                        "channel": "sms",
                        "body": "Hi there!",
                        "status": status,
                        "sid": f"SM{message_id:032d}" if accepted else None,
                        "error_code": code,
                        "attempts": 1,
                        "dry_run": False,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
                for reached in {
                    "queued": [],
                    "sent": ["sent"],
                    "delivered": ["sent", "delivered"],
                    "read": ["sent", "delivered", "read"],
                    "failed": ["failed"],
                    "undelivered": ["sent", "undelivered"],
                }[status]:
                    event_id += 1
                    events.append(
                        {
                            "id": event_id,
                            "message_id": message_id,
                            "status": reached,
                            "error_code": code if reached in ("failed", "undelivered") else None,
                            "at": at,
                        }
                    )
                history.append(("message", node, {"message_id": message_id, "status": status}))
        if state == "waiting" and rng.random() < 0.05:
            inbound_id += 1
            inbound.append(
                {
                    "id": inbound_id,
                    "sid": f"SMIN{inbound_id:030d}",
                    "from_phone": f"+1555{n:07d}",
                    "channel": "sms",
                    "body": rng.choice(["what?", "who is this", "ok"]),
                    "contact_id": n,
                    "participation_id": n,
                    "outcome": "unmatched",
                    "received_at": at,
                }
            )
            history.append(
                ("reply", "ask", {"text": "what?", "payload": None, "matched": False, "inbound_id": inbound_id})
            )
        if state == "filtered":
            node = "start"
        wake_at = None
        if state == "waiting":
            wake_at = at + timedelta(hours=2) if rng.random() > 0.01 else now - timedelta(minutes=3)
        variables = {"reply": reply} if reply else {}
        participations.append(
            {
                "id": n,
                "run_id": run.id,
                "contact_id": n,
                "state": state,
                "node_id": node,
                "engine_state": {
                    "node_id": node,
                    "status": state,
                    "variables": variables,
                    "visits": visits,
                    "fields": {"phone": f"+1555{n:07d}", "name": f"Contact {n}", "order_id": f"A-{n}"},
                },
                "wake_at": wake_at,
                "error": "message failed: 30003" if state == "failed" else None,
                "lock_version": len(history),
                "started_at": at,
                "updated_at": at,
            }
        )
        for kind, node_id, detail in history:
            step_id += 1
            steps.append(
                {
                    "id": step_id,
                    "participation_id": n,
                    "run_id": run.id,
                    "kind": kind,
                    "node_id": node_id,
                    "detail": detail,
                    "at": at,
                }
            )
    _bulk(Participation.__table__, participations)
    _bulk(Step.__table__, steps)
    _bulk(Message.__table__, messages)
    _bulk(MessageEvent.__table__, events)
    _bulk(InboundMessage.__table__, inbound)
    db.session.commit()
    _fix_sequences()
    print(
        f"  synthesised: {contacts:,} participations, {len(steps):,} steps, {len(messages):,} messages, "
        f"{len(events):,} events, {len(inbound):,} replies"
    )
    return run.id


def _fix_sequences() -> None:
    """PostgreSQL: move the id sequences past the inserted ids, and vacuum as autovacuum soon would after
    such a bulk insert (index-only scans need the visibility map). SQLite is left as the app leaves it."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in ("contact", "participation", "step", "message", "message_event", "inbound_message"):
        db.session.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))")
        )
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def login(client) -> None:
    import re

    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code


def timed(client, url: str, repeat: int = 7) -> tuple[float, int]:
    """Median milliseconds of `repeat` GETs (after one warm-up) and the response size.

    Fragments (`/_partials/`, `/contacts`) are asked for as htmx asks for them.
    """
    headers = {"HX-Request": "true"} if "/_partials/" in url or "/contacts" in url else {}
    client.get(url, headers=headers)
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        body = response.get_data()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 286), (url, response.status_code)
        size = len(body)
    return statistics.median(times), size


def export_rate(client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url, buffered=False)
    rows = sum(chunk.count(b"\n") for chunk in response.response) - 1
    response.close()
    return rows / (time.perf_counter() - started), rows


def bench(name: str, database_url: str, contacts: int) -> None:
    print(f"{name}: {database_url.split('@')[-1]}")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_DASHBOARD_REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False,
        }
    )
    with app.app_context():
        upgrade()
        run_id = db.session.scalar(db.select(Run.id).limit(1))
        if run_id is None:
            started = time.perf_counter()
            run_id = synthesise(contacts)
            print(f"  inserted in {time.perf_counter() - started:.1f} s")
        db.session.remove()
    client = app.test_client()
    login(client)
    with app.app_context():
        get_redis().delete(f"jd:run-page:{run_id}")
        started = time.perf_counter()
        client.get(f"/runs/{run_id}/_partials/live", headers={"HX-Request": "true"})
        print(
            f"  {'first look (no tally)':<26} {(time.perf_counter() - started) * 1000:7.1f} ms  "
            "(counts the whole history once, then keeps the tally in Redis)"
        )
    middle = contacts // 2
    for label, url in [
        ("run page", f"/runs/{run_id}"),
        ("live fragment", f"/runs/{run_id}/_partials/live"),
        ("contacts, first page", f"/runs/{run_id}/contacts"),
        ("contacts, middle page", f"/runs/{run_id}/contacts?after={middle}"),
        ("contacts, state=waiting", f"/runs/{run_id}/contacts?state=waiting&after={middle}"),
        ("contacts, node=ask", f"/runs/{run_id}/contacts?node=ask&after={middle}"),
        ("contacts, error 30003", f"/runs/{run_id}/contacts?error=30003"),
        ("contacts, overdue", f"/runs/{run_id}/contacts?overdue=1"),
        ("contacts, search phone", f"/runs/{run_id}/contacts?q=555+000+12"),
        ("contacts, search name", f"/runs/{run_id}/contacts?q=Contact+99"),
        ("contact timeline", f"/runs/{run_id}/contacts/{middle}"),
        ("home page", "/"),
    ]:
        median, size = timed(client, url)
        print(f"  {label:<26} {median:7.1f} ms  ({size / 1024:.0f} KiB)")
    with app.app_context():
        fresh_steps, fresh_events = add_activity(run_id)
    median, size = timed(client, f"/runs/{run_id}/_partials/live")
    print(
        f"  {'live fragment, busy run':<26} {median:7.1f} ms  ({fresh_steps:,} steps and {fresh_events:,} "
        f"status events from the last {SETTLE_SECONDS} s, not settled yet)"
    )
    rate, rows = export_rate(client, f"/runs/{run_id}/export.csv")
    print(f"  {'CSV export':<26} {rate:9,.0f} rows/s  ({rows:,} rows)")
    time_start_request(app, client, run_id)


def add_activity(run_id: int, steps: int = 5000, events: int = 2000) -> tuple[int, int]:
    """What a busy run adds in a few seconds: new steps and delivery callbacks, stamped now."""
    now = utcnow()
    first = db.session.scalar(select(func.min(Participation.id)).where(Participation.run_id == run_id))
    _bulk(
        Step.__table__,
        [
            {
                "participation_id": first + n,
                "run_id": run_id,
                "kind": kind,
                "node_id": "ask",
                "at": now,
                "detail": {"visit": 2} if kind == "enter" else {"from": "ask", "to": "again", "index": 5, "label": ""},
            }
            for n in range(steps // 2)
            for kind in ("edge", "enter")
        ],
    )
    sent = db.session.scalars(
        select(Message.id).where(Message.run_id == run_id, Message.status == "sent").limit(events)
    ).all()
    _bulk(MessageEvent.__table__, [{"message_id": message_id, "status": "delivered", "at": now} for message_id in sent])
    db.session.execute(update(Message).where(Message.id.in_(sent)).values(status="delivered"))
    db.session.commit()
    return steps // 2 * 2, len(sent)


def time_start_request(app, client, run_id: int) -> None:
    """The start-run form's request for a 100,000-contact audience (the runner's job inserts them later)."""
    with app.app_context():
        run = db.session.get(Run, run_id)
        journey_id, audience_id = run.journey_id, run.audience_id
    started = time.perf_counter()
    response = client.post("/runs/", data={"journey_id": journey_id, "audience_id": audience_id})
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 302, response.status_code
    print(f"  {'start-run request':<26} {elapsed:7.1f} ms  (audience of {run.total:,}; then redirects to the run)")
    with app.app_context():  # leave the database as it was: drop the new run and its queued job
        new_id = int(response.headers["Location"].rsplit("/", 1)[1])
        db.session.delete(db.session.get(Run, new_id))
        db.session.commit()
        get_redis().flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--keep", action="store_true", help="keep the databases for another run")
    args = parser.parse_args()
    if args.only != "postgresql":
        path = Path(tempfile.gettempdir()) / f"jd_bench_g_run_page_{args.contacts}.sqlite3"
        if not args.keep:
            path.unlink(missing_ok=True)
        bench("SQLite", f"sqlite:///{path}", args.contacts)
    if args.only != "sqlite":
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"{BENCH_DATABASE}_{args.contacts}"
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and not args.keep:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = False
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        bench("PostgreSQL", POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", args.contacts)
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
