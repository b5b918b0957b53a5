"""Journey runs end to end: the API, real RQ jobs, the fake Twilio, signed replies, the sweeper's timers.

Every test runs on SQLite and on PostgreSQL (the `app` fixture).
"""

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.journeys import store as journeys
from app.models import InboundMessage, Message, utcnow
from app.runs import sweeper
from tests.conftest import drain
from tests.runs.test_runs_helpers import (
    bodies_to,
    create_journey,
    example,
    inbound_outcome,
    linear_journey,
    participations,
    phones,
    reply,
    run_row,
    sends_through_jobs,
    settle,
    start,
    steps_of,
    sweep_at,
)

TWO_HOURS = 2 * 3600


def test_welcome_journey_routes_replies_and_timeouts(app, api, fake_twilio):
    journey = create_journey(example("welcome"))
    ana, bia, caio, duda = phones(4)
    run_id = start(
        api,
        journey.id,
        [
            {"phone": ana, "name": "Ana", "order_id": "A1"},
            {"phone": bia, "name": "Bia", "order_id": "B2"},
            {"phone": caio, "order_id": "C3"},
            {"phone": duda, "name": "Duda", "order_id": "D4"},
        ],
    )
    settle()
    assert bodies_to(fake_twilio, ana) == ["Hi Ana! Did order A1 arrive? Reply YES or NO."]
    assert bodies_to(fake_twilio, caio) == ["Hi there! Did order C3 arrive? Reply YES or NO."]
    assert {p.state for p in participations(run_id).values()} == {"waiting"}

    yes = reply(app.test_client(), ana, "Sim!")
    no = reply(app.test_client(), bia, "NÃO")
    maybe = reply(app.test_client(), caio, "maybe later")
    settle()
    assert bodies_to(fake_twilio, ana)[1:] == ["Great, thanks Ana!"]
    assert bodies_to(fake_twilio, bia)[1:] == ["Sorry about that! Someone will call you today."]
    assert bodies_to(fake_twilio, caio)[1:] == ["Please answer YES or NO."]
    assert [inbound_outcome(sid).outcome for sid in (yes, no, maybe)] == ["matched", "matched", "matched"]
    by_phone = participations(run_id)
    assert by_phone[ana].state == "completed" and by_phone[ana].node_id == "done"
    assert by_phone[caio].state == "waiting" and by_phone[caio].engine_state["visits"]["ask"] == 2
    assert inbound_outcome(yes).participation_id == by_phone[ana].id

    sweep_at(60)  # nothing is due yet
    assert by_phone[duda].state == "waiting" and len(bodies_to(fake_twilio, duda)) == 1
    sweep_at(TWO_HOURS + 1)  # caio's and duda's waits time out
    assert bodies_to(fake_twilio, duda)[1:] == ["Sorry about that! Someone will call you today."]
    assert {p.state for p in participations(run_id).values()} == {"completed"}
    run = run_row(run_id)
    assert run.status == "completed" and run.finished_at is not None

    summary = api.get(f"/api/runs/{run_id}").json
    assert summary["status"] == "completed" and summary["total"] == 4 and summary["version"] == 1
    assert summary["states"] == {
        "active": 0,
        "sending": 0,
        "waiting": 0,
        "delayed": 0,
        "completed": 4,
        "failed": 0,
        "filtered": 0,
        "stopped": 0,
        "opted_out": 0,
    }
    assert summary["nodes"]["hello"]["visits"] == 4
    assert summary["nodes"]["ask"]["visits"] == 5  # caio asked twice
    assert summary["nodes"]["again"]["visits"] == 1
    assert summary["nodes"]["sorry"]["visits"] == 3  # bia, and the two timeouts
    assert summary["nodes"]["done"] == {"visits": 4, "here": 0, "ended": 4}
    assert summary["messages"] == {"queued": 0, "sent": 9, "delivered": 0, "failed": 0, "canceled": 0}


def _order_status(fake_api) -> dict:
    doc = example("order-status")
    for node in doc["nodes"]:
        if node["id"] == "lookup":
            node["url"] = fake_api.url("/orders/<<order_id>>")
    return doc


