"""The run page's aggregates against a small run inserted by hand and counted by hand.

`build_run` makes six contacts, each in a different situation (completed through a reply, waiting with
an unmatched reply, failed on a Twilio error, stuck sending, waiting on a late timer, filtered out);
every number the run page shows is asserted against what that fixture says.
"""

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import (
    Audience,
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
from app.runs.read_models import contacts as run_contacts
from app.runs.read_models import live as run_live
from app.runs.read_models import tally as run_tally

JOURNEY = {
    "format": "journey/v1",
    "name": "Delivery check",
    "channel": "sms",
    "nodes": [
        {"id": "start", "type": "audience"},
        {"id": "hello", "type": "message", "body": "Did order <<order_id>> arrive? Reply YES or NO."},
        {"id": "ask", "type": "wait", "timeout": "2h"},
        {"id": "thanks", "type": "message", "body": "Great, thanks!"},
        {"id": "sorry", "type": "message", "body": "Sorry! We'll call you."},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"from": "start", "to": "hello"},
        {"from": "hello", "to": "ask"},
        {"from": "ask", "to": "thanks", "when": {"keywords": ["yes"]}},
        {"from": "ask", "to": "sorry", "when": {"keywords": ["no"]}},
        {"from": "ask", "to": "sorry", "when": "timeout"},
        {"from": "thanks", "to": "done"},
        {"from": "sorry", "to": "done"},
    ],
}
FAILED_REASON = "message 'hello' could not be sent: The recipient's phone is unreachable"


class RunBuilder:
    """Adds participations with their steps, messages and events, all stamped `at`."""

    def __init__(self, run: Run, at):
        self.run, self.at = run, at

    def contact(self, phone, name, state, node, **values) -> Participation:
        contact = Contact(phone=phone, name=name, fields={"order_id": f"A-{phone[-2:]}"})
        participation = Participation(
            run=self.run,
            contact=contact,
            state=state,
            node_id=node,
            started_at=self.at,
            updated_at=values.pop("updated_at", self.at),
            **values,
        )
        db.session.add(participation)
        db.session.flush()
        return participation

    def steps(self, participation, *entries, at=None):
        for kind, node_id, detail in entries:
            db.session.add(
                Step(
                    participation_id=participation.id,
                    run_id=self.run.id,
                    kind=kind,
                    node_id=node_id,
                    detail=detail,
                    at=at or self.at,
                )
            )
        db.session.flush()

    def enter(self, participation, *nodes):
        self.steps(participation, *[("enter", node, {"visit": 1}) for node in nodes])

    def edge(self, participation, index, at=None):
        edge = JOURNEY["edges"][index]
        self.steps(
            participation,
            ("edge", edge["from"], {"from": edge["from"], "to": edge["to"], "index": index, "label": ""}),
            at=at,
        )

    def message(self, participation, node, statuses, code=None) -> Message:
        accepted = any(status != "failed" for status in statuses)
        message = Message(
            participation_id=participation.id,
            run_id=participation.run_id,
            node_id=node,
            contact_id=participation.contact_id,
            idempotency_key=f"{participation.id}:{node}:1",
            to_phone=participation.contact.phone,
            channel="sms",
            body=f"body of {node}",
            status=statuses[-1] if statuses else "queued",
            sid=f"SM{participation.id:04d}{node}" if accepted else None,
            error_code=code,
            error_message="explained" if code else None,
            created_at=self.at,
        )
        db.session.add(message)
        db.session.flush()
        for status in statuses:
            failure = code if status in ("failed", "undelivered") else None
            db.session.add(MessageEvent(message_id=message.id, status=status, error_code=failure, at=self.at))
        self.steps(participation, ("message", node, {"message_id": message.id, "status": "queued"}))
        return message

    def reply(self, participation, text, matched, outcome, at=None):
        inbound = InboundMessage(
            sid=f"SMIN{participation.id}{text}",
            from_phone=participation.contact.phone,
            body=text,
            contact_id=participation.contact_id,
            participation_id=participation.id,
            outcome=outcome,
            received_at=at or self.at,
        )
        db.session.add(inbound)
        db.session.flush()
        self.steps(
            participation,
            ("reply", "ask", {"text": text, "payload": None, "matched": matched, "inbound_id": inbound.id}),
            at=at,
        )


