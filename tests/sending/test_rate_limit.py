"""MESSAGE_RATE_LIMIT holds across worker processes: measured where it matters, at the (fake) Twilio."""

import gc
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job
from rq.registry import FinishedJobRegistry
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message
from app.queues import get_queue, get_redis
from app.sending import log, messaging, senders_pool
from app.sending.limiter import window_for
from tests.conftest import worker_env
from tests.sending.test_messaging import make_campaign, phones

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("per_second", "window"), [(50, (50, 1)), (0.5, (1, 2)), (2.5, (5, 2)), (1 / 3, (1, 3)), (0.001, (1, 60))]
)
def test_rate_becomes_a_whole_window(per_second, window):
    assert window_for(per_second) == window


def test_the_guard_comes_from_the_configuration_and_widens_every_window(app):
    from app.sending import dispatch

    app.config.update(MESSAGE_RATE_LIMIT=50)  # tests run without a limit
    assert dispatch.global_limiter().span_us == 1_030_000  # 50/s: a 1 s window and the default 30 ms guard
    app.config.update(RATE_LIMIT_GUARD_MS=150, SENDER_RATE_LIMIT=4)
    assert dispatch.global_limiter().span_us == 1_150_000  # a changed setting makes a new limiter
    assert dispatch.sender_limiter("+15005550001").span_us == 1_150_000


@contextmanager
def worker_processes(app, fake_twilio, tmp_path, count: int, **settings):
    """`python -m app.worker --processes N`, started and idle (imports done) before the test goes on."""
    env = worker_env(app, fake_twilio, **settings)
    log = tmp_path / "workers.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--processes", str(count), "--conversation-processes", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while len(Worker.all(connection=get_redis())) < count:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def no_garbage_collection():
    """The fake Twilio runs in this process: a full collection (~100 ms here) would stall its clock,
    and the calls waiting meanwhile would be stamped together, like a burst that never happened."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def wait_until_sent(ids, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        unsent = db.session.scalar(
            select(func.count()).select_from(Message).where(Message.id.in_(ids), Message.status.in_(log.UNSENT))
        )
        if unsent == 0:
            return
        assert time.monotonic() < deadline, f"{unsent} messages still unsent"
        time.sleep(0.25)


# The fake Twilio stamps arrivals in this pytest process, which shares two cores with the workers and, under
# pytest-xdist, another busy test process: its stamps lag by up to ~0.1 s. The guard covers that spread.
TEST_GUARD_MS = 150


def test_limit_holds_across_two_worker_processes(app, fake_twilio, tmp_path):
    app.config.update(MESSAGE_RATE_LIMIT=10, SEND_BATCH_SIZE=5, RATE_LIMIT_GUARD_MS=TEST_GUARD_MS)
    with worker_processes(app, fake_twilio, tmp_path, 2, MESSAGE_RATE_LIMIT=10, RATE_LIMIT_GUARD_MS=TEST_GUARD_MS):
        # Long-running workers are warm: their first calls (new connections, first code paths) are done.
        _, warm_up_ids = make_campaign(phones(4, start=100))
        assert messaging.enqueue_messages(warm_up_ids, bulk=True) == 1
        wait_until_sent(warm_up_ids)
        time.sleep(1.1)  # let the warm-up leave the window
        fake_twilio.reset()
        # Created now, not before the workers started: recovery would send queued messages no job names.
        _, ids = make_campaign(phones(35))
        with no_garbage_collection():
            assert messaging.enqueue_messages(ids, bulk=True) == 7
            fake_twilio.wait_for_calls(35, timeout=30)
        wait_until_sent(ids)

    calls = fake_twilio.calls
    assert sorted(call.to for call in calls) == phones(35)
    assert fake_twilio.max_in_any_window(1.0) <= 10
    assert calls[-1].at - calls[0].at >= 3.0  # 35 at 10/s: the fourth window opens 3 s after the first
    finished = FinishedJobRegistry(queue=get_queue("messages"))
    jobs = Job.fetch_many(finished.get_job_ids(), connection=get_redis())
    assert len({job.worker_name for job in jobs}) == 2  # both processes sent, sharing one limit


POOL = ("+15005550001", "+15005550003", "+15005550004")


def test_sender_limits_hold_together_with_the_global_one(app, fake_twilio, tmp_path, capsys):
    settings = {
        "MESSAGE_RATE_LIMIT": 10,
        "SENDER_RATE_LIMIT": 4,
        "SENDER_RATE_LIMITS": f"{POOL[2]}=3",
        "TWILIO_FROM": ",".join(POOL),
        "RATE_LIMIT_GUARD_MS": TEST_GUARD_MS,
    }
    app.config.update(**settings, SEND_BATCH_SIZE=10)
    with worker_processes(app, fake_twilio, tmp_path, 2, **settings):
        _, warm_up_ids = make_campaign(phones(2, start=100))
        messaging.enqueue_messages(warm_up_ids, bulk=True)
        wait_until_sent(warm_up_ids)
        time.sleep(1.1)
        fake_twilio.reset()
        _, ids = make_campaign(phones(45))
        with no_garbage_collection():
            messaging.enqueue_messages(ids, bulk=True)
            fake_twilio.wait_for_calls(45, timeout=30)
        wait_until_sent(ids)

    calls = fake_twilio.calls
    assert sorted(call.to for call in calls) == phones(45)
    assert all(call.fields["From"] == senders_pool.sender_for(call.to, "sms", app.config) for call in calls)
    rows = db.session.execute(select(Message.to_phone, Message.from_address).where(Message.id.in_(ids))).all()
    assert all(row.from_address == senders_pool.sender_for(row.to_phone, "sms", app.config) for row in rows)
    busiest = fake_twilio.max_per_sender(1.0)
    limits = {address: senders_pool.rate_for(address, app.config) for address in POOL}
    assert all(busiest[address] <= limits[address] for address in busiest)
    assert fake_twilio.max_in_any_window(1.0) <= 10
    with capsys.disabled():
        spread = Counter(call.fields["From"] for call in calls)
        print(
            f"\n[sender pool] per-sender busiest 1 s window {busiest} (limits {limits}); messages {dict(spread)}; "
            f"all senders busiest {fake_twilio.max_in_any_window(1.0)} (limit 10); "
            f"{len(calls)} in {calls[-1].at - calls[0].at:.2f} s"
        )
