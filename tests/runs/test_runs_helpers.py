"""Helpers shared by the journey-run tests (no tests here): example journeys, signed replies, running jobs."""

import copy
import json
import time
import uuid
from datetime import timedelta

from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import select

from app.extensions import db
from app.journeys import store as journeys
from app.models import InboundMessage, Participation, Run, Step, utcnow
from app.queues import QUEUE_NAMES, get_queue, get_redis
from app.runs import sweeper
from tests.conftest import drain
from tests.examples import EXAMPLES_DIR
from tests.fake_twilio import sign

INBOUND_URL = "http://testserver.local/webhooks/twilio/inbound"


def example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def phones(count: int, start: int = 0) -> list[str]:
    """Valid fictional US numbers (+1 500 555 xxxx)."""
    return [f"+1500555{number:04d}" for number in range(start, start + count)]


def linear_journey(*bodies: str, channel: str = "sms", extra_nodes=(), tail: str = "done") -> dict:
    """start -> m1 -> m2 -> … -> end: one message node per body."""
    nodes = [{"id": "start", "type": "audience"}]
    nodes += [{"id": f"m{n}", "type": "message", "body": body} for n, body in enumerate(bodies, start=1)]
    ids = [node["id"] for node in nodes]
    nodes += list(extra_nodes) + [{"id": "done", "type": "end"}]
    edges = [{"from": a, "to": b} for a, b in zip(ids, ids[1:] + [tail])]
    return {"format": "journey/v1", "name": "Linear", "channel": channel, "nodes": nodes, "edges": edges}


def create_journey(doc: dict):
    return journeys.create_journey(copy.deepcopy(doc))


def start(api, journey_id: int, contacts: list[dict]) -> int:
    response = api.post(f"/api/journeys/{journey_id}/runs", json={"contacts": contacts})
    assert response.status_code == 202, response.text
    return response.json["run_id"]


def settle(timeout: float = 20.0) -> None:
    """Run every queued job (both queues), plus message retries as they fall due, until nothing is left."""
    queues = [get_queue(name) for name in QUEUE_NAMES]
    registries = [ScheduledJobRegistry(queue=queue) for queue in queues]
    scheduler = RQScheduler(queues, connection=get_redis())
    scheduler.prepare_registries([queue.name for queue in queues])
    deadline = time.monotonic() + timeout
    while True:
        drain()
        if all(queue.count == 0 for queue in queues) and all(registry.count == 0 for registry in registries):
            return
        assert time.monotonic() < deadline, "jobs never settled"
        time.sleep(0.02)
        scheduler.enqueue_scheduled_jobs()


def sweep_at(seconds_from_now: float) -> dict:
    """Run the sweeper as if `seconds_from_now` had passed, then the jobs it dispatched."""
    counts = sweeper.sweep(utcnow() + timedelta(seconds=seconds_from_now))
    settle()
    return counts


def reply(client, phone: str, body: str, payload: str | None = None, channel: str = "sms", sid: str | None = None):
    """Post a signed inbound message, as Twilio would."""
    params = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": f"whatsapp:{phone}" if channel == "whatsapp" else phone,
        "To": "whatsapp:+15005550002" if channel == "whatsapp" else "+15005550001",
        "Body": body,
    }
    if payload:
        params["ButtonPayload"] = payload
    response = client.post(
        "/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": sign(INBOUND_URL, params)}
    )
    assert response.status_code == 200, response.text
    return params["MessageSid"]


def participations(run_id: int) -> dict[str, Participation]:
    """The run's participations by phone (fresh from the database)."""
    db.session.expire_all()
    rows = db.session.scalars(select(Participation).where(Participation.run_id == run_id)).all()
    return {row.contact.phone: row for row in rows}


def bodies_to(fake_twilio, phone: str) -> list[str]:
    """Bodies Twilio accepted for this number, in arrival order."""
    return [call.body for call in fake_twilio.calls if call.to in (phone, f"whatsapp:{phone}")]


def inbound_outcome(sid: str) -> InboundMessage:
    db.session.expire_all()
    return db.session.scalar(select(InboundMessage).where(InboundMessage.sid == sid))


def run_row(run_id: int) -> Run:
    db.session.expire_all()
    return db.session.get(Run, run_id)


def steps_of(participation_id: int) -> list[Step]:
    return list(db.session.scalars(select(Step).where(Step.participation_id == participation_id).order_by(Step.id)))


def sends_through_jobs(monkeypatch) -> None:
    """Make the runner's jobs enqueue the messages their steps create instead of sending them themselves
    (`advancing.send_inline`), so a test can lose, hold or replay the send jobs."""
    from app.runs import advancing

    monkeypatch.setattr(advancing, "INLINE_SEND_SECONDS", 0)
