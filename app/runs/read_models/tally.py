"""What a run's contacts did, tallied incrementally from the append-only history.

The page polls about once a second, so its numbers must cost little even for 100,000 contacts.
Where contacts are *now* (state x node) is one grouped count over a covering index. What they *did*
(node visits, edges taken, unmatched replies, message statuses and error codes) comes from the
append-only history (`Step`, `MessageEvent`) and is tallied incrementally: a per-run tally in Redis
covers every row up to a "settled" id mark, and each read counts only the rows after it. A row is
settled once it is `SETTLE_SECONDS` old: a transaction that inserted a lower id commits well within
that, so no row is skipped. Without Redis (or after a flush) the tally is rebuilt from the rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import and_, case, exists, func, literal_column, select, text, union_all
from sqlalchemy.orm import aliased

from app import engine
from app.extensions import db
from app.models import Message, MessageEvent, Run, Step
from app.models.vocabulary import DELIVERED_STATUSES, FAILED_STATUSES
from app.queues import get_redis

SETTLE_SECONDS = 10
RATE_WINDOW_SECONDS = 60
TALLY_TTL_SECONDS = 30 * 24 * 3600
WALK_ROWS = 50_000  # an id range up to this long is read by primary key rather than by the run's index
NO_CODE = "none"


@dataclass
class Tally:
    """Counts over a stretch of a run's history; two tallies add up to the tally of both stretches."""

    visits: Counter = field(default_factory=Counter)  # node id -> entries
    edges: Counter = field(default_factory=Counter)  # edge index -> traversals
    unmatched: int = 0  # replies that matched no edge
    messages: Counter = field(default_factory=Counter)  # cumulative: sent, delivered, read, failed, undelivered
    errors: Counter = field(default_factory=Counter)  # Twilio error code (or "none") -> failed messages

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.visits + other.visits,
            self.edges + other.edges,
            self.unmatched + other.unmatched,
            self.messages + other.messages,
            self.errors + other.errors,
        )

    def to_json(self) -> dict:
        return {
            "visits": dict(self.visits),
            "edges": {str(k): v for k, v in self.edges.items()},
            "unmatched": self.unmatched,
            "messages": dict(self.messages),
            "errors": dict(self.errors),
        }

    @classmethod
    def from_json(cls, data: dict) -> Tally:
        return cls(
            Counter(data["visits"]),
            Counter({int(k): v for k, v in data["edges"].items()}),
            int(data["unmatched"]),
            Counter(data["messages"]),
            Counter(data["errors"]),
        )


def run_tally(run: Run, journey: engine.Definition, now: datetime) -> tuple[Tally, float | None]:
    """The run's history counts (settled part from Redis + rows since), and the recent send rate."""
    if run.final_counts is not None:  # a pruned run (`app.runs.prune`): its history is gone, its counts kept
        return Tally.from_json(run.final_counts["tally"]), None
    key = f"jd:run-page:{run.id}"
    saved = _load_tally(key, run)
    if not saved["step_mark"] and db.session.get_bind().dialect.name == "postgresql":
        # Counting a whole history once: PostgreSQL's JIT would spend longer compiling than counting.
        db.session.execute(text("SET LOCAL jit = off"))
    settled = Tally.from_json(saved["settled"])
    cutoff = now - timedelta(seconds=SETTLE_SECONDS)
    step_mark = _settled_mark(Step.__table__, Step.at, saved["step_mark"], cutoff)
    if step_mark > saved["step_mark"]:
        settled += _step_tally(journey, run.id, saved["step_mark"], step_mark)
    event_mark = _settled_mark(MessageEvent.__table__, MessageEvent.at, saved["event_mark"], cutoff)
    if event_mark > saved["event_mark"]:
        settled += (
            _event_tally(run.id, saved["event_mark"], event_mark)
            if saved["event_mark"]
            else _events_up_to(run.id, event_mark)
        )
    tally = settled + _step_tally(journey, run.id, step_mark) + _event_tally(run.id, event_mark)
    stamp = now.timestamp()
    samples = [sample for sample in saved["samples"] if stamp - sample[0] <= 2 * RATE_WINDOW_SECONDS]
    samples.append([stamp, tally.messages.get("sent", 0)])
    _save_tally(
        key,
        {
            "run_created": saved["run_created"],
            "step_mark": step_mark,
            "event_mark": event_mark,
            "settled": settled.to_json(),
            "samples": samples,
        },
    )
    return tally, _rate(samples, stamp)


def final_tally(run: Run, journey: engine.Definition) -> dict:
    """The whole history's counts of a finished run, as JSON: what `app.runs.prune` keeps on the run."""
    return (_step_tally(journey, run.id, 0) + _event_tally(run.id, 0)).to_json()


def _load_tally(key: str, run: Run) -> dict:
    """The saved tally of this run (a reused run id of an emptied database starts afresh), or an empty one."""
    created = run.created_at.isoformat()
    empty = {"run_created": created, "step_mark": 0, "event_mark": 0, "settled": Tally().to_json(), "samples": []}
    try:
        raw = get_redis().get(key)
    except RedisError:
        return empty
    if raw is None:
        return empty
    try:
        saved = json.loads(raw)
        Tally.from_json(saved["settled"])
    except (ValueError, KeyError, TypeError):
        return empty
    return saved if saved.get("run_created") == created else empty


def _save_tally(key: str, data: dict) -> None:
    try:
        get_redis().set(key, json.dumps(data), ex=TALLY_TTL_SECONDS)
    except RedisError:
        pass  # the next read counts from the rows again


