"""Run statistics, exact and cheap: grouped counts over indexed columns, never stored counters that drift.

Used by `GET /api/runs/<id>` (`run_summary`), `GET /api/runs/<id>/contacts`
(`contacts_page`) and the run pages. Every state of the contract and every
node of the run's version is present in the answers, zeros included.

The live run page's part (below `live_stats`) keeps a per-run tally of the
append-only history in Redis, only ever as a cache of counts over rows: it is
rebuilt from the rows whenever it is missing.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import and_, case, desc, exists, func, literal_column, or_, select, text, union_all
from sqlalchemy.orm import aliased

from app import engine
from app.extensions import db
from app.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    Contact,
    InboundMessage,
    Message,
    MessageEvent,
    Participation,
    Run,
    Step,
    utcnow,
)
from app.queues import get_redis
from app.runs import runner

STATES = ACTIVE_STATES + FINAL_STATES
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000


def run_summary(run: Run) -> dict:
    """The contract's run answer: id, journey, status, total, states, nodes, messages (plus version)."""
    return {
        "id": run.id,
        "journey_id": run.journey_id,
        "version": run.version.number,
        "status": run.status,
        "total": run.total,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "states": state_counts(run.id),
        "nodes": node_counts(run),
        "messages": message_counts(run.id),
    }


def state_counts(run_id: int) -> dict[str, int]:
    """Participations per contact state."""
    counts = dict.fromkeys(STATES, 0)
    rows = db.session.execute(
        select(Participation.state, func.count()).where(Participation.run_id == run_id).group_by(Participation.state)
    )
    for state, number in rows:
        counts[state] = counts.get(state, 0) + number
    return counts


def node_counts(run: Run) -> dict[str, dict[str, int]]:
    """Per node: `visits` (entries, from the step history), `here` (contacts there, not finished)
    and `ended` (contacts that finished there)."""
    journey = runner.journey_for_version(run.version_id)
    counts = {node.id: {"visits": 0, "here": 0, "ended": 0} for node in journey.nodes}
    if run.final_counts is not None:  # a pruned run: its steps are gone, its counts were kept
        visits = run.final_counts["tally"]["visits"].items()
    else:
        visits = db.session.execute(
            select(Step.node_id, func.count()).where(Step.run_id == run.id, Step.kind == "enter").group_by(Step.node_id)
        )
    for node_id, number in visits:
        if node_id in counts:
            counts[node_id]["visits"] = number
    positions = db.session.execute(
        select(Participation.node_id, Participation.state, func.count())
        .where(Participation.run_id == run.id, Participation.node_id.is_not(None))
        .group_by(Participation.node_id, Participation.state)
    )
    for node_id, state, number in positions:
        if node_id in counts:
            counts[node_id]["here" if state in ACTIVE_STATES else "ended"] += number
    return counts


def message_counts(run_id: int) -> dict[str, int]:
    """Cumulative, as in the contract: `sent` = accepted by Twilio (has a sid) including those later
    delivered, read or failed; `delivered` = delivered or read; `failed` = failed or undelivered at any
    stage; `queued` = not yet accepted. `canceled` (never sent: run stopped, contact opted out) is extra."""
    counts = {"queued": 0, "sent": 0, "delivered": 0, "failed": 0, "canceled": 0}
    rows = db.session.execute(
        select(Message.status, func.count(), func.count(Message.sid))
        .join(Participation, Participation.id == Message.participation_id)
        .where(Participation.run_id == run_id)
        .group_by(Message.status)
    )
    for status, number, accepted in rows:
        counts["sent"] += accepted
        if status in ("queued", "sending"):
            counts["queued"] += number
        elif status in ("delivered", "read"):
            counts["delivered"] += number
        elif status in ("failed", "undelivered"):
            counts["failed"] += number
        elif status == "canceled":
            counts["canceled"] += number
    return counts