def build_run(now=None) -> dict:
    """The hand-counted run: returns the run and its participations by first name."""
    now = now or utcnow()
    at = now - timedelta(hours=1)
    user = User(email="builder@example.com")
    user.set_password("not used here")
    journey = Journey(name=JOURNEY["name"], draft=JOURNEY)
    db.session.add_all([user, journey])
    db.session.flush()
    version = JourneyVersion(journey_id=journey.id, number=1, definition=JOURNEY, created_by_id=user.id)
    audience = Audience(name="Buyers", columns=["phone", "name", "order_id"], total=6)
    db.session.add_all([version, audience])
    db.session.flush()
    run = Run(
        journey_id=journey.id,
        version_id=version.id,
        audience_id=audience.id,
        status="active",
        total=6,
        created_by_id=user.id,
        created_at=at,
    )
    db.session.add(run)
    db.session.flush()
    build = RunBuilder(run, at)

    ana = build.contact(
        "+15550000001",
        "Ana",
        "completed",
        "done",
        engine_state={"node_id": "done", "status": "completed", "variables": {"reply": "yes"}},
    )
    build.enter(ana, "start")
    build.edge(ana, 0)
    build.enter(ana, "hello")
    build.message(ana, "hello", ["sent", "delivered"])
    build.edge(ana, 1)
    build.enter(ana, "ask")
    build.reply(ana, "yes", True, "matched")
    build.edge(ana, 2)
    build.enter(ana, "thanks")
    build.message(ana, "thanks", ["sent", "read"])  # read, its delivered callback never came
    build.edge(ana, 5)
    build.enter(ana, "done")

    bruno = build.contact(
        "+15550000002",
        "Bruno",
        "waiting",
        "ask",
        wake_at=now + timedelta(hours=1),
        engine_state={"node_id": "ask", "status": "waiting", "variables": {"reply": "maybe"}},
    )
    build.enter(bruno, "start")
    build.edge(bruno, 0)
    build.enter(bruno, "hello")
    build.message(bruno, "hello", ["sent"])
    build.edge(bruno, 1)
    build.enter(bruno, "ask")
    build.reply(bruno, "maybe", False, "unmatched")

    carla = build.contact("+15550000003", "Carla", "failed", "hello", error=FAILED_REASON)
    build.enter(carla, "start")
    build.edge(carla, 0)
    build.enter(carla, "hello")
    build.message(carla, "hello", ["failed"], code=30003)

    dora = build.contact(
        "+15550000004",
        "Dora",
        "sending",
        "hello",
        updated_at=now - timedelta(minutes=10),
        wake_at=now + timedelta(seconds=30),
    )
    build.enter(dora, "start")
    build.edge(dora, 0)
    build.enter(dora, "hello")
    build.message(dora, "hello", [])

    eve = build.contact(
        "+15550000005",
        "=cmd|' /C calc'!A0",
        "waiting",
        "ask",
        wake_at=now - timedelta(minutes=5),
        engine_state={
            "node_id": "ask",
            "status": "waiting",
            "variables": {"reply": "-2+3", "payload": None, "score": "@SUM(1)"},
        },
    )
    build.enter(eve, "start")
    build.edge(eve, 0)
    build.enter(eve, "hello")
    build.message(eve, "hello", ["sent", "undelivered"], code=30005)
    build.edge(eve, 1)
    build.enter(eve, "ask")

    fred = build.contact("+15550000006", "Fred", "filtered", "start", error="filtered out by the audience condition")
    build.enter(fred, "start")
    db.session.commit()
    return {
        "run": run,
        "now": now,
        "ana": ana,
        "bruno": bruno,
        "carla": carla,
        "dora": dora,
        "eve": eve,
        "fred": fred,
        "builder": build,
    }


@pytest.fixture
def built(app):
    return build_run()


