"""Bulk-write helpers (`app.models.bulk`) on both databases: COPY and `unnest` statements on PostgreSQL,
executemany elsewhere, and statistics refreshed after a bulk write so that the planner keeps reading
queued messages by primary key."""

import json
import re
from datetime import datetime

from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import JSON, event, insert, select, text, update

from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import (
    Journey,
    JourneyVersion,
    Message,
    Participation,
    Run,
    bulk,
    event_table,
    participation_table,
    step_table,
    utcnow,
)
from app.models.contacts import Contact
from app.runs import lifecycle, runner
from app.sending import messaging
from tests.examples import EXAMPLES_DIR

AWKWARD_DETAIL = {
    "text": 'tab\there, newline\nthere, back\\slash, "quotes", \\N and a NUL-free ☃',
    "nested": {"list": [1, 2.5, None, True], "empty": {}},
}


def _participation(phone: str = "+15005550006") -> Participation:
    journey = Journey(name="bulk", draft={})
    db.session.add(journey)
    db.session.flush()
    version = JourneyVersion(journey_id=journey.id, number=1, definition={})
    db.session.add(version)
    db.session.flush()
    run = Run(journey_id=journey.id, version_id=version.id, status="active", total=1)
    contact = Contact(phone=phone, name="Ana", fields={})
    db.session.add_all([run, contact])
    db.session.flush()
    participation = Participation(run_id=run.id, contact_id=contact.id, state="active")
    db.session.add(participation)
    db.session.commit()
    return participation


def _step_rows(participation, count: int) -> list[dict]:
    at = datetime(2026, 12, 7, 13, 45, 1, 250000)
    return [
        {
            "participation_id": participation.id,
            "run_id": participation.run_id,
            "kind": "enter",
            "node_id": None if index % 2 else f"node-{index}",
            "detail": {**AWKWARD_DETAIL, "index": index},
            "at": at,
        }
        for index in range(count)
    ]


def test_insert_rows_writes_every_value_as_given(app):
    participation = _participation()
    rows = _step_rows(participation, 3)
    bulk.insert_rows(step_table, rows)
    db.session.commit()
    s = step_table.c
    stored = db.session.execute(select(s.participation_id, s.run_id, s.kind, s.node_id, s.detail, s.at).order_by(s.id))
    assert [dict(row._mapping) for row in stored] == rows


def test_insert_rows_is_part_of_the_transaction(app):
    participation = _participation()
    bulk.insert_rows(step_table, _step_rows(participation, 5))
    db.session.rollback()
    bulk.insert_rows(step_table, [])
    db.session.commit()
    assert db.session.scalar(select(db.func.count()).select_from(step_table)) == 0


def _stale_statistics_then_queued(count: int) -> list[int]:
    """Statistics taken when the log held only delivered messages, then `count` queued ones they don't know of."""
    now = utcnow()
    old = {"to_phone": "+15005550006", "channel": "sms", "body": "old", "status": "delivered"}
    db.session.execute(insert(Message.__table__), [{**old, "created_at": now, "updated_at": now}] * 2000)
    db.session.commit()
    db.session.execute(text("ANALYZE message"))
    db.session.commit()
    fresh = [
        {"to_phone": f"+1415555{index:04d}", "channel": "sms", "body": "hi", "status": "queued"}
        for index in range(count)
    ]
    if fresh:
        db.session.execute(insert(Message.__table__), [{**row, "created_at": now, "updated_at": now} for row in fresh])
        db.session.commit()
    return db.session.scalars(select(Message.id).where(Message.status == "queued").order_by(Message.id)).all()


def _plans(statements: list[tuple[str, object]]) -> list[str]:
    """The plan of each recorded (statement, driver parameters), as text."""
    postgres = db.engine.dialect.name == "postgresql"
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        plans = []
        for statement, parameters in statements:
            cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters)
            plans.append("\n".join(str(row[0] if postgres else row[-1]) for row in cursor.fetchall()))
        connection.rollback()
    finally:
        connection.close()
    return plans


