"""Worker entry point (`python -m app.worker`): RQ workers for `messages_conversational`, `flows`, `messages`.

Starts N SimpleWorker processes (no fork per job: jobs reuse the app, its
database pool and Twilio connections) that take the conversational queue
first, plus `--conversation-processes` (default 1) that only take
conversations and journey steps, so a reply is never stuck behind the bulk
jobs of a big campaign. Each has RQ's scheduler enabled so retries and
`enqueue_in` fire, a heartbeat (`app.sending.liveness`: its claims are taken
over soon after it dies) and a sweeper thread for durable timers and crash
recovery (`sweeper.sweep`). The app is built here, never at import.
"""

import argparse
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import threading
import time

from rq import SimpleWorker

from app import create_app
from app.queues import CONVERSATION_QUEUE_NAMES, QUEUE_NAMES, get_queue, get_redis
from app.runs import sweeper
from app.sending import callbacks, liveness, messaging

SWEEP_INTERVAL = 0.5
APPLY_INTERVAL = 0.1  # between sweeps, how often a worker looks for status callbacks to apply
PR_SET_PDEATHSIG = 1


def run_worker(burst: bool = False, check_settings: bool = True, queue_names=QUEUE_NAMES) -> None:
    """Run one worker in this process until stopped (or the queues are empty, with burst).

    `check_settings` logs what is wrong with the sending settings (one process of several does it).
    """
    os.register_at_fork(after_in_child=_die_with_parent)
    app = create_app()
    if check_settings:
        warn_about_settings(app)
    # What startup made lives for good: frozen, it is not re-scanned by every full garbage collection
    # (~80 ms each otherwise, a pause that would make rate-limited sends late; see app/limiter.py).
    gc.freeze()
    stop_sweeping = threading.Event()
    sweeper = threading.Thread(target=sweep_forever, args=(app, stop_sweeping), name="runner-sweeper", daemon=True)
    sweeper.start()
    try:
        with app.app_context():
            _beat(app)
            queues = [get_queue(name) for name in queue_names]
            worker = SimpleWorker(queues, connection=get_redis())
            worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop_sweeping.set()
        sweeper.join(5)


def warn_about_settings(app) -> None:
    """Say at start what would otherwise fail silently while sending."""
    config = app.config
    if not config.get("DRY_RUN") and messaging.status_callback_url(config) is None:
        app.logger.warning(
            "PUBLIC_BASE_URL is not set (nor SERVER_NAME), so no status-callback URL can be built: messages are "
            "sent without one, and their delivered/failed statuses will never be recorded. Set PUBLIC_BASE_URL "
            "to the address Twilio reaches this app at."
        )
    stale_seconds = config.get("MESSAGE_STALE_SECONDS")
    if stale_seconds and stale_seconds <= messaging.SEND_JOB_TIMEOUT:
        app.logger.warning(
            "MESSAGE_STALE_SECONDS=%g is not longer than the send job timeout (%d s): a slow job that is still "
            "sending may have its messages taken for lost and sent twice; leave it unset unless testing.",
            stale_seconds,
            messaging.SEND_JOB_TIMEOUT,
        )


def _child_worker(*args) -> None:
    """`run_worker` in a process of `main`'s: it ends with `main` even when `main` is killed (`kill -9`, or
    a supervisor giving up on a slow shutdown), instead of working on as an orphan."""
    _die_with_parent()
    run_worker(*args)


def _die_with_parent() -> None:
    """In a process this worker forked (RQ's scheduler, `main`'s workers): end when its parent ends, even by
    `kill -9` (Linux). Otherwise a killed worker leaves it running as an orphan for good.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def sweep_forever(app, stop: threading.Event, interval: float = SWEEP_INTERVAL) -> None:
    """The journey runs' sweeper (`sweeper.sweep`): due timers, lost jobs, stale sends, until `stop` is set.

    Every worker process runs one; they take turns through a Redis lock, so
    timers fire within about `interval` of their time even if all but one
    worker are down. Between sweeps it looks every `APPLY_INTERVAL` for
    status callbacks that came and stopped coming (`callbacks.ArrivalWatch`).
    """
    watch = callbacks.ArrivalWatch()
    pause = interval
    next_sweep = time.monotonic() + pause
    while not stop.wait(min(APPLY_INTERVAL, max(0.0, next_sweep - time.monotonic()))):
        if time.monotonic() < next_sweep:
            if pause == interval:  # not while sweeps fail (the database is down): the sweep logs and backs off
                _apply_arrived(app, watch)
            continue
        _beat(app)
        try:
            with app.app_context():
                sweeper.sweep()
            pause = interval
        except Exception:
            pause = min(max(pause * 2, 1.0), 30.0)  # e.g. the database is down: don't flood the log
            app.logger.exception("runner sweep failed; trying again in %s s", pause)
        next_sweep = time.monotonic() + pause


def _apply_arrived(app, watch: callbacks.ArrivalWatch) -> None:
    """Apply the callbacks that arrived since the last look; a failure waits for the next sweep, which logs it."""
    try:
        with app.app_context():
            watch.apply_arrived()
    except Exception:
        app.logger.debug("applying arrived status callbacks failed; the next sweep tries", exc_info=True)


def _beat(app) -> None:
    """This process's heartbeat, and the release of claims its failed jobs left (`liveness.release_abandoned`);
    a failure (database down) is logged, and the next sweep tries again."""
    try:
        with app.app_context():
            liveness.beat()
            if released := liveness.release_abandoned():
                app.logger.warning("released %d messages a failed job had claimed; recovery looks them up", released)
    except Exception:
        app.logger.warning("worker heartbeat could not be written", exc_info=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=int(os.environ.get("WORKER_PROCESSES", 2)))
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument(
        "--conversation-processes",
        type=int,
        default=int(os.environ.get("WORKER_CONVERSATION_PROCESSES", 1)),
        help="extra processes taking only journey messages, replies and journey steps (never bulk campaigns)",
    )
    args = parser.parse_args()
    if args.processes <= 1 and args.conversation_processes <= 0:
        run_worker(args.burst)
        return
    children = [
        multiprocessing.Process(target=_child_worker, args=(args.burst, n == 0), name=f"worker-{n}")
        for n in range(args.processes)
    ] + [
        multiprocessing.Process(
            target=_child_worker, args=(args.burst, False, CONVERSATION_QUEUE_NAMES), name=f"conversation-worker-{n}"
        )
        for n in range(args.conversation_processes)
    ]
    for child in children:
        child.start()

    def stop(signum, _frame):
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