def test_live_stats_match_the_hand_count(built):
    stats = run_live.live_stats(built["run"], built["now"])

    assert stats.states == {
        "active": 0,
        "sending": 1,
        "waiting": 2,
        "delayed": 0,
        "completed": 1,
        "failed": 1,
        "filtered": 1,
        "stopped": 0,
        "opted_out": 0,
    }
    assert (stats.total, stats.finished, stats.in_progress) == (6, 3, 1)
    assert stats.nodes == {
        "start": {"here": 0, "visits": 6, "ended": 1},
        "hello": {"here": 1, "visits": 5, "ended": 1},
        "ask": {"here": 2, "visits": 3, "ended": 0},
        "thanks": {"here": 0, "visits": 1, "ended": 0},
        "sorry": {"here": 0, "visits": 0, "ended": 0},
        "done": {"here": 0, "visits": 1, "ended": 1},
    }
    assert stats.edges == {0: 5, 1: 3, 2: 1, 5: 1}
    assert stats.messages == {"queued": 1, "sent": 4, "delivered": 2, "read": 1, "failed": 1, "undelivered": 1}
    assert sorted(stats.errors) == [("30003", 1), ("30005", 1)]
    assert stats.unmatched == 1
    assert (stats.late_timers, stats.stuck, stats.overdue) == (1, 1, 2)


def test_counts_stay_exact_as_history_settles_and_grows(built):
    run, now, build = built["run"], built["now"], built["builder"]
    first = run_live.live_stats(run, now)
    saved = get_redis().get(f"jd:run-page:{run.id}")
    assert saved is not None  # the settled tally is kept for the next poll

    bruno = built["bruno"]
    build.reply(bruno, "no", True, "matched", at=now)
    build.edge(bruno, 3, at=now)
    build.steps(bruno, ("enter", "sorry", {"visit": 1}), at=now)
    db.session.commit()

    fresh = run_live.live_stats(run, now)  # the new rows are too young to settle: counted live
    assert fresh.nodes["sorry"]["visits"] == 1 and fresh.edges[3] == 1
    assert fresh.edges[0] == first.edges[0] == 5
    later = run_live.live_stats(run, now + timedelta(minutes=5))  # now they settle
    assert later.nodes == fresh.nodes and later.edges == fresh.edges and later.messages == fresh.messages

    get_redis().flushdb()  # a lost tally is rebuilt from the rows
    rebuilt = run_live.live_stats(run, now + timedelta(minutes=5))
    assert (rebuilt.nodes, rebuilt.edges, rebuilt.unmatched) == (later.nodes, later.edges, later.unmatched)


def test_a_reused_run_id_does_not_inherit_an_old_tally(built):
    run = built["run"]
    get_redis().set(
        f"jd:run-page:{run.id}",
        '{"run_created": "2001-01-01T00:00:00", "step_mark": 999999, '
        '"event_mark": 999999, "settled": {"visits": {"start": 5000}, "edges": {}, "unmatched": 0, '
        '"messages": {}, "errors": {}}, "samples": []}',
    )
    assert run_live.live_stats(run, built["now"]).nodes["start"]["visits"] == 6


def test_send_rate_and_estimated_finish_come_from_recent_samples(built):
    run, now, build = built["run"], built["now"], built["builder"]
    assert run_live.live_stats(run, now).send_rate is None  # one sample: not known yet
    build.message(built["dora"], "thanks", ["sent"])
    db.session.commit()
    stats = run_live.live_stats(run, now + timedelta(seconds=10))
    assert stats.send_rate == pytest.approx(0.1)
    assert stats.estimated_finish == now + timedelta(seconds=10) + timedelta(seconds=1 / 0.1)


def test_failure_reasons_and_unmatched_replies(built):
    run = built["run"]
    assert run_live.failure_reasons(run.id) == [[FAILED_REASON, 1]]
    replies = run_live.unmatched_replies(run.id)
    assert [(reply["text"], reply["name"], reply["node_id"]) for reply in replies] == [("maybe", "Bruno", "ask")]
    assert replies[0]["why"] == "matched no edge: still waiting"


