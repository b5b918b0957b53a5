"""Worker entry point (`python -m app.worker`): RQ workers for `flows` and `messages`.

Starts N SimpleWorker processes (no fork per job: jobs reuse the app, its
database pool and Twilio connections), each with RQ's scheduler enabled so
retries and `enqueue_in` fire. The app is built here, never at import.
"""

import argparse
import multiprocessing
import os
import signal

from rq import SimpleWorker

from . import create_app
from .queues import QUEUE_NAMES, get_queue, get_redis


def run_worker(burst: bool = False) -> None:
    """Run one worker in this process until stopped (or the queues are empty, with burst)."""
    app = create_app()
    with app.app_context():
        queues = [get_queue(name) for name in QUEUE_NAMES]
        worker = SimpleWorker(queues, connection=get_redis())
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=int(os.environ.get("WORKER_PROCESSES", 2)))
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    args = parser.parse_args()
    if args.processes <= 1:
        run_worker(args.burst)
        return
    children = [
        multiprocessing.Process(target=run_worker, args=(args.burst,), name=f"worker-{n}")
        for n in range(args.processes)
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