def contacts_page(run: Run, page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> dict:
    """One page of the run's contacts (in the order they joined), each with its messages in order.

    `per_page` is capped at `MAX_PER_PAGE`; pages start at 1.
    """
    page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)
    p = Participation
    rows = db.session.execute(
        select(
            p.id,
            p.contact_id,
            Contact.phone,
            Contact.name,
            p.state,
            p.node_id,
            p.engine_state,
            p.error,
            p.wake_at,
            p.started_at,
            p.updated_at,
        )
        .join(Contact, Contact.id == p.contact_id)
        .where(p.run_id == run.id)
        .order_by(p.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    messages: dict[int, list[dict]] = {row.id: [] for row in rows}
    if rows:
        for message in db.session.scalars(
            select(Message).where(Message.participation_id.in_(list(messages))).order_by(Message.id)
        ):
            messages[message.participation_id].append(_message_json(message))
    total = db.session.scalar(select(func.count()).where(p.run_id == run.id))
    return {
        "run_id": run.id,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": (total + per_page - 1) // per_page,
        "contacts": [
            {
                "participation_id": row.id,
                "contact_id": row.contact_id,
                "phone": row.phone,
                "name": row.name,
                "state": row.state,
                "node": row.node_id,
                "vars": (row.engine_state or {}).get("variables", {}),
                "error": row.error,
                "wake_at": _iso(row.wake_at),
                "started_at": _iso(row.started_at),
                "updated_at": _iso(row.updated_at),
                "messages": messages[row.id],
            }
            for row in rows
        ],
    }


def _message_json(message: Message) -> dict:
    return {
        "id": message.id,
        "node": message.node_id,
        "channel": message.channel,
        "body": message.body,
        "content_sid": message.content_sid,
        "status": message.status,
        "sid": message.sid,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# -- the live run page ---------------------------------------------------------------
#
# The page polls about once a second, so its numbers must cost little even for 100,000 contacts.
# Where contacts are *now* (state x node) is one grouped count over a covering index. What they *did*
# (node visits, edges taken, unmatched replies, message statuses and error codes) comes from the
# append-only history (`Step`, `MessageEvent`) and is tallied incrementally: a per-run tally in Redis
# covers every row up to a "settled" id mark, and each read counts only the rows after it. A row is
# settled once it is `SETTLE_SECONDS` old: a transaction that inserted a lower id commits well within
# that, so no row is skipped. Without Redis (or after a flush) the tally is rebuilt from the rows.

SETTLE_SECONDS = 10
LATE_TIMER = timedelta(minutes=1)
STUCK_AFTER = timedelta(minutes=5)
RATE_WINDOW_SECONDS = 60
TALLY_TTL_SECONDS = 30 * 24 * 3600
WALK_ROWS = 50_000  # an id range up to this long is read by primary key rather than by the run's index
MESSAGE_STATUSES = ("queued", "sent", "delivered", "read", "failed", "undelivered")
FAILED_STATUSES = ("failed", "undelivered")
NO_CODE = "none"
CONTACTS_PER_PAGE = 50
TIMELINE_LIMIT = 1000


@dataclass
class _Tally:
    """Counts over a stretch of a run's history; two tallies add up to the tally of both stretches."""

    visits: Counter = field(default_factory=Counter)  # node id -> entries
    edges: Counter = field(default_factory=Counter)  # edge index -> traversals
    unmatched: int = 0  # replies that matched no edge
    messages: Counter = field(default_factory=Counter)  # cumulative: sent, delivered, read, failed, undelivered
    errors: Counter = field(default_factory=Counter)  # Twilio error code (or "none") -> failed messages

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally(
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
    def from_json(cls, data: dict) -> _Tally:
        return cls(
            Counter(data["visits"]),
            Counter({int(k): v for k, v in data["edges"].items()}),
            int(data["unmatched"]),
            Counter(data["messages"]),
            Counter(data["errors"]),
        )


@dataclass
class LiveStats:
    """Everything the run page shows as numbers, for one moment."""

    states: dict[str, int]
    total: int
    finished: int
    nodes: dict[str, dict[str, int]]
    edges: dict[int, int]
    messages: dict[str, int]
    errors: list[tuple[str, int]]  # (code or "none", failed messages), most frequent first
    unmatched: int
    late_timers: int
    stuck: int
    send_rate: float | None  # messages accepted per second, recently (None: not known yet)
    estimated_finish: datetime | None

    @property
    def overdue(self) -> int:
        return self.late_timers + self.stuck

    @property
    def in_progress(self) -> int:
        return self.states.get("active", 0) + self.states.get("sending", 0)


def live_stats(run: Run, now: datetime | None = None) -> LiveStats:
    """The run page's numbers: cheap enough to compute every second for a run of any size."""
    now = now or utcnow()
    states = dict.fromkeys(STATES, 0)
    journey = runner.journey_for_version(run.version_id)
    nodes = {node.id: {"here": 0, "visits": 0, "ended": 0} for node in journey.nodes}
    p = Participation
    for state, node_id, number in db.session.execute(
        select(p.state, p.node_id, func.count()).where(p.run_id == run.id).group_by(p.state, p.node_id)
    ):
        states[state] = states.get(state, 0) + number
        if node_id in nodes:
            nodes[node_id]["here" if state in ACTIVE_STATES else "ended"] += number
    tally, rate = _run_tally(run, journey, now)
    for node_id, number in tally.visits.items():
        if node_id in nodes:
            nodes[node_id]["visits"] = number
    messages = {status: tally.messages.get(status, 0) for status in MESSAGE_STATUSES}
    # A contact waits at its message node until Twilio accepts the message: one unaccepted message each.
    messages["queued"] = states["sending"]
    late_timers, stuck = _overdue_counts(run.id, now)
    in_progress = states["active"] + states["sending"]
    finish = None
    if rate and in_progress and run.status in ("preparing", "active"):
        finish = now + timedelta(seconds=in_progress / rate)
    return LiveStats(
        states=states,
        total=max(run.total or 0, sum(states.values())),
        finished=sum(states[state] for state in FINAL_STATES),
        nodes=nodes,
        edges=dict(tally.edges),
        messages=messages,
        errors=tally.errors.most_common(),
        unmatched=tally.unmatched,
        late_timers=late_timers,
        stuck=stuck,
        send_rate=rate,
        estimated_finish=finish,
    )


def _run_tally(run: Run, journey: engine.Definition, now: datetime) -> tuple[_Tally, float | None]:
    """The run's history counts (settled part from Redis + rows since), and the recent send rate."""
    if run.final_counts is not None:  # a pruned run: its history is gone, its counts were kept
        return _Tally.from_json(run.final_counts["tally"]), None
    key = f"jd:run-page:{run.id}"
    saved = _load_tally(key, run)
    if not saved["step_mark"] and db.session.get_bind().dialect.name == "postgresql":
        # Counting a whole history once: PostgreSQL's JIT would spend longer compiling than counting.
        db.session.execute(text("SET LOCAL jit = off"))
    settled = _Tally.from_json(saved["settled"])
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


def final_tally(run: Run) -> dict:
    """The whole history's counts of a finished run, as JSON: what `app.runs.prune` keeps on the run."""
    journey = runner.journey_for_version(run.version_id)
    return (_step_tally(journey, run.id, 0) + _event_tally(run.id, 0)).to_json()


def _load_tally(key: str, run: Run) -> dict:
    """The saved tally of this run (a reused run id of an emptied database starts afresh), or an empty one."""
    created = run.created_at.isoformat()
    empty = {"run_created": created, "step_mark": 0, "event_mark": 0, "settled": _Tally().to_json(), "samples": []}
    try:
        raw = get_redis().get(key)
    except RedisError:
        return empty
    if raw is None:
        return empty
    try:
        saved = json.loads(raw)
        _Tally.from_json(saved["settled"])
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


def _step_tally(journey: engine.Definition, run_id: int, after: int, upto: int | None = None) -> _Tally:
    """Node entries, edges taken and unmatched replies among the run's steps with id in (after, upto].

    Entries, and edges out of nodes with a single edge, are counted from the (kind, node) index alone;
    only the edges out of branching nodes and the replies have their JSON detail read.
    """
    s = Step
    window = _in_window(s.id, s.run_id, run_id, after, upto)
    only_edge = {node.id: edges[0].index for node in journey.nodes if len(edges := journey.outgoing(node.id)) == 1}
    tally = _Tally()
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


def _event_tally(run_id: int, after: int, upto: int | None = None) -> _Tally:
    """Cumulative message statuses and failure codes among the run's message events in (after, upto]."""
    tally = _Tally()
    for status, read_without_delivered, code, number in db.session.execute(_event_counts(run_id, after, upto)):
        _add_event(tally, status, read_without_delivered, code, number)
    return tally


def _event_counts(run_id: int, after: int, upto: int | None = None, *leading):
    """(`leading`…, status, read without a delivered event, error code, count) of the run's events in
    (after, upto]."""
    e, m, p = MessageEvent, Message, Participation
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
        .join(p, p.id == m.participation_id)
        .where(_in_window(e.id, p.run_id, run_id, after, upto))
        .group_by(e.status, read_only, e.error_code)
    )


def _add_event(tally: _Tally, status: str, read_without_delivered, code, number: int) -> None:
    tally.messages[status] += number
    if status == "read" and read_without_delivered:
        tally.messages["delivered"] += number
    if status in FAILED_STATUSES:
        tally.errors[str(code) if code is not None else NO_CODE] += number


def _events_up_to(run_id: int, mark: int) -> _Tally:
    """The tally of the run's events up to `mark`, built from scratch cheaply (the first look at a run).

    A message's status only moves forward, so its current status, and whether it has a sid (accepted),
    say which events it had; the events after `mark` are then taken off. Both are read in one
    statement, so they see the same moment.
    """
    m, p = Message, Participation
    no_sid = m.sid.is_(None)
    current = (
        select(literal_column("1"), m.status, no_sid, m.error_code, func.count())
        .join(p, p.id == m.participation_id)
        .where(p.run_id == run_id)
        .group_by(m.status, no_sid, m.error_code)
    )
    newer = _event_counts(run_id, mark, None, literal_column("0"))
    had, taken = _Tally(), _Tally()
    for source, status, flag, code, number in db.session.execute(union_all(current, newer)):
        if source != 1:
            _add_event(taken, status, flag, code, number)
            continue
        if not flag:
            had.messages["sent"] += number
        if status in ("delivered", "read"):
            had.messages["delivered"] += number
        if status == "read" or status in FAILED_STATUSES:
            _add_event(had, status, False, code, number)
    had.messages.subtract(taken.messages)
    had.errors.subtract(taken.errors)
    return _Tally(messages=+had.messages, errors=+had.errors)


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


def _overdue_conditions(now: datetime) -> tuple:
    """(a timer more than a minute late, a contact stuck in active/sending for over five minutes)."""
    p = Participation
    return (
        and_(p.state.in_(("waiting", "delayed")), p.wake_at < now - LATE_TIMER),
        and_(p.state.in_(("active", "sending")), p.updated_at < now - STUCK_AFTER),
    )


def _overdue_counts(run_id: int, now: datetime) -> tuple[int, int]:
    late, stuck = _overdue_conditions(now)
    p = Participation
    # Late timers are found through the `wake_at` index (few, across all runs), not the run's waiting rows.
    return (
        db.session.scalar(select(func.count()).where(p.run_id + 0 == run_id, late)),
        db.session.scalar(select(func.count()).where(p.run_id == run_id, stuck)),
    )


def remembered(run: Run, name: str, fingerprint, compute):
    """`compute()` (JSON data), kept in Redis while `fingerprint` (a count it depends on) stays the same.

    The live page asks every second for lists that change only when a count does (why contacts failed,
    the newest unmatched replies): this asks the database only when that count moved.
    """
    key, stamp = f"jd:run-page:{run.id}:{name}", [run.created_at.isoformat(), fingerprint]
    try:
        raw = get_redis().get(key)
        if raw is not None and (saved := json.loads(raw))["stamp"] == stamp:
            return saved["value"]
    except (RedisError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    with contextlib.suppress(RedisError):
        get_redis().set(key, json.dumps({"stamp": stamp, "value": value}), ex=TALLY_TTL_SECONDS)
    return value


def failure_reasons(run_id: int, limit: int = 5) -> list[list]:
    """Why contacts failed: the most frequent `Participation.error` texts with their counts."""
    p = Participation
    rows = db.session.execute(
        select(p.error, func.count().label("number"))
        .where(p.run_id == run_id, p.state == "failed")
        .group_by(p.error)
        .order_by(desc("number"))
        .limit(limit)
    )
    return [[error or "no reason recorded", number] for error, number in rows]


def unmatched_replies(run_id: int, limit: int = 10) -> list[dict]:
    """The newest replies that matched no edge (including those that fell to `fallback`, or came while
    the contact was not waiting), so the operator can teach the journey new answers (JSON data)."""
    s = Step
    rows = db.session.execute(
        select(s.id, s.participation_id, s.node_id, s.detail, s.at, Contact.phone, Contact.name)
        .join(Participation, Participation.id == s.participation_id)
        .join(Contact, Contact.id == Participation.contact_id)
        .where(s.run_id == run_id, s.kind == "reply", s.detail["matched"].as_boolean().is_not(True))
        .order_by(s.id.desc())
        .limit(limit)
    ).all()
    inbound_ids = [row.detail.get("inbound_id") for row in rows if row.detail.get("inbound_id")]
    outcomes = (
        dict(
            db.session.execute(
                select(InboundMessage.id, InboundMessage.outcome).where(InboundMessage.id.in_(inbound_ids))
            ).all()
        )
        if inbound_ids
        else {}
    )
    replies = []
    for row in rows:
        detail = row.detail or {}
        if detail.get("ignored"):
            why = "came while the contact was not waiting"
        elif outcomes.get(detail.get("inbound_id")) == "matched":
            why = "matched no answer: took the fallback edge"
        else:
            why = "matched no edge: still waiting"
        replies.append(
            {
                "participation_id": row.participation_id,
                "phone": row.phone,
                "name": row.name,
                "node_id": row.node_id,
                "text": detail.get("text") or "",
                "payload": detail.get("payload"),
                "why": why,
                "at": row.at.isoformat(),
            }
        )
    return replies


@dataclass
class ContactFilter:
    """The contacts table's filters; every one optional."""

    state: str | None = None
    node: str | None = None
    search: str | None = None
    error: str | None = None  # a Twilio error code, or "none": contacts with a message that failed so
    overdue: bool = False

    def as_args(self) -> dict:
        args = {
            "state": self.state,
            "node": self.node,
            "q": self.search,
            "error": self.error,
            "overdue": "1" if self.overdue else None,
        }
        return {key: value for key, value in args.items() if value}


@dataclass
class ContactsPage:
    rows: list
    count: int
    first_id: int | None
    last_id: int | None
    has_before: bool
    has_after: bool


def contacts_table(
    run: Run,
    filters: ContactFilter,
    after: int | None = None,
    before: int | None = None,
    per_page: int = CONTACTS_PER_PAGE,
    now: datetime | None = None,
    total: int | None = None,
) -> ContactsPage:
    """One page of the run's contacts, in the order they joined, keyset-paginated on the participation id.

    Never loads more than a page of rows: `after`/`before` are the last/first id of the neighbouring page.
    `total`, the run's number of contacts if the caller knows it, saves counting them when nothing is
    filtered.
    """
    p = Participation
    filtering = _filter_criteria(filters, now or utcnow())
    criteria = [p.run_id == run.id, *filtering]
    counted = select(func.count()).select_from(p).where(*criteria)
    known = total if total is not None and not filtering else None
    # The count rides along in the page's statement, so a search scans the contacts once, not twice.
    count_column = literal_column(str(known)) if known is not None else counted.scalar_subquery()
    query = (
        select(
            p.id,
            p.contact_id,
            Contact.phone,
            Contact.name,
            p.state,
            p.node_id,
            p.wake_at,
            p.error,
            p.updated_at,
            count_column.label("total"),
        )
        .join(Contact, Contact.id == p.contact_id)
        .where(*criteria)
    )
    if before is not None:
        rows = db.session.execute(query.where(p.id < before).order_by(p.id.desc()).limit(per_page + 1)).all()
        has_more, rows = len(rows) > per_page, list(reversed(rows[:per_page]))
        has_before, has_after = has_more, True
    else:
        if after is not None:
            query = query.where(p.id > after)
        rows = db.session.execute(query.order_by(p.id).limit(per_page + 1)).all()
        has_after, rows = len(rows) > per_page, rows[:per_page]
        has_before = after is not None
    count = known if known is not None else rows[0].total if rows else db.session.scalar(counted)
    return ContactsPage(
        rows=rows,
        count=count,
        first_id=rows[0].id if rows else None,
        last_id=rows[-1].id if rows else None,
        has_before=has_before and bool(rows),
        has_after=has_after,
    )


def _filter_criteria(filters: ContactFilter, now: datetime) -> list:
    p = Participation
    criteria = []
    if filters.state:
        criteria.append(p.state == filters.state)
    if filters.node:
        criteria.append(p.node_id == filters.node)
    if filters.overdue:
        criteria.append(or_(*_overdue_conditions(now)))
    if filters.error:
        code = None if filters.error == NO_CODE else _as_int(filters.error)
        # Failed messages are few: find them by status (indexed), then their participations.
        failed = select(Message.participation_id).where(
            Message.status.in_(FAILED_STATUSES),
            Message.error_code.is_(None) if code is None else Message.error_code == code,
        )
        criteria.append(p.id.in_(failed))
    if filters.search:
        text = filters.search.strip()
        digits = re.sub(r"\D", "", text)
        matches = [func.lower(Contact.name).contains(text.lower(), autoescape=True)]
        if len(digits) >= 3 and re.fullmatch(r"[\d\s()+.\-]+", text):
            matches.append(Contact.phone.contains(digits, autoescape=True))
        # Matching contacts first (one scan), then their participations: a rare name would otherwise
        # make the planner walk the whole run in id order looking for it.
        found = select(Contact.id).where(or_(*matches)).cte("found").prefix_with("MATERIALIZED")
        criteria.append(p.contact_id.in_(select(found.c.id)))
    return criteria


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # no Twilio code is negative: matches nothing


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    node_id: str | None
    detail: dict
    message: Message | None = None
    events: list = field(default_factory=list)
    reply: str | None = None  # for an edge: the reply that chose it


def contact_timeline(participation: Participation) -> list[TimelineEntry]:
    """The contact's path through the run, oldest first: nodes entered, edges taken with the reply that
    chose them, each message with its status history, API calls, timers and errors."""
    steps = list(
        db.session.scalars(
            select(Step).where(Step.participation_id == participation.id).order_by(Step.id).limit(TIMELINE_LIMIT)
        )
    )
    messages = {
        message.id: message
        for message in db.session.scalars(select(Message).where(Message.participation_id == participation.id))
    }
    events: dict[int, list] = {}
    if messages:
        for event in db.session.scalars(
            select(MessageEvent).where(MessageEvent.message_id.in_(list(messages))).order_by(MessageEvent.id)
        ):
            events.setdefault(event.message_id, []).append(event)
    entries, last_reply = [], None
    for step in steps:
        detail = step.detail or {}
        entry = TimelineEntry(at=step.at, kind=step.kind, node_id=step.node_id, detail=detail)
        if step.kind == "reply":
            last_reply = detail.get("text")
        elif step.kind == "edge":
            entry.reply, last_reply = last_reply, None
        elif step.kind == "message":
            entry.message = messages.get(detail.get("message_id"))
            entry.events = events.get(detail.get("message_id"), [])
        entries.append(entry)
    return entries