def names(page) -> list[str]:
    return [row.name.split("|")[0] for row in page.rows]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["Ana", "Bruno", "Carla", "Dora", "=cmd", "Fred"]),
        ({"state": "waiting"}, ["Bruno", "=cmd"]),
        ({"node": "hello"}, ["Carla", "Dora"]),
        ({"state": "sending", "node": "hello"}, ["Dora"]),
        ({"search": "ana"}, ["Ana"]),
        ({"search": "(555) 000-0002"}, ["Bruno"]),
        ({"search": "0003"}, ["Carla"]),
        ({"search": "%"}, []),
        ({"error": "30003"}, ["Carla"]),
        ({"error": "30005"}, ["=cmd"]),
        ({"error": "none"}, []),
        ({"error": "junk"}, []),
        ({"overdue": True}, ["Dora", "=cmd"]),
    ],
)
def test_contacts_table_filters(built, filters, expected):
    page = run_contacts.contacts_table(built["run"], run_contacts.ContactFilter(**filters), now=built["now"])
    assert names(page) == expected
    assert page.count == len(expected)


def test_contacts_table_pages_by_keyset(built):
    run, everyone = built["run"], run_contacts.ContactFilter()
    first = run_contacts.contacts_table(run, everyone, per_page=4)
    assert names(first) == ["Ana", "Bruno", "Carla", "Dora"]
    assert (first.has_before, first.has_after, first.count) == (False, True, 6)
    second = run_contacts.contacts_table(run, everyone, after=first.last_id, per_page=4)
    assert names(second) == ["=cmd", "Fred"]
    assert (second.has_before, second.has_after) == (True, False)
    back = run_contacts.contacts_table(run, everyone, before=second.first_id, per_page=4)
    assert names(back) == names(first) and back.has_after
    assert not back.has_before
    waiting = run_contacts.contacts_table(
        run, run_contacts.ContactFilter(state="waiting"), after=first.last_id, per_page=4
    )
    assert names(waiting) == ["=cmd"] and waiting.count == 2


def test_timeline_has_edges_with_the_reply_that_chose_them_and_message_histories(built):
    entries = run_contacts.contact_timeline(built["ana"])
    kinds = [entry.kind for entry in entries]
    assert kinds == [
        "enter",
        "edge",
        "enter",
        "message",
        "edge",
        "enter",
        "reply",
        "edge",
        "enter",
        "message",
        "edge",
        "enter",
    ]
    chosen = [entry for entry in entries if entry.kind == "edge" and entry.detail["index"] == 2][0]
    assert chosen.reply == "yes"
    assert [entry.reply for entry in entries if entry.kind == "edge" and entry.detail["index"] != 2] == [None] * 3
    messages = [entry for entry in entries if entry.kind == "message"]
    assert [event.status for event in messages[0].events] == ["sent", "delivered"]
    assert messages[1].message.status == "read"


def test_a_tally_built_from_message_statuses_equals_the_events_counted_one_by_one(built):
    run = built["run"]
    marks = [0, *sorted(db.session.scalars(db.select(MessageEvent.id)))]
    for mark in marks:
        assert run_tally._events_up_to(run.id, mark) == run_tally._event_tally(run.id, 0, mark), mark


def test_remembered_lists_are_asked_for_again_only_when_their_count_moves(built):
    run, calls = built["run"], []

    def compute():
        calls.append(1)
        return [["reason", len(calls)]]

    assert run_live.remembered(run, "reasons", 3, compute) == [["reason", 1]]
    assert run_live.remembered(run, "reasons", 3, compute) == [["reason", 1]]
    assert run_live.remembered(run, "reasons", 4, compute) == [["reason", 2]]
    assert len(calls) == 2


def test_contacts_table_uses_a_known_total_only_without_filters(built):
    run = built["run"]
    assert run_contacts.contacts_table(run, run_contacts.ContactFilter(), total=6).count == 6
    waiting = run_contacts.contacts_table(run, run_contacts.ContactFilter(state="waiting"), total=6)
    assert waiting.count == 2
