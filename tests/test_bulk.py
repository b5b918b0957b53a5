"""Bulk-write helpers (`app.models.bulk`) on both databases: COPY on PostgreSQL, executemany elsewhere,
and statistics refreshed after a bulk write so the planner keeps reading queued messages by primary key."""

import json
from datetime import datetime

from sqlalchemy import insert, select, text, update

from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import Journey, JourneyVersion, Message, Participation, Run, bulk, step_table, utcnow
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
