"""Bulk-write helpers (`app.models.bulk`) on both databases: COPY and `unnest` statements on PostgreSQL,
executemany elsewhere, and statistics refreshed after a bulk write so that the planner keeps reading
queued messages by primary key."""

import json
from datetime import datetime

from sqlalchemy import JSON, insert, select, text, update

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
from app.runs import lifecycle
from app.sending import messaging
from tests.examples import EXAMPLES_DIR

AWKWARD_DETAIL = {
    "text": 'tab\there, newline\nthere, back\\slash, "quotes", \\N and a NUL-free ☃',
    "nested": {"list": [1, 2.5, None, True], "empty": {}},
}


def _participation() -> Participation:
    journey = Journey(name="bulk", draft={})
    db.session.add(journey)
    db.session.flush()
    version = JourneyVersion(journey_id=journey.id, number=1, definition={})
    db.session.add(version)
    db.session.flush()
    run = Run(journey_id=journey.id, version_id=version.id, status="active", total=1)
    contact = Contact(phone="+15005550006", name="Ana", fields={})
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


def _claim_plan(ids: list[int]) -> str:
    m = Message.__table__.c
    statement = (
        update(Message.__table__)
        .where(m.id.in_(ids), m.status == "queued")
        .values(status="sending", attempts=m.attempts + 1, updated_at=utcnow())
        .returning(m.id)
    )
    compiled = statement.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    postgresql = db.engine.dialect.name == "postgresql"
    rows = db.session.execute(text(f"{'EXPLAIN' if postgresql else 'EXPLAIN QUERY PLAN'} {compiled}")).all()
    db.session.rollback()
    return "\n".join(str(row[0] if postgresql else row[-1]) for row in rows)


def test_a_big_campaign_refreshes_statistics_so_claims_read_the_primary_key(app, api):
    """Statistics taken when few messages were queued made claiming 200 queued messages by id scan every
    queued row of the status index (measured: 100-500 ms a batch among 100,000 fresh rows)."""
    now = utcnow()
    sent = [{"to_phone": "+15005550006", "channel": "sms", "body": "old", "status": "delivered"} for _ in range(2000)]
    db.session.execute(insert(Message.__table__), [{**row, "created_at": now, "updated_at": now} for row in sent])
    db.session.commit()
    db.session.execute(text("ANALYZE message"))  # the statistics of a log with nothing queued
    db.session.commit()
    count = bulk.REFRESH_STATISTICS_AFTER
    rows = [{"phone": f"+1415555{index:04d}"} for index in range(count)]
    app.config["MESSAGE_RATE_LIMIT"] = 0
    answer = api.post("/api/campaign/send", json={"body": "hello", "rows": rows})
    assert answer.status_code == 202, answer.json
    queued = db.session.scalars(select(Message.id).where(Message.status == "queued").order_by(Message.id)).all()
    assert len(queued) == count
    plan = _claim_plan(queued[: messaging.batch_size(app.config, bulk=True)])
    by_primary_key = "pk_message" if db.engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
    assert by_primary_key in plan and "ix_message_status" not in plan, plan


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