def test_sending_reads_its_batch_by_primary_key_whatever_the_statistics_say(app, fake_twilio):
    """Statistics taken before 100,000 messages were queued made claiming 200 of them by id walk every
    queued row of the status index (measured: 100-500 ms a batch): a batch's statements must not."""
    queued = _stale_statistics_then_queued(5000)
    recorded = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.match(r"\s*UPDATE message\b", statement):
            recorded.append((statement, parameters[0] if executemany else parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        outcomes = messaging.deliver(queued[:200])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(outcomes) == 200 and all(outcome.ok for outcome in outcomes)
    plans = _plans(recorded)
    assert len(plans) >= 3  # the opted-out check, the claim, the results
    by_primary_key = "pk_message" if db.engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
    for (statement, _parameters), plan in zip(recorded, plans, strict=True):
        assert "ix_message_status" not in plan, (statement[:120], plan)
        if "WHERE message.id IN" in statement:  # the opted-out check and the claim: 200 keys in the statement
            assert by_primary_key in plan, (statement[:120], plan)


def test_a_big_campaign_refreshes_the_statistics_on_postgresql(app, api):
    _stale_statistics_then_queued(0)
    rows = [{"phone": f"+1415555{index:04d}"} for index in range(bulk.REFRESH_STATISTICS_AFTER)]
    app.config["MESSAGE_RATE_LIMIT"] = 0
    answer = api.post("/api/campaign/send", json={"body": "hello", "rows": rows})
    assert answer.status_code == 202, answer.json
    if db.engine.dialect.name == "postgresql":
        common = db.session.scalar(
            text("SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'message' AND attname = 'status'")
        )
        assert "queued" in common  # the planner knows most messages are queued now
    else:  # SQLite's statistics (made only by an explicit ANALYZE) are left as they were
        stat = text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'message' AND idx = 'ix_message_status_next_attempt'")
        assert db.session.scalar(stat).startswith("2000 ")


def test_big_imports_and_run_preparations_refresh_their_tables_statistics(app, monkeypatch):
    refreshed = []
    monkeypatch.setattr(bulk, "REFRESH_STATISTICS_AFTER", 40)
    monkeypatch.setattr(bulk, "refresh_statistics", lambda *tables: refreshed.append({t.name for t in tables}))
    small = "".join(f"+1500555{index:04d},Person {index}\n" for index in range(39))
    audiences.import_audience("Small", f"phone,name\n{small}".encode())
    assert refreshed == []
    rows = "".join(f"+1415555{index:04d},Person {index}\n" for index in range(40))
    audience, _ = audiences.import_audience("Big", f"phone,name\n{rows}".encode())
    assert refreshed == [{"contact", "audience_contact"}]
    journey = journeys.create_journey(json.loads((EXAMPLES_DIR / "welcome.json").read_text()))
    run = lifecycle.start_run(journey, audience_id=audience.id)
    assert lifecycle.prepare_run(run.id) == 40
    assert refreshed[1:] == [{"participation"}]


def test_per_row_updates_each_row_with_its_own_values_in_one_statement(app):
    participation = _participation()
    p = participation_table.c
    updates = bulk.PerRow(
        {"b_id": p.id.type, "b_version": p.lock_version.type, "b_state": p.state.type, "b_engine_state": JSON()},
        lambda row: (
            update(participation_table)
            .where(p.id == row.b_id, p.lock_version == row.b_version)
            .values(state=row.b_state, engine_state=row.b_engine_state, lock_version=p.lock_version + 1)
        ),
    )
    fresh = {"b_id": participation.id, "b_version": 0, "b_state": "waiting", "b_engine_state": AWKWARD_DETAIL}
    stale = {"b_id": participation.id + 1000, "b_version": 0, "b_state": "failed", "b_engine_state": None}
    assert updates.execute([fresh, stale]).rowcount == 1  # only the row whose id and version match
    assert updates.execute([fresh]).rowcount == 0  # its version moved on: the compare-and-set fails
    db.session.commit()
    stored = db.session.execute(select(p.state, p.engine_state, p.lock_version).where(p.id == participation.id)).one()
    assert tuple(stored) == ("waiting", AWKWARD_DETAIL, 1)


def test_per_row_arrays_go_to_postgresql_in_binary_and_come_back_exact(app):
    """In the text format psycopg escapes every quote of a JSON element with a regex (7 ms of client CPU for
    a 200-row participation update); `bulk.BinaryArray` binds the arrays as `BinaryList`s, sent in binary."""
    participations = [_participation(f"+1500555000{index}") for index in range(3)]
    p = participation_table.c
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((cursor, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        rows = [
            {
                "b_id": row.id,
                "b_version": 0,
                "b_state": state,
                "b_node_id": node,
                "b_engine_state": engine_state,
                "b_wake_at": None,
                "b_updated_at": utcnow(),
                "b_error": error,
            }
            for row, state, node, engine_state, error in zip(
                participations,
                ["waiting", "failed", "active"],
                ["ask", None, 'a "quoted", {braced} node'],
                [AWKWARD_DETAIL, {}, {"visits": {"ask": 2}}],
                [None, "NULL", None],
                strict=True,
            )
        ]
        assert runner._PARTICIPATION_UPDATES.execute(rows).rowcount == 3
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    db.session.commit()
    cursor, parameters = sent[-1]
    if db.engine.dialect.name == "postgresql":
        arrays = [value for name, value in parameters.items() if name.startswith("b_")]
        assert len(arrays) == 8 and all(isinstance(value, bulk.BinaryList) for value in arrays)
        assert cursor.adapters.get_dumper(bulk.BinaryList, PyFormat.AUTO) is ListBinaryDumper
    else:  # SQLite: one executemany of the three rows
        assert len(parameters) == 3
    stored = db.session.execute(
        select(p.state, p.node_id, p.engine_state, p.error, p.lock_version)
        .where(p.id.in_([r.id for r in participations]))
        .order_by(p.id)
    ).all()
    assert [tuple(row) for row in stored] == [
        ("waiting", "ask", AWKWARD_DETAIL, None, 1),
        ("failed", None, {}, "NULL", 1),
        ("active", 'a "quoted", {braced} node', {"visits": {"ask": 2}}, None, 1),
    ]


def test_insert_ignore_rows_keeps_what_is_there_and_adds_the_rest(app):
    participation = _participation()
    now = utcnow()
    events = bulk.InsertIgnoreRows(event_table, ["message_id", "status"], ["message_id", "status", "error_code", "at"])
    message = Message(participation_id=participation.id, to_phone="+15005550006", channel="sms", body="hi")
    db.session.add(message)
    db.session.commit()
    events.execute([{"message_id": message.id, "status": "sent", "error_code": None, "at": now}])
    again = {"message_id": message.id, "status": "sent", "error_code": 1, "at": now}
    failed = {"message_id": message.id, "status": "failed", "error_code": 30008, "at": now}
    events.execute([again, failed])
    db.session.commit()
    e = event_table.c
    stored = db.session.execute(select(e.status, e.error_code).order_by(e.id)).all()
    assert [tuple(row) for row in stored] == [("sent", None), ("failed", 30008)]
