"""Crash recovery with real worker processes (`python -m app.worker`): kill -9 mid-run, flush Redis, restart.

200 contacts go through three messages each while the worker that is
sending is killed with SIGKILL (and, in the second test, every worker is
killed and Redis flushed). After a restart every contact must get every
message exactly once, in order, and the run must complete. The messages the
killed process had claimed (`sending`) may have reached Twilio before their
sid was committed: the sweep looks them up in Twilio's Messages list (the
fake's) before sending anything again, so there are no duplicates (the
figures are printed in the test output).
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from rq import Worker
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message, Participation, Run
from app.queues import get_queue, get_redis
from tests.conftest import TEST_AUTH_TOKEN, worker_env
from tests.runs.test_runs_helpers import create_journey, linear_journey, phones, start

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 200
BODIES = ("first <<name>>", "second <<name>>", "third <<name>>")


class Workers:
    """`python -m app.worker` subprocesses pointed at the test's database, Redis DB and fake Twilio."""

    def __init__(self, app, fake_twilio, log_dir: Path, defaults: bool = False):
        # MESSAGE_STALE_SECONDS stays at its default (660 s): claims of dead workers are found by heartbeat.
        quick = {} if defaults else {"RETRY_BACKOFF": "0.05,0.1,0.2", "SEND_BATCH_SIZE": 50, "RUNNER_LEASE_SECONDS": 2}
        self.env = worker_env(app, fake_twilio, TWILIO_AUTH_TOKEN=TEST_AUTH_TOKEN, MESSAGE_RATE_LIMIT=0, **quick)
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            log = open(self.log_dir / f"worker-{len(self.processes)}.log", "w")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.worker", "--processes", "1", "--conversation-processes", "0"],
                    cwd=PROJECT_ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        next(process for process in self.processes if process.pid == pid).wait(10)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process.pid)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            try:  # anything a worker forked (RQ's scheduler) shares its session
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def workers(app, fake_twilio, tmp_path):
    group = Workers(app, fake_twilio, tmp_path)
    yield group
    group.stop()


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _busy_sender_pid() -> int | None:
    """The pid of a worker process that is running a job that sends right now (a `send_batch`, or a runner
    job sending the messages its steps created)."""
    busy = {
        job_id.split(":")[0]
        for name in ("messages", "messages_conversational", "flows")
        for job_id in StartedJobRegistry(queue=get_queue(name)).get_job_ids()
    }
    for worker in Worker.all(connection=get_redis()):
        if worker.get_current_job_id() in busy and worker.pid:
            return worker.pid
    return None


def _claimed_now() -> set[int]:
    db.session.expire_all()
    ids = set(db.session.scalars(select(Message.id).where(Message.status == "sending")))
    db.session.commit()
    return ids


def _run_completed(run_id: int) -> bool:
    db.session.expire_all()
    status = db.session.scalar(select(Run.status).where(Run.id == run_id))
    db.session.commit()
    return status == "completed"


def _check_every_message_once_in_order(run_id: int, fake_twilio, numbers) -> int:
    """Every contact got every message, in journey order; returns the number of duplicates (asserted 0)."""
    per_contact: dict[str, list[str]] = {}
    for call in fake_twilio.calls:
        per_contact.setdefault(call.to, []).append(call.body)
    for n, phone in enumerate(numbers):
        received = per_contact.get(phone, [])
        expected = [body.replace("<<name>>", f"c{n}") for body in BODIES]
        assert list(dict.fromkeys(received)) == expected, (phone, received)
    duplicates = Counter((call.to, call.body) for call in fake_twilio.calls)
    duplicated = {key: count - 1 for key, count in duplicates.items() if count > 1}
    rows = db.session.execute(
        select(Message.id, Message.to_phone, Message.body, Message.status, Message.sid)
        .join(Participation, Participation.id == Message.participation_id)
        .where(Participation.run_id == run_id)
    ).all()
    assert len(rows) == CONTACTS * len(BODIES)  # one log row per (participation, node, visit)
    assert all(row.sid and row.status == "sent" for row in rows)
    assert {row.sid for row in rows} <= {call.sid for call in fake_twilio.calls}  # recovered sids are Twilio's
    counts = db.session.execute(
        select(Participation.state, func.count()).where(Participation.run_id == run_id).group_by(Participation.state)
    ).all()
    assert dict(counts) == {"completed": CONTACTS}
    return sum(duplicated.values())


