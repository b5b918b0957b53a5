"""Twilio status callbacks: stored as they arrive, applied to the message log in bulk, never moving a status back.

The webhook only stores a callback and answers: `CallbackWriter.store`
hands the row to its process's writer thread, which stores the rows of
all requests waiting at that moment in one INSERT and one commit (repeats
of a sid and status ignored), so the commit, the costly part, is shared.
`apply_pending`, run by the sweeper in every worker and between sweeps
once a burst of callbacks stops (`ArrivalWatch`), applies the stored rows
in batches: it claims a batch by
deleting it and applies it in the same transaction, so each callback is
applied once whoever runs it, and PostgreSQL appliers skip rows another
holds. A callback whose sid is not in the log yet (Twilio can call back
before the send job stores the sid) stays parked in the table; the send job
applies it as soon as it stores that sid (`_apply_early_statuses`).
"""

import contextlib
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select, update

from app.extensions import db
from app.models import message_table, status_callback_table, utcnow
from app.models.bulk import BinaryList, InsertIgnoreRows, insert_ignore
from app.models.vocabulary import CALLBACK_STATUSES, FAILED_STATUSES, STATUS_RANK
from app.sending.channels import explain_error
from app.sending.log import _insert_events

APPLY_BATCH = 1000  # callbacks applied per transaction
SIDS_PER_QUERY = 500
# A parked callback whose sid never reaches the log (sent by another system on the same account) is dropped after.
PARKED_FOR = timedelta(hours=24)
WRITE_BATCH = 500  # callbacks stored per commit by a writer, at most
# How long a writer lets a batch gather once its first row came: bigger batches, fewer commits under load.
GATHER_SECONDS = 0.002
WRITTEN_COLUMNS = ("sid", "status", "error_code", "received_at")

logger = logging.getLogger(__name__)


def callback_row(sid: str, status: str, error_code=None) -> dict | None:
    """The row to store for a callback as Twilio posted it; None without a sid or with a status we don't know."""
    ours = CALLBACK_STATUSES.get((status or "").strip().lower())
    if not sid or ours is None:
        return None
    code = _as_code(error_code) if ours in FAILED_STATUSES else None
    return {"sid": sid[:64], "status": ours, "error_code": code, "received_at": utcnow()}


def store_status(sid: str, status: str, error_code=None) -> bool:
    """Store one callback in the session's transaction and commit; False when there was nothing to store."""
    row = callback_row(sid, status, error_code)
    if row is None:
        return False
    db.session.execute(insert_ignore(status_callback_table, ["sid", "status"]), [row])
    db.session.commit()
    return True


class CallbackWriter:
    """Stores the callbacks of concurrent requests in one INSERT and one commit (a group commit).

    One per process (`for_app`), with its own connection. A request hands
    its row over and waits until the batch holding it is committed, so it is
    stored before the answer; a batch that fails (database down), or is not
    committed within `wait_seconds` + 1 (database busy), is reported to each
    of its requests, which answer 503 so that Twilio tries again.
    """

    def __init__(self, engine, wait_seconds: float):
        self.engine, self.wait_seconds = engine, wait_seconds
        self.pending = queue.SimpleQueue()
        self.connection = self.cursor = None
        self.pid = os.getpid()
        self.write_batch = _batch_writer(engine.dialect)
        self.thread = threading.Thread(target=self._write_forever, name="callback-writer", daemon=True)
        self.thread.start()

    @classmethod
    def for_app(cls, app, wait_seconds: float) -> "CallbackWriter":
        """This process's writer for the app (made on first use, and again in a forked child)."""
        writer = app.extensions.get("callback_writer")
        if writer is None or writer.pid != os.getpid():
            with _WRITER_LOCK:
                writer = app.extensions.get("callback_writer")
                if writer is None or writer.pid != os.getpid():
                    with app.app_context():
                        writer = app.extensions["callback_writer"] = cls(db.engine, wait_seconds)
        return writer

    def store(self, row: dict) -> bool:
        """Hand one row to the writer; True once it is committed, False if it could not be (in time)."""
        handed = _Handed(row)
        self.pending.put(handed)
        return handed.done.acquire(timeout=self.wait_seconds + 1) and handed.stored

    def close(self) -> None:
        """Stop the writer once what was handed over before is written, and close its connection."""
        self.pending.put(None)
        self.thread.join(self.wait_seconds + 1)

    def _write_forever(self) -> None:
        while (batch := self._next_batch()) is not None:
            stored = self._write([handed.row for handed in batch])
            for handed in batch:
                handed.stored = stored
                handed.done.release()
        self._disconnect()

    def _next_batch(self) -> list["_Handed"] | None:
        """The rows handed over by now (after a short gather), at most `WRITE_BATCH`; None once closed."""
        first = self.pending.get()
        if first is None:
            return None
        time.sleep(GATHER_SECONDS)
        batch = [first]
        while len(batch) < WRITE_BATCH:
            try:
                handed = self.pending.get_nowait()
            except queue.Empty:
                break
            if handed is None:
                self.pending.put(None)  # closed: this batch is the last
                break
            batch.append(handed)
        return batch

    def _write(self, rows: list[dict]) -> bool:
        """One INSERT of every row (a repeated sid and status is ignored); False if it failed."""
        try:
            self.write_batch(self.cursor or self._connect(), rows)
            return True
        except Exception:
            logger.exception("could not store %d status callbacks (answered 503: Twilio retries them)", len(rows))
            self._disconnect()
            return False

    def _disconnect(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):  # it may be gone already (the database restarted)
                self.connection.close()
            self.connection = self.cursor = None

    def _connect(self):
        """A cursor on a driver connection of the writer's own (out of the pool), in autocommit: a batch is
        one statement and its own transaction, one round trip.

        The writer talks to the driver directly: its one statement needs none
        of SQLAlchemy's per-execution work (an execution context and a new
        cursor per batch), which took a twelfth of a web process's
        interpreter time at a thousand callbacks a second.
        SQLite's lock waits are capped on it. PostgreSQL's are not: a session
        setting would leak to other clients through a PgBouncer in
        transaction mode, and a cap per transaction cost a tenth of the
        callback rate (BEGIN, the cap and COMMIT around each batch). `store`
        gives up at `wait_seconds` + 1 either way, and a batch that waited
        out a lock is stored when the lock goes (Twilio's retry is then a
        repeat, ignored).
        """
        connection = self.engine.raw_connection()
        driver = connection.driver_connection
        connection.detach()  # closing it now closes the driver connection
        if self.engine.dialect.name == "sqlite":
            driver.isolation_level = None
            driver.execute(f"PRAGMA busy_timeout = {int(self.wait_seconds * 1000)}")
        else:
            driver.autocommit = True
        self.connection, self.cursor = connection, driver.cursor()
        return self.cursor