def test_order_status_calls_the_api_and_branches(app, api, fake_twilio, fake_api):
    fake_api.orders["1"] = {"status": "shipped", "carrier": "UPS", "tracking": "1Z999"}
    fake_api.orders["2"] = {"status": "processing"}
    journey = create_journey(_order_status(fake_api))
    shipped, waiting, missing, no_order = phones(4)
    run_id = start(
        api,
        journey.id,
        [
            {"phone": shipped, "name": "Ana", "order_id": "1"},
            {"phone": waiting, "order_id": "2"},
            {"phone": missing, "order_id": "3"},
            {"phone": no_order, "name": "Zé"},
        ],
    )
    settle()
    assert bodies_to(fake_twilio, shipped) == ["Ana, order 1 shipped with UPS: track 1Z999."]
    assert bodies_to(fake_twilio, waiting) == ["Hi, order 2 is processing. We'll text you when it ships."]
    assert bodies_to(fake_twilio, missing) == ["Sorry, we couldn't look up order 3 right now."]
    assert bodies_to(fake_twilio, no_order) == []
    assert sorted(request.path for request in fake_api.requests) == ["/orders/1", "/orders/2", "/orders/3"]
    by_phone = participations(run_id)
    assert by_phone[no_order].state == "filtered" and "audience condition" in by_phone[no_order].error
    assert by_phone[waiting].state == "delayed" and by_phone[waiting].wake_at > utcnow() + timedelta(hours=23)
    assert by_phone[shipped].engine_state["variables"]["order"]["carrier"] == "UPS"
    assert by_phone[missing].engine_state["variables"]["order_status"] == 404
    api_steps = [step for step in steps_of(by_phone[shipped].id) if step.kind == "api"]
    assert len(api_steps) == 1 and api_steps[0].detail["status"] == 200
    assert api_steps[0].detail["url"] == fake_api.url("/orders/1") and api_steps[0].detail["duration_ms"] >= 0

    sweep_at(3600)  # an hour later: still paused
    assert participations(run_id)[waiting].state == "delayed"
    sweep_at(24 * 3600 + 1)
    by_phone = participations(run_id)
    assert by_phone[waiting].state == "completed"
    assert by_phone[waiting].engine_state["variables"]["followed_up"] == "yes"
    assert [step.kind for step in steps_of(by_phone[waiting].id)].count("timer") == 1
    assert run_row(run_id).status == "completed"
    contacts = api.get(f"/api/runs/{run_id}/contacts").json["contacts"]
    assert [(c["phone"], c["state"], c["node"]) for c in contacts] == [
        (shipped, "completed", "done"),
        (waiting, "completed", "done"),
        (missing, "completed", "done"),
        (no_order, "filtered", "start"),
    ]
    assert contacts[0]["vars"]["order"]["tracking"] == "1Z999"
    assert [m["node"] for m in contacts[1]["messages"]] == ["waiting"]


def test_whatsapp_survey_buttons_regex_and_split(app, api, fake_twilio):
    journey = create_journey(example("whatsapp-survey"))
    ana, bia, caio, duda, eva = phones(5)
    # Each wrote first (a WhatsApp session is open), else the pre-flight blocks the free-text invite (63016).
    db.session.add_all(
        InboundMessage(sid=f"SMopen{n}", from_phone=phone, channel="whatsapp", body="hi", outcome="unknown_contact")
        for n, phone in enumerate(phones(5))
    )
    db.session.commit()
    run_id = start(
        api,
        journey.id,
        [
            {"phone": phone, "name": name}
            for phone, name in zip((ana, bia, caio, duda, eva), ("Ana", "Bia", "Caio", "Duda", "Eva"))
        ],
    )
    settle()
    for call in fake_twilio.calls:
        assert call.to.startswith("whatsapp:+1500555")
        assert call.fields.get("ContentSid") == "HX0123456789abcdef0123456789abcdef" or "1 minute" in call.body
    assert len(fake_twilio.calls) == 5
    client = app.test_client()
    outcomes = [
        reply(client, ana, "", payload="SURVEY_YES", channel="whatsapp"),
        reply(client, bia, "SÍM, claro", channel="whatsapp"),
        reply(client, caio, "", payload="SURVEY_NO", channel="whatsapp"),
        reply(client, eva, "yes", channel="sms"),  # same number, another channel: not this wait
    ]
    settle()
    reply(client, ana, " 12345 ", channel="whatsapp")
    reply(client, bia, "my zip is abc", channel="whatsapp")
    settle()
    reply(client, bia, "54321", channel="whatsapp")
    settle()
    assert bodies_to(fake_twilio, ana)[1:] == [
        "Thanks! What's your 5-digit ZIP code?",
        "Thanks, Ana! Noted ZIP  12345 .",
    ]
    assert bodies_to(fake_twilio, bia)[1:] == [
        "Thanks! What's your 5-digit ZIP code?",
        "That doesn't look like a ZIP code, try again (5 digits).",
        "Thanks, Bia! Noted ZIP 54321.",
    ]
    assert bodies_to(fake_twilio, caio)[1:] == ["No problem, have a nice day."]
    assert [inbound_outcome(sid).outcome for sid in outcomes] == ["matched", "matched", "matched", "not_waiting"]
    sweep_at(24 * 3600 + 1)  # duda and eva never answered the invitation
    by_phone = participations(run_id)
    assert {phone: p.state for phone, p in by_phone.items()} == dict.fromkeys(by_phone, "completed")
    summary = api.get(f"/api/runs/{run_id}").json
    assert summary["nodes"]["invite_a"]["visits"] + summary["nodes"]["invite_b"]["visits"] == 5
    assert summary["nodes"]["zip"]["visits"] == 3 and summary["nodes"]["badzip"]["visits"] == 1