def _accepted_unrecorded(claimed: set[int], accepted: set[tuple]) -> int:
    """How many claimed messages Twilio had accepted (from `accepted`, its (to, body)s then) with no sid stored."""
    rows = db.session.execute(select(Message.to_phone, Message.body).where(Message.id.in_(claimed))).all()
    return sum((row.to_phone, row.body) in accepted for row in rows)


def _report(what: str, claimed: set[int], at_risk: int, duplicates: int, fake_twilio, capsys) -> None:
    with capsys.disabled():
        print(
            f"\n[crash test] {what}; {len(claimed)} messages were claimed (sending) at that moment, {at_risk} "
            f"of them already accepted by Twilio; lookups {len(fake_twilio.list_requests)}; "
            f"Twilio-side duplicates: {duplicates}; total accepted {len(fake_twilio.calls)} "
            f"for {CONTACTS * len(BODIES)} messages"
        )
    assert duplicates == 0, "a message was sent twice"


def _start_run(api, fake_twilio):
    fake_twilio.set_latency(0.02)
    numbers = phones(CONTACTS)
    journey = create_journey(linear_journey(*BODIES))
    run_id = start(api, journey.id, [{"phone": phone, "name": f"c{n}"} for n, phone in enumerate(numbers)])
    return run_id, numbers


def test_kill_9_a_sending_worker_then_restart(app, api, fake_twilio, workers, capsys):
    workers.start(2)
    run_id, numbers = _start_run(api, fake_twilio)
    victim = _wait_for(
        lambda: len(fake_twilio.calls) >= CONTACTS // 2 and _busy_sender_pid(), 60, "a worker in the middle of sending"
    )
    workers.kill(victim)
    claimed = _claimed_now()
    accepted = {(call.to, call.body) for call in fake_twilio.calls}
    workers.start(1)  # the restart
    _wait_for(lambda: _run_completed(run_id), 120, "the run to complete")
    duplicates = _check_every_message_once_in_order(run_id, fake_twilio, numbers)
    _report(
        f"killed pid {victim} after {len(accepted)} accepted sends",
        claimed,
        _accepted_unrecorded(claimed, accepted),
        duplicates,
        fake_twilio,
        capsys,
    )


def test_all_workers_killed_and_redis_flushed(app, api, fake_twilio, workers, capsys):
    workers.start(2)
    run_id, numbers = _start_run(api, fake_twilio)
    _wait_for(lambda: len(fake_twilio.calls) >= CONTACTS, 60, "a third of the messages")
    workers.kill_all()
    claimed = _claimed_now()
    accepted = {(call.to, call.body) for call in fake_twilio.calls}
    get_redis().flushdb()  # every queued job, scheduled retry and lock is gone
    workers.start(2)
    _wait_for(lambda: _run_completed(run_id), 120, "the run to complete")
    duplicates = _check_every_message_once_in_order(run_id, fake_twilio, numbers)
    _report(
        "all workers killed and Redis flushed",
        claimed,
        _accepted_unrecorded(claimed, accepted),
        duplicates,
        fake_twilio,
        capsys,
    )


def _still_sending(ids: set[int]) -> int:
    db.session.expire_all()
    count = db.session.scalar(select(func.count()).where(Message.id.in_(ids), Message.status == "sending"))
    db.session.commit()
    return count


@pytest.mark.slow
def test_all_workers_killed_with_default_settings(app, api, fake_twilio, tmp_path, capsys):
    """Default lease and stale settings: mid-send contacts move on within 90 s of the workers being back."""
    group = Workers(app, fake_twilio, tmp_path, defaults=True)
    try:
        group.start(2)
        run_id, numbers = _start_run(api, fake_twilio)
        _wait_for(lambda: len(fake_twilio.calls) >= CONTACTS and _claimed_now(), 60, "a worker mid-send")
        group.kill_all()
        claimed = _claimed_now()
        accepted = {(call.to, call.body) for call in fake_twilio.calls}
        group.start(2)
        back = time.monotonic()
        _wait_for(lambda: not _still_sending(claimed), 90, "the claimed messages to be resolved")
        resolved_after = time.monotonic() - back
        _wait_for(lambda: _run_completed(run_id), 120, "the run to complete")
        completed_after = time.monotonic() - back
        duplicates = _check_every_message_once_in_order(run_id, fake_twilio, numbers)
        _report(
            f"all workers killed, default settings: claimed messages resolved {resolved_after:.1f} s and the run "
            f"completed {completed_after:.1f} s after the restart",
            claimed,
            _accepted_unrecorded(claimed, accepted),
            duplicates,
            fake_twilio,
            capsys,
        )
        assert resolved_after < 90
    finally:
        group.stop()