def _batch_writer(dialect):
    """(driver cursor, rows) -> None: INSERT all the rows in one statement, repeats of a sid and status ignored.

    PostgreSQL gets `bulk.InsertIgnoreRows`'s statement, the same whatever
    the count (one array per column expanded by `unnest`), compiled once to
    the driver's SQL and prepared on the server: psycopg and the server parse
    and plan it once (a VALUES list per count was parsed afresh each time: a
    twentieth of a web process's busy time); the arrays go in binary
    (`bulk.BinaryList`). SQLite gets a VALUES list of that many rows: one
    statement, since in autocommit an executemany would commit every row.
    """
    table, tail = status_callback_table, " ON CONFLICT (sid, status) DO NOTHING"
    if dialect.name == "postgresql":
        unnest = InsertIgnoreRows(table, ["sid", "status"], list(WRITTEN_COLUMNS)).statement(postgres=True)
        insert = str(unnest.compile(dialect=dialect))

        def unnested(cursor, rows):
            arrays = {column: BinaryList(row[column] for row in rows) for column in WRITTEN_COLUMNS}
            cursor.execute(insert, arrays, prepare=True)

        return unnested
    head = f"INSERT INTO {table.name} ({', '.join(WRITTEN_COLUMNS)}) "
    processors = [table.c[column].type.bind_processor(dialect) for column in WRITTEN_COLUMNS]
    one_row = "(" + ", ".join("?" * len(WRITTEN_COLUMNS)) + ")"

    def values_list(cursor, rows):
        values = tuple(
            process(row[column]) if process else row[column]
            for row in rows
            for column, process in zip(WRITTEN_COLUMNS, processors, strict=True)
        )
        cursor.execute(f"{head}VALUES {', '.join([one_row] * len(rows))}{tail}", values)

    return values_list


class _Handed:
    """A row handed to the writer; `done` is a lock held until the writer has tried to store it (cheaper than an Event)."""

    __slots__ = ("done", "row", "stored")

    def __init__(self, row: dict):
        self.row, self.stored, self.done = row, False, threading.Lock()
        self.done.acquire()


_WRITER_LOCK = threading.Lock()


def record_status(sid: str, status: str, error_code=None) -> bool:
    """Store a callback and apply it now; True when its message moved forward (False: unknown yet, or a repeat)."""
    if not store_status(sid, status, error_code):
        return False
    moved = _apply(_claim([sid]))
    db.session.commit()
    return moved > 0


def apply_pending(batch: int = APPLY_BATCH) -> int:
    """Apply every stored callback whose message is in the log, `batch` per transaction; return how many."""
    applied = 0
    while True:
        rows = _claim(None, batch)
        _apply(rows)
        db.session.commit()
        applied += len(rows)
        if len(rows) < batch:
            break
    _drop_stale_parked()
    return applied


