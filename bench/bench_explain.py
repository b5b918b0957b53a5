"""Every query a live page or a worker runs, EXPLAIN ANALYZEd on PostgreSQL at 1,000,000 participations.

Prints, per query, where it comes from, its plan's cost and time, the scans
it does on the big tables, and whether any of them is a sequential scan.
Asserts nothing; the last line counts the queries that are not index scans.

The data is built in bulk with `generate_series` in a scratch database
(`jd_bench_explain_<pid>`, dropped at the end): 250,000 contacts, ten runs
of the welcome journey with 100,000 participations each (nine finished, one
live with contacts waiting, delayed and sending), three steps, one message
and one status event per participation, 100,000 inbound messages. The
queries are not written here: they are recorded (SQLAlchemy's
`before_cursor_execute`) while the real code runs — the run page, its live
block, contacts table with filters, a timeline, `GET /api/runs/<id>`, the
sweeper, a timer firing, the message claim and send (dry run), and the
routing of a reply — then each is explained with its own parameters inside a
transaction that is rolled back.

    .venv/bin/python -m bench.bench_explain [--participations 1000000]

Redis: a private `redis-server` on a free port (started and stopped here).
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta

from flask_migrate import upgrade
from sqlalchemy import event, select, text

from app import create_app
from app.extensions import db
from app.journeys import store as journeys
from app.models import ApiToken, InboundMessage, Participation, Run, User, message_table, utcnow
from app.runs import inbound, sweeper
from app.sending import messaging
from bench.bench_sender import free_port
from tests.databases import scratch_postgres
from tests.examples import EXAMPLES_DIR

BIG_TABLES = {"participation", "step", "message", "message_event", "inbound_message", "contact", "audience_contact"}
RUNS = 10
HTMX = {"HX-Request": "true"}
CONTACTS_PER_PARTICIPATION = 4  # each contact is in about four of the ten runs


@contextmanager
def private_redis():
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def build_data(app, participations: int) -> tuple[int, int]:
    """Bulk rows; returns (live run id, version id)."""
    per_run = participations // RUNS
    with app.app_context():
        journey = journeys.create_journey(json.loads((EXAMPLES_DIR / "welcome.json").read_text()))
        version = journeys.publish(journey)
        ids = {
            "journey_id": journey.id,
            "version_id": version.id,
            "per_run": per_run,
            "contacts": max(1000, participations // CONTACTS_PER_PARTICIPATION),
            "runs": RUNS,
        }
        statements = [
            """INSERT INTO contact (phone, name, fields, opted_out, created_at, updated_at)
               SELECT '+1415' || lpad(g::text, 7, '0'), 'c' || g, json_build_object('name', 'c' || g), false,
                      now(), now() FROM generate_series(1, :contacts) g""",
            """INSERT INTO run (journey_id, version_id, status, total, dry_run, created_at, finished_at)
               SELECT :journey_id, :version_id, CASE WHEN r = :runs THEN 'active' ELSE 'completed' END, :per_run,
                      false, now() - (:runs - r) * interval '1 day',
                      CASE WHEN r = :runs THEN NULL ELSE now() - (:runs - r) * interval '1 day' END
               FROM generate_series(1, :runs) r""",
            # Live run: 5 % waiting (for a reply or the timeout),
            # 1 % sending, 2 % failed, the rest completed; finished runs: completed and failed only.
            """INSERT INTO participation (run_id, contact_id, state, node_id, engine_state, wake_at, error,
                                          lock_version, started_at, updated_at)
               SELECT r.id, ((g + r.id * 7919) % :contacts) + 1,
                      CASE WHEN r.status = 'active' AND g % 20 = 0 THEN 'waiting'
                           WHEN r.status = 'active' AND g % 100 = 1 THEN 'sending'
                           WHEN g % 50 = 2 THEN 'failed' ELSE 'completed' END,
                      CASE WHEN r.status = 'active' AND g % 20 = 0 THEN 'ask'
                           WHEN r.status = 'active' AND g % 100 = 1 THEN 'hello' ELSE 'done' END,
                      json_build_object('node_id', 'ask', 'status', 'waiting', 'variables', json_build_object(),
                                        'visits', json_build_object('start', 1, 'hello', 1, 'ask', 1)),
                      CASE WHEN r.status = 'active' AND g % 20 = 0 THEN now() + (g % 7200) * interval '1 second'
                           WHEN r.status = 'active' AND g % 100 = 1 THEN now() + interval '60 seconds' END,
                      CASE WHEN g % 50 = 2 THEN 'message failed: 30003' END,
                      3, r.created_at, r.created_at + interval '1 hour'
               FROM run r CROSS JOIN generate_series(1, :per_run) g""",
            """INSERT INTO step (participation_id, run_id, kind, node_id, detail, at)
               SELECT p.id, p.run_id, k.kind, k.node, json_build_object('visit', 1), p.started_at
               FROM participation p CROSS JOIN (VALUES ('enter', 'hello'), ('edge', 'hello'), ('message', 'hello'))
                    AS k(kind, node)""",
            """INSERT INTO message (participation_id, run_id, node_id, idempotency_key, contact_id, to_phone, channel, body,
                                    status, sid, attempts, dry_run, created_at, updated_at, sent_at)
               SELECT p.id, p.run_id, 'hello', p.id || ':hello:1', p.contact_id, '+1415' || lpad(p.contact_id::text, 7, '0'),
                      'sms', 'Hi there', CASE WHEN p.state = 'sending' THEN 'queued'
                                              WHEN p.state = 'failed' THEN 'failed' ELSE 'delivered' END,
                      CASE WHEN p.state = 'sending' THEN NULL ELSE 'SM' || md5(p.id::text) END,
                      1, false, p.started_at, p.started_at, p.started_at
               FROM participation p""",
            """INSERT INTO message_event (message_id, status, error_code, at)
               SELECT m.id, m.status, CASE WHEN m.status = 'failed' THEN 30003 END, m.created_at
               FROM message m WHERE m.status <> 'queued'""",
            """INSERT INTO inbound_message (sid, from_phone, channel, body, contact_id, participation_id, outcome,
                                            received_at)
               SELECT 'SMin' || p.id, '+1415' || lpad(p.contact_id::text, 7, '0'), 'sms', 'yes', p.contact_id,
                      p.id, 'matched', p.updated_at
               FROM participation p WHERE p.id % 10 = 0""",
        ]
        for number, statement in enumerate(statements, 1):
            started = time.perf_counter()
            db.session.execute(text(statement), ids)
            db.session.commit()
            print(f"  built step {number}/{len(statements)} in {time.perf_counter() - started:.1f} s", flush=True)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        live = db.session.scalar(select(Run.id).where(Run.status == "active"))
        return live, version.id


class Recorder:
    """Every statement the app sends while `recording(label)` is active, with its first parameter set."""

    def __init__(self, engine):
        self.queries: list[tuple[str, str, object]] = []
        self.label = None
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if self.label is None or not re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT|WITH)", statement, re.I):
            return
        if executemany:
            parameters = parameters[0] if parameters else None
        self.queries.append((self.label, statement, parameters))

    @contextmanager
    def recording(self, label: str):
        self.label = label
        try:
            yield
        finally:
            self.label = None


def exercise(app, recorder: Recorder, live_run: int) -> None:
    """Run what pages and workers run, recording their statements."""
    with app.app_context():
        user = User(email="explain@example.com")
        user.set_password("explain-password")
        token_row, token = ApiToken.issue(user)
        db.session.add_all([user, token_row])
        db.session.commit()
        waiting = db.session.execute(
            select(Participation.id, Participation.contact_id)
            .where(Participation.run_id == live_run, Participation.state == "waiting")
            .limit(1)
        ).one()
        sending = list(
            db.session.scalars(
                select(Participation.id).where(Participation.run_id == live_run, Participation.state == "sending")
            )
        )
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    pages = {
        "run page": f"/runs/{live_run}",
        "run page: live block": f"/runs/{live_run}/_partials/live",
        "contacts table": f"/runs/{live_run}/contacts",
        "contacts table: state filter": f"/runs/{live_run}/contacts?state=waiting",
        "contacts table: search": f"/runs/{live_run}/contacts?q=%2B14150001",
        "contacts table: error filter": f"/runs/{live_run}/contacts?error=30003",
        "contacts table: next page": f"/runs/{live_run}/contacts?after=500000",
        "timeline": f"/runs/{live_run}/contacts/{waiting.id}",
        "GET /api/runs/<id>": f"/api/runs/{live_run}",
        "GET /api/runs/<id>/contacts": f"/api/runs/{live_run}/contacts?page=3",
    }
    login = app.test_client()
    for label, url in pages.items():
        with recorder.recording(label):
            # The contacts table and the live block are HTMX fragments: asked for as the page asks for them.
            answer = (client if url.startswith("/api/") else _logged_in(login, app)).get(url, headers=HTMX)
        print(f"  {label}: HTTP {answer.status_code}")
    with app.app_context():
        with recorder.recording("sweeper claim"):
            sweeper.sweep(utcnow() + timedelta(seconds=120))
        message_ids = list(
            db.session.scalars(
                select(message_table.c.id)
                .where(message_table.c.participation_id.in_(sending[:200]))
                .order_by(message_table.c.id)
            )
        )
        with recorder.recording("message claim and send (dry run)"):
            messaging.deliver(messaging.with_waiting_conversations(message_ids[:1]) + message_ids[1:])
        phone = "+1415" + f"{waiting.contact_id:07d}"
        row = InboundMessage(sid="SMexplain", from_phone=phone, channel="sms", body="yes", outcome="received")
        db.session.add(row)
        db.session.commit()
        with recorder.recording("inbound routing"):
            inbound.handle_inbound(row.id)
        db.session.remove()


_logged: dict = {}


def _logged_in(client, app):
    if not _logged:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        client.post(
            "/login", data={"email": "explain@example.com", "password": "explain-password", "csrf_token": token}
        )
        _logged["client"] = client
    return _logged["client"]


def explain_all(app, queries) -> int:
    """EXPLAIN ANALYZE each distinct statement (rolled back); print it; return how many scan a big table."""
    seen, bad = set(), 0
    print(f"\n{'source':<34} {'cost':>10} {'ms':>8}  scans (big tables)")
    with app.app_context():
        for label, statement, parameters in queries:
            key = (label, statement)
            if key in seen:
                continue
            seen.add(key)
            connection = db.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
                plan = cursor.fetchone()[0][0]
                connection.rollback()
            finally:
                connection.close()
            scans = list(_scans(plan["Plan"]))
            seq = [relation for node_type, relation in scans if node_type == "Seq Scan" and relation in BIG_TABLES]
            bad += bool(seq)
            shown = ", ".join(f"{node_type} {relation}" for node_type, relation in scans if relation in BIG_TABLES)
            first_line = " ".join(statement.split())[:90]
            print(
                f"{label[:34]:<34} {plan['Plan']['Total Cost']:>10.0f} {plan['Execution Time']:>8.2f}  "
                f"{shown or 'no big table'}{'  <-- SEQUENTIAL' if seq else ''}\n{'':<36}{first_line}"
            )
    return bad


def _scans(node):
    if "Relation Name" in node:
        yield node["Node Type"], node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _scans(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participations", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with private_redis() as redis_url, scratch_postgres(f"jd_bench_explain_{os.getpid()}") as database_url:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": redis_url,
                "RQ_DASHBOARD_REDIS_URL": redis_url,
                "SECRET_KEY": "explain",
                "DRY_RUN": True,
                "MESSAGE_RATE_LIMIT": 0,
            }
        )
        with app.app_context():
            upgrade()
        print(f"Building {args.participations:,} participations in bulk…")
        started = time.perf_counter()
        live_run, _ = build_data(app, args.participations)
        print(f"built in {time.perf_counter() - started:.0f} s; exercising pages and workers…")
        with app.app_context():
            recorder = Recorder(db.engine)
        exercise(app, recorder, live_run)
        bad = explain_all(app, recorder.queries)
        print(f"\n{len({(q[0], q[1]) for q in recorder.queries})} queries explained; {bad} with a sequential scan")
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