def _settled_mark(table, at_column, mark: int, cutoff: datetime) -> int:
    """The newest id (past `mark`) of a row written before `cutoff`: everything up to it is committed."""
    newest = db.session.scalar(
        select(table.c.id).where(table.c.id > mark, at_column < cutoff).order_by(table.c.id.desc()).limit(1)
    )
    return newest if newest is not None else mark


def _step_tally(journey: engine.Definition, run_id: int, after: int, upto: int | None = None) -> Tally:
    """Node entries, edges taken and unmatched replies among the run's steps with id in (after, upto].

    Entries, and edges out of nodes with a single edge, are counted from the (kind, node) index alone;
    only the edges out of branching nodes and the replies have their JSON detail read.
    """
    s = Step
    window = _in_window(s.id, s.run_id, run_id, after, upto)
    only_edge = {node.id: edges[0].index for node in journey.nodes if len(edges := journey.outgoing(node.id)) == 1}
    tally = Tally()
    for kind, node_id, number in db.session.execute(
        select(s.kind, s.node_id, func.count()).where(window, s.kind.in_(("enter", "edge"))).group_by(s.kind, s.node_id)
    ):
        if kind == "enter":
            tally.visits[node_id] += number
        elif node_id in only_edge:
            tally.edges[only_edge[node_id]] += number
    branching = [node.id for node in journey.nodes if node.id not in only_edge]
    if branching:
        edge_index = s.detail["index"].as_integer()
        for index, number in db.session.execute(
            select(edge_index, func.count())
            .where(window, s.kind == "edge", s.node_id.in_(branching))
            .group_by(edge_index)
        ):
            if index is not None:
                tally.edges[int(index)] += number
    tally.unmatched = db.session.scalar(
        select(func.count()).where(window, s.kind == "reply", s.detail["matched"].as_boolean().is_not(True))
    )
    return tally


def _event_tally(run_id: int, after: int, upto: int | None = None) -> Tally:
    """Cumulative message statuses and failure codes among the run's message events in (after, upto]."""
    tally = Tally()
    for status, read_without_delivered, code, number in db.session.execute(_event_counts(run_id, after, upto)):
        _add_event(tally, status, read_without_delivered, code, number)
    return tally


def _event_counts(run_id: int, after: int, upto: int | None = None, *leading):
    """(`leading`…, status, read without a delivered event, error code, count) of the run's events in
    (after, upto]."""
    e, m = MessageEvent, Message
    delivered_too = aliased(MessageEvent)
    # A message read without a `delivered` callback (they can come out of order) was delivered too.
    read_only = case(
        (
            e.status == "read",
            ~exists().where(delivered_too.message_id == e.message_id, delivered_too.status == "delivered"),
        ),
        else_=False,
    )
    return (
        select(*leading, e.status, read_only, e.error_code, func.count())
        .join(m, m.id == e.message_id)
        .where(_in_window(e.id, m.run_id, run_id, after, upto))
        .group_by(e.status, read_only, e.error_code)
    )


def _add_event(tally: Tally, status: str, read_without_delivered, code, number: int) -> None:
    tally.messages[status] += number
    if status == "read" and read_without_delivered:
        tally.messages["delivered"] += number
    if status in FAILED_STATUSES:
        tally.errors[str(code) if code is not None else NO_CODE] += number


def _events_up_to(run_id: int, mark: int) -> Tally:
    """The tally of the run's events up to `mark`, built from scratch cheaply (the first look at a run).

    A message's status only moves forward, so its current status, and whether it has a sid (accepted),
    say which events it had; the events after `mark` are then taken off. Both are read in one
    statement, so they see the same moment.
    """
    m = Message
    no_sid = m.sid.is_(None)
    current = (
        select(literal_column("1"), m.status, no_sid, m.error_code, func.count())
        .where(m.run_id == run_id)
        .group_by(m.status, no_sid, m.error_code)
    )
    newer = _event_counts(run_id, mark, None, literal_column("0"))
    had, taken = Tally(), Tally()
    for source, status, flag, code, number in db.session.execute(union_all(current, newer)):
        if source != 1:
            _add_event(taken, status, flag, code, number)
            continue
        if not flag:
            had.messages["sent"] += number
        if status in DELIVERED_STATUSES:
            had.messages["delivered"] += number
        if status == "read" or status in FAILED_STATUSES:
            _add_event(had, status, False, code, number)
    had.messages.subtract(taken.messages)
    had.errors.subtract(taken.errors)
    return Tally(messages=+had.messages, errors=+had.errors)


def _in_window(id_column, run_column, run_id: int, after: int, upto: int | None):
    """Rows of the run with id in (after, upto]. A short id range is walked by primary key (the run's
    index would visit all its rows: `run_id + 0` keeps planners off it); a long one goes by the run."""
    newest = upto if upto is not None else db.session.scalar(select(func.max(id_column))) or 0
    criteria = [id_column > after] if upto is None else [id_column > after, id_column <= upto]
    if newest - after <= WALK_ROWS:
        return and_(run_column + 0 == run_id, *criteria)
    return and_(run_column == run_id, *criteria)


def _rate(samples: list, stamp: float) -> float | None:
    """Messages accepted per second over the last minute of samples (None until 3 s of them exist)."""
    recent = [sample for sample in samples if stamp - sample[0] <= RATE_WINDOW_SECONDS]
    first, last = recent[0], recent[-1]
    if last[0] - first[0] < 3:
        return None
    return max(0.0, (last[1] - first[1]) / (last[0] - first[0]))
