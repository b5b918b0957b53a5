"""Several worker hosts, simulated: independent groups of `python -m app.worker` processes sharing one
database and one Redis, a journey with a wait, a delay and replies through the signed webhook, and the
checks that nothing was lost or doubled. Used by `tests/test_multihost.py` (short) and
`bench/bench_multihost.py` (full size). No tests here.

Each group is what one host would run: its own session and process group (so `kill -9` of the group is
the host dying), its own environment (its own `HOSTNAME`, temporary directory and log file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Contact, Message, Participation, Run, Step
from tests.fake_twilio import sign

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BODIES = {"ask": "Did it arrive, <<name>>? Reply YES", "thanks": "Thanks <<name>>!", "later": "See you, <<name>>."}


def conversation_journey(wait_timeout: str = "10m", delay: int = 2) -> dict:
    """ask -> wait (yes) -> thanks -> delay -> later -> end; a timeout ends the contact too."""
    return {
        "format": "journey/v1",
        "name": "Multi-host conversation",
        "nodes": [
            {"id": "start", "type": "audience"},
            {"id": "ask", "type": "message", "body": BODIES["ask"]},
            {"id": "answer", "type": "wait", "timeout": wait_timeout},
            {"id": "thanks", "type": "message", "body": BODIES["thanks"]},
            {"id": "pause", "type": "delay", "duration": delay},
            {"id": "later", "type": "message", "body": BODIES["later"]},
            {"id": "done", "type": "end"},
        ],
        "edges": [
            {"from": "start", "to": "ask"},
            {"from": "ask", "to": "answer"},
            {"from": "answer", "to": "thanks", "when": {"keywords": ["yes"]}},
            {"from": "answer", "to": "done", "when": "timeout"},
            {"from": "thanks", "to": "pause"},
            {"from": "pause", "to": "later"},
            {"from": "later", "to": "done"},
        ],
    }


def phones(count: int) -> list[str]:
    """Valid fictional numbers, as many as needed (+1 206 456 xxxx and on)."""
    return [f"+1206{4560000 + n:07d}" for n in range(count)]


class WorkerGroup:
    """One "host": `processes` worker processes started by one `python -m app.worker`, in a session of their own."""

    def __init__(self, name: str, env: dict, log_dir: Path, processes: int = 2):
        self.name, self.processes = name, processes
        self.env = {**env, "HOSTNAME": f"host-{name}", "TMPDIR": str(log_dir)}
        self.log_path = log_dir / f"workers-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.worker", "--processes", str(self.processes)],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_9(self) -> None:
        """The host dies: SIGKILL to every process of the group at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ReplyPump:
    """Posts a signed "yes" for every contact whose question Twilio accepted, at most `rate` a second,
    from a few client threads, through the real inbound webhook over HTTP."""

    def __init__(self, base_url: str, signed_url: str, auth_token: str, rate: float, clients: int = 8):
        self.base_url, self.signed_url, self.auth_token = base_url, signed_url, auth_token
        self.interval = 1.0 / rate
        self.pool = ThreadPoolExecutor(max_workers=clients)
        self.sessions = threading.local()
        self.sent: set[str] = set()
        self.failures: list[str] = []
        self.window_counts: dict[int, int] = {}

    def reply_to(self, numbers: list[str]) -> None:
        """Reply once for each of these numbers (those already replied to are skipped), paced at the rate."""
        started = time.monotonic()
        futures = []
        for n, phone in enumerate(number for number in numbers if number not in self.sent):
            self.sent.add(phone)
            pause = started + n * self.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(self.pool.submit(self._post, phone))
        for future in futures:
            future.result()

    def _post(self, phone: str) -> None:
        session = getattr(self.sessions, "session", None) or requests.Session()
        self.sessions.session = session
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": phone,
            "To": "+15005550001",
            "Body": "Yes!",
        }
        signature = sign(self.signed_url, params, self.auth_token)
        second = int(time.monotonic())
        self.window_counts[second] = self.window_counts.get(second, 0) + 1
        answer = session.post(
            f"{self.base_url}/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )
        if answer.status_code != 200:
            self.failures.append(f"{phone}: HTTP {answer.status_code}")

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def waiting_for_reply(run_id: int) -> list[str]:
    """Phones of the run's contacts waiting at the question: those a person could answer now (a reply that
    overtook the runner's own bookkeeping of the question would be refused as `not_waiting`)."""
    rows = db.session.scalars(
        select(Contact.phone)
        .join(Participation, Participation.contact_id == Contact.id)
        .where(Participation.run_id == run_id, Participation.state == "waiting", Participation.node_id == "answer")
    ).all()
    db.session.commit()
    return list(rows)


def run_completed(run_id: int) -> bool:
    db.session.expire_all()
    status = db.session.scalar(select(Run.status).where(Run.id == run_id))
    db.session.commit()
    return status == "completed"


def exactness(run_id: int, accepted_calls: int) -> dict:
    """What the run did, from the database, against what Twilio accepted: lost, doubled, advanced twice."""
    p, m, s = Participation, Message, Step
    contacts = db.session.scalar(select(func.count()).where(p.run_id == run_id))
    states = dict(db.session.execute(select(p.state, func.count()).where(p.run_id == run_id).group_by(p.state)).all())
    per_node = dict(
        db.session.execute(
            select(m.node_id, func.count())
            .join(p, p.id == m.participation_id)
            .where(p.run_id == run_id, m.sid.is_not(None))
            .group_by(m.node_id)
        ).all()
    )
    # A node entered twice by one contact (this journey has no loop) is a contact advanced twice.
    twice = db.session.scalar(
        select(func.count()).select_from(
            select(s.participation_id, s.node_id)
            .where(s.run_id == run_id, s.kind == "enter")
            .group_by(s.participation_id, s.node_id)
            .having(func.count() > 1)
            .subquery()
        )
    )
    sent = sum(per_node.values())
    db.session.commit()
    return {
        "contacts": contacts,
        "states": states,
        "messages_by_node": per_node,
        "accepted_by_twilio": accepted_calls,
        "doubled": accepted_calls - sent,
        "lost": 3 * contacts - sent,
        "advanced_twice": twice,
    }