def test_consecutive_messages_arrive_in_journey_order_despite_retries(app, api, fake_twilio):
    journey = create_journey(linear_journey("one <<name>>", "two <<name>>", "three <<name>>"))
    numbers = phones(30)
    fake_twilio.fail_next(20, status=429, code=20429)  # the first attempts are refused and retried
    run_id = start(api, journey.id, [{"phone": phone, "name": f"c{n}"} for n, phone in enumerate(numbers)])
    settle()
    for n, phone in enumerate(numbers):
        assert bodies_to(fake_twilio, phone) == [f"one c{n}", f"two c{n}", f"three c{n}"]
    assert len(fake_twilio.attempts) == 90 + 20
    summary = api.get(f"/api/runs/{run_id}").json
    assert summary["states"]["completed"] == 30 and summary["messages"]["sent"] == 90


def test_permanent_send_failure_follows_failure_edge_or_fails(app, api, fake_twilio):
    doc = linear_journey("hello")
    doc["nodes"].insert(2, {"id": "note", "type": "set", "vars": {"unreachable": "yes"}})
    doc["edges"].append({"from": "m1", "to": "note", "when": "failure"})
    doc["edges"].append({"from": "note", "to": "done"})
    with_edge = create_journey(doc)
    without_edge = create_journey(linear_journey("hello", "never"))
    bad, good = phones(2)
    fake_twilio.fail_for(bad, status=400, code=21211)
    first = start(api, with_edge.id, [{"phone": bad}, {"phone": good}])
    second = start(api, without_edge.id, [{"phone": bad}])
    settle()
    assert participations(first)[bad].engine_state["variables"]["unreachable"] == "yes"
    assert participations(first)[bad].state == "completed"
    failed = participations(second)[bad]
    assert failed.state == "failed" and "21211" in failed.error
    assert len([a for a in fake_twilio.attempts if a.fields["To"] == bad]) == 2  # never retried
    assert api.get(f"/api/runs/{second}").json["messages"]["failed"] == 1


def test_delay_fires_for_real_after_two_seconds(app, api, fake_twilio):
    doc = linear_journey("before", "after")
    doc["nodes"].insert(2, {"id": "pause", "type": "delay", "duration": 2})
    doc["edges"] = [
        {"from": "start", "to": "m1"},
        {"from": "m1", "to": "pause"},
        {"from": "pause", "to": "m2"},
        {"from": "m2", "to": "done"},
    ]
    journey = create_journey(doc)
    phone = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": phone}])
    settle()
    paused = participations(run_id)[phone]
    assert paused.state == "delayed"
    wake_at = paused.wake_at  # read now: the jobs below end the session this row belongs to
    sweeper.sweep()
    settle()
    assert bodies_to(fake_twilio, phone) == ["before"]
    while utcnow() < wake_at:
        sweeper.sweep()
        settle()
    deadline = time.monotonic() + 5
    while len(bodies_to(fake_twilio, phone)) < 2 and time.monotonic() < deadline:
        sweeper.sweep()
        settle()
        time.sleep(0.05)
    assert bodies_to(fake_twilio, phone) == ["before", "after"]
    assert run_row(run_id).status == "completed"


def test_stop_run_stops_everyone_and_sends_nothing_more(app, api, fake_twilio):
    journey = create_journey(example("welcome"))
    numbers = phones(6)
    run_id = start(api, journey.id, [{"phone": phone, "order_id": "X"} for phone in numbers])
    settle()
    assert len(fake_twilio.calls) == 6
    response = api.post(f"/api/runs/{run_id}/stop")
    assert response.status_code == 200 and response.json["stopped"] == 6
    assert {p.state for p in participations(run_id).values()} == {"stopped"}
    assert all(p.wake_at is None for p in participations(run_id).values())
    late = reply(app.test_client(), numbers[0], "yes")
    sweep_at(3 * 3600)
    assert len(fake_twilio.calls) == 6
    assert inbound_outcome(late).outcome == "not_waiting"
    run = run_row(run_id)
    assert run.status == "stopped" and run.finished_at is not None
    assert api.get(f"/api/runs/{run_id}").json["states"]["stopped"] == 6


