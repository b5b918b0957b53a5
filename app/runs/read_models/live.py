"""The live run page's numbers: cheap enough to compute every second for a run of any size, and the
lists behind them (why contacts failed, the newest unmatched replies)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import desc, func, select

from app.extensions import db
from app.journeys.versions import journey_for_version
from app.models import Contact, InboundMessage, Participation, Run, Step, utcnow
from app.models.vocabulary import FINAL_STATES, LIVE_RUN_STATUSES, WORKING_STATES, iso_z
from app.queues import get_redis
from app.runs.read_models.positions import overdue_counts, positions
from app.runs.read_models.tally import TALLY_TTL_SECONDS, run_tally

# The page's message figures: cumulative event counts, and "queued" = contacts waiting for a send.
PAGE_MESSAGE_STATUSES = ("queued", "sent", "delivered", "read", "failed", "undelivered")


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
        return sum(self.states.get(state, 0) for state in WORKING_STATES)


def live_stats(run: Run, now: datetime | None = None) -> LiveStats:
    """The run page's numbers: cheap enough to compute every second for a run of any size."""
    now = now or utcnow()
    journey = journey_for_version(run.version_id)
    states, nodes = positions(run.id, journey)
    tally, rate = run_tally(run, journey, now)
    for node_id, number in tally.visits.items():
        if node_id in nodes:
            nodes[node_id]["visits"] = number
    messages = {status: tally.messages.get(status, 0) for status in PAGE_MESSAGE_STATUSES}
    # A contact waits at its message node until Twilio accepts the message: one unaccepted message each.
    messages["queued"] = states["sending"]
    late_timers, stuck = overdue_counts(run.id, now)
    in_progress = sum(states[state] for state in WORKING_STATES)
    finish = None
    if rate and in_progress and run.status in LIVE_RUN_STATUSES:
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
                "at": iso_z(row.at),
            }
        )
    return replies
