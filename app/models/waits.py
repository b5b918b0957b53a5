"""Bounded lock waits for one piece of work: a webhook answers Twilio within seconds even when the database is busy.

Inside `bounded_waits(seconds)` every transaction the session begins waits
for locks (and, on PostgreSQL, runs each statement) at most until the
deadline: PostgreSQL gets `SET LOCAL lock_timeout/statement_timeout` (gone
with the transaction), SQLite a shorter `busy_timeout` on the connection
(restored when the connection goes back to the pool). A wait past the
deadline raises `OperationalError` instead of hanging the request.
"""

import time
from contextlib import contextmanager

from flask_sqlalchemy.session import Session
from sqlalchemy import event, text

from app.extensions import db

DEADLINE_KEY = "jd_wait_deadline"
SQLITE_DEFAULT_KEY = "jd_busy_timeout_default"


@contextmanager
def bounded_waits(seconds: float):
    """Every transaction of the session begun in this block waits at most until `seconds` from now."""
    session = db.session()
    session.info[DEADLINE_KEY] = time.monotonic() + seconds
    try:
        yield
    finally:
        session.info.pop(DEADLINE_KEY, None)


def init_app(app) -> None:
    """Install the listeners: once for the session class, once per SQLite engine."""
    if not event.contains(Session, "after_begin", _limit_waits):
        event.listen(Session, "after_begin", _limit_waits)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite" and not event.contains(engine, "checkin", _restore_busy_timeout):
        event.listen(engine, "checkin", _restore_busy_timeout)


def _limit_waits(session, _transaction, connection) -> None:
    deadline = session.info.get(DEADLINE_KEY)
    if deadline is None:
        return
    milliseconds = max(1, int((deadline - time.monotonic()) * 1000))
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"),
            {"ms": f"{milliseconds}ms"},
        )
    elif connection.dialect.name == "sqlite":
        info = connection.info
        if SQLITE_DEFAULT_KEY not in info:
            info[SQLITE_DEFAULT_KEY] = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {milliseconds}")


def _restore_busy_timeout(dbapi_connection, record) -> None:
    default = record.info.pop(SQLITE_DEFAULT_KEY, None)
    if default is not None:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(default)}")