class ArrivalWatch:
    """Applies stored callbacks once they stop arriving, between sweeps: prompt after a burst, in bulk during one.

    A worker's sweeper applies callbacks twice a second, in bulk. Between
    sweeps (every `worker.APPLY_INTERVAL`) this reads the newest stored id
    (the end of an index) and applies when that id is new since its last
    apply and unchanged since its last look: the burst is over. So the last
    statuses of a campaign land within two looks of their callbacks, while
    a stream of them is left to the sweeps' bigger batches (applying at every
    look took sending time from a busy PostgreSQL). Parked rows never count
    as new, so an idle worker only reads. Whatever it leaves, a sweep applies.
    """

    def __init__(self):
        self.last_look = self.applied_up_to = None

    def apply_arrived(self) -> int:
        """Apply stored callbacks if new ones arrived and then stopped; return how many were applied."""
        newest = _newest_stored()
        quiet, self.last_look = newest == self.last_look, newest
        if newest is None or not quiet or newest == self.applied_up_to:
            return 0
        applied = apply_pending()
        self.applied_up_to = self.last_look = _newest_stored()  # what is left (parked) must not count as new
        return applied


def _newest_stored() -> int | None:
    newest = db.session.scalar(select(func.max(status_callback_table.c.id)))
    db.session.commit()
    return newest


def _apply_early_statuses(sids: Iterable[str]) -> int:
    """Apply the callbacks parked for these sids (just stored by a send job or crash recovery); return how many."""
    wanted = list(dict.fromkeys(sid for sid in sids if sid))
    applied = 0
    for start in range(0, len(wanted), SIDS_PER_QUERY):
        rows = _claim(wanted[start : start + SIDS_PER_QUERY])
        _apply(rows)
        db.session.commit()
        applied += len(rows)
    return applied


def _claim(sids: list[str] | None, limit: int | None = None):
    """Delete (and return) stored callbacks whose message is in the log: those for `sids`, or the oldest `limit`."""
    cb, m = status_callback_table.c, message_table.c
    chosen = select(cb.id).join(message_table, m.sid == cb.sid)
    if sids is not None:
        chosen = chosen.where(cb.sid.in_(sids))
    if limit is not None:
        chosen = chosen.order_by(cb.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(of=status_callback_table, skip_locked=True)
    return db.session.execute(
        delete(status_callback_table)
        .where(cb.id.in_(chosen.scalar_subquery()))
        .returning(cb.id, cb.sid, cb.status, cb.error_code, cb.received_at)
    ).all()


def _apply(rows) -> int:
    """Move the messages of these claimed callbacks forward, lowest status first; return how many moved."""
    groups = defaultdict(list)
    for row in sorted(rows, key=lambda row: (STATUS_RANK[row.status], row.id)):
        groups[(row.status, row.error_code)].append(row)
    events, now = [], utcnow()
    for (status, code), group in groups.items():
        received_at = {row.sid: row.received_at for row in group}
        for message_id, sid in _move(list(received_at), status, code, now):
            events.append({"message_id": message_id, "status": status, "error_code": code, "at": received_at[sid]})
    _insert_events(events)
    return len(events)


def _move(sids: list[str], status: str, error_code: int | None, now) -> list[tuple[int, str]]:
    """Set `status` on the messages with these sids that are behind it; return their (id, sid)."""
    m = message_table.c
    behind = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    values = {"status": status, "updated_at": now}
    if status in FAILED_STATUSES:
        values.update(error_code=error_code, error_message=explain_error(error_code))
    return db.session.execute(
        update(message_table).where(m.sid.in_(sids), m.status.in_(behind)).values(**values).returning(m.id, m.sid)
    ).all()


def _apply_status(sid: str, status: str, error_code: int | None) -> bool | None:
    """Move message `sid` forward to `status` (what Twilio's lookup says): True if it moved, None if no such sid."""
    moved = _move([sid], status, error_code, utcnow())
    if not moved:
        return (
            False if db.session.execute(select(message_table.c.id).where(message_table.c.sid == sid)).first() else None
        )
    _insert_events([{"message_id": moved[0][0], "status": status, "error_code": error_code, "at": utcnow()}])
    return True


def _drop_stale_parked() -> None:
    """Forget parked callbacks too old for their sid ever to be stored here."""
    cb = status_callback_table.c
    dropped = db.session.execute(delete(status_callback_table).where(cb.received_at < utcnow() - PARKED_FOR)).rowcount
    db.session.commit()
    if dropped:
        current_app.logger.warning(
            "dropped %d status callbacks parked over %s: no message of ours has their sid", dropped, PARKED_FOR
        )


def _as_code(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