def test_stop_cancels_messages_still_queued(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    journey = create_journey(linear_journey("one", "two"))
    run_id = start(api, journey.id, [{"phone": phone} for phone in phones(5)])
    drain(["flows"])  # first messages created and queued, not sent yet
    assert api.post(f"/api/runs/{run_id}/stop").status_code == 200
    settle()
    sweep_at(3600)
    assert fake_twilio.calls == []
    assert api.get(f"/api/runs/{run_id}").json["messages"] == {
        "queued": 0,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "canceled": 5,
    }


def test_opt_out_ends_the_contacts_participations(app, api, fake_twilio, monkeypatch):
    sends_through_jobs(monkeypatch)
    journey = create_journey(example("welcome"))
    quitter, stayer = phones(2)
    run_id = start(api, journey.id, [{"phone": quitter}, {"phone": stayer}])
    settle()
    other_run = start(api, create_journey(linear_journey("one", "two")).id, [{"phone": quitter}])
    drain(["flows"])  # the second run's first message is queued, not sent
    reply(app.test_client(), quitter, "Stop!")
    settle()
    assert participations(run_id)[quitter].state == "opted_out"
    assert participations(other_run)[quitter].state == "opted_out"
    assert bodies_to(fake_twilio, quitter) == ["Hi there! Did order  arrive? Reply YES or NO."]
    assert run_row(other_run).status == "completed"
    reply(app.test_client(), stayer, "yes")
    settle()
    assert participations(run_id)[stayer].state == "completed"
    assert run_row(run_id).status == "completed"
    assert api.get(f"/api/runs/{run_id}").json["states"]["opted_out"] == 1
    finish = [step for step in steps_of(participations(run_id)[quitter].id) if step.kind == "finish"]
    assert finish[-1].detail["status"] == "opted_out"


def test_replies_from_strangers_and_idle_contacts_are_kept(app, api, fake_twilio):
    journey = create_journey(linear_journey("hello"))
    known = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": known}])
    settle()
    stranger = reply(app.test_client(), "+15005559999", "who is this?")
    idle = reply(app.test_client(), known, "thanks!")
    assert inbound_outcome(stranger).outcome == "unknown_contact"
    assert inbound_outcome(stranger).body == "who is this?"
    stored = inbound_outcome(idle)
    assert stored.outcome == "not_waiting" and stored.participation_id == participations(run_id)[known].id
    assert steps_of(stored.participation_id)[-1].detail["inbound_id"] == stored.id


def test_unmatched_reply_keeps_waiting(app, api, fake_twilio):
    doc = example("welcome")
    doc["edges"] = [edge for edge in doc["edges"] if edge.get("when") != "fallback"]
    journey = create_journey(doc)
    phone = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": phone}])
    settle()
    first = reply(app.test_client(), phone, "hmm")
    second = reply(app.test_client(), phone, "yes")
    settle()
    assert [inbound_outcome(sid).outcome for sid in (first, second)] == ["unmatched", "matched"]
    assert participations(run_id)[phone].state == "completed"
    replies = [step.detail for step in steps_of(participations(run_id)[phone].id) if step.kind == "reply"]
    assert [(r["text"], r["matched"]) for r in replies] == [("hmm", False), ("yes", True)]


def test_a_running_contact_keeps_the_version_it_started_with(app, api, fake_twilio):
    journey_id = create_journey(example("welcome")).id
    first, second = phones(2)
    first_run = start(api, journey_id, [{"phone": first}])
    settle()
    changed = example("welcome")
    next(node for node in changed["nodes"] if node["id"] == "thanks")["body"] = "Changed text"
    journeys.update_draft(journeys.get(journey_id), changed)
    second_run = start(api, journey_id, [{"phone": second}])
    settle()
    reply(app.test_client(), first, "yes")
    reply(app.test_client(), second, "yes")
    settle()
    assert bodies_to(fake_twilio, first)[-1] == "Great, thanks friend!"
    assert bodies_to(fake_twilio, second)[-1] == "Changed text"
    assert api.get(f"/api/runs/{first_run}").json["version"] == 1
    assert api.get(f"/api/runs/{second_run}").json["version"] == 2


def test_most_recent_run_gets_the_reply(app, api, fake_twilio):
    phone = phones(1)[0]
    older = start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    newer = start(api, create_journey(example("welcome")).id, [{"phone": phone}])
    settle()
    sid = reply(app.test_client(), phone, "yes")
    settle()
    assert inbound_outcome(sid).participation_id == participations(newer)[phone].id
    assert participations(newer)[phone].state == "completed"
    assert participations(older)[phone].state == "waiting"


def test_run_for_an_audience(app, api, fake_twilio):
    from app.contacts import audiences

    csv = "phone,name\n" + "\n".join(f"{phone},N{n}" for n, phone in enumerate(phones(12))) + "\nnot-a-phone,X\n"
    audience, rejected = audiences.import_audience("Buyers", csv.encode())
    assert len(rejected) == 1
    journey = create_journey(linear_journey("hi <<name>>"))
    response = api.post(f"/api/journeys/{journey.id}/runs", json={"audience_id": audience.id})
    assert response.status_code == 202
    run_id = response.json["run_id"]
    assert run_row(run_id).status == "preparing" and run_row(run_id).total == 12
    settle()
    assert sorted(call.body for call in fake_twilio.calls) == sorted(f"hi N{n}" for n in range(12))
    summary = api.get(f"/api/runs/{run_id}").json
    assert summary["status"] == "completed" and summary["total"] == 12 and summary["states"]["completed"] == 12


def test_api_node_refuses_private_addresses_unless_allowed(app, api, fake_twilio, fake_api):
    fake_api.orders["7"] = {"status": "shipped"}
    app.config["API_NODE_ALLOW_PRIVATE"] = False
    journey = create_journey(_order_status(fake_api))
    phone = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": phone, "order_id": "7"}])
    settle()
    assert fake_api.requests == []
    assert bodies_to(fake_twilio, phone) == ["Sorry, we couldn't look up order 7 right now."]
    api_step = next(step for step in steps_of(participations(run_id)[phone].id) if step.kind == "api")
    assert api_step.detail["status"] is None and "private" in api_step.detail["error"]


@pytest.mark.parametrize(
    "path, error",
    [
        ("/slow/3", "no answer within 1 s"),
        ("/big/2000000", "larger than"),
        ("/redirect?to=http://elsewhere.example/x", "another host"),
    ],
)
def test_api_node_failures_take_the_failure_edge(app, api, fake_twilio, fake_api, path, error):
    doc = _order_status(fake_api)
    lookup = next(node for node in doc["nodes"] if node["id"] == "lookup")
    lookup.update(url=fake_api.url(path), timeout=1)
    journey = create_journey(doc)
    phone = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": phone, "order_id": "9"}])
    settle()
    assert bodies_to(fake_twilio, phone) == ["Sorry, we couldn't look up order 9 right now."]
    api_step = next(step for step in steps_of(participations(run_id)[phone].id) if step.kind == "api")
    assert error in api_step.detail["error"]


def test_ten_thousand_contacts_complete_with_exact_counts(app, api, fake_twilio):
    app.config["DRY_RUN"] = True
    doc = linear_journey("hello <<name>>")
    doc["nodes"][0]["where"] = {"var": "name", "op": "ne", "value": "n7"}  # one contact is filtered out
    journey = create_journey(doc)
    contacts = [{"phone": phone, "name": f"n{n}"} for n, phone in enumerate(phones(10_000))]
    run_id = start(api, journey.id, contacts)
    settle(timeout=300)
    summary = api.get(f"/api/runs/{run_id}").json
    assert summary["status"] == "completed" and summary["total"] == 10_000
    assert summary["states"]["completed"] == 9_999 and summary["states"]["filtered"] == 1
    assert summary["messages"] == {"queued": 0, "sent": 9_999, "delivered": 0, "failed": 0, "canceled": 0}
    assert summary["nodes"]["m1"] == {"visits": 9_999, "here": 0, "ended": 0}
    assert summary["nodes"]["done"] == {"visits": 9_999, "here": 0, "ended": 9_999}
    assert db.session.scalar(select(func.count(func.distinct(Message.idempotency_key)))) == 9_999
    assert fake_twilio.calls == []  # dry run: nothing left the machine


def test_a_duplicated_reply_webhook_moves_the_contact_once(app, api, fake_twilio):
    journey = create_journey(example("welcome"))
    phone = phones(1)[0]
    run_id = start(api, journey.id, [{"phone": phone}])
    settle()
    client = app.test_client()
    sid = reply(client, phone, "maybe")
    reply(client, phone, "maybe", sid=sid)  # Twilio retried the webhook
    settle()
    assert bodies_to(fake_twilio, phone)[1:] == ["Please answer YES or NO."]
    assert participations(run_id)[phone].engine_state["visits"]["ask"] == 2
