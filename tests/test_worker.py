"""`python -m app.worker` as a process tree: its worker processes end with it, even when it is killed."""

import contextlib
import os
import signal
import subprocess
import sys
import time

from app.config import PROJECT_ROOT
from app.queues import get_redis
from tests.conftest import worker_env


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_killing_the_worker_ends_its_worker_processes(app, fake_twilio, tmp_path):
    """A supervisor that gives up on a slow shutdown kills `main` outright: its processes must not work on as
    orphans (seen here: one left from a test whose Redis had stopped, still trying to reconnect)."""
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "2", "--conversation-processes", "1"],
        cwd=PROJECT_ROOT,
        env=worker_env(app, fake_twilio),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(get_redis().smembers("rq:workers")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _children(worker.pid)
        assert len(children) == 3, open(tmp_path / "worker.log").read()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [child for child in children if _alive(child)]
        print(f"\n[fault] kill -9 of the worker's main process: {len(children)} worker processes, {len(left)} left")
        assert left == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # whatever is left of the group
        log.close()


def test_the_sweeper_thread_looks_for_arrived_callbacks_between_sweeps_but_not_while_sweeps_fail(app, monkeypatch):
    import threading

    from app import worker
    from app.sending import callbacks

    events = []
    failing = threading.Event()

    def sweep():
        events.append("sweep")
        if failing.is_set():
            raise RuntimeError("the database is down")

    monkeypatch.setattr(worker.sweeper, "sweep", sweep)
    monkeypatch.setattr(callbacks.ArrivalWatch, "apply_arrived", lambda self: events.append("look"))
    monkeypatch.setattr(worker, "_beat", lambda app: None)
    stop = threading.Event()
    thread = threading.Thread(target=worker.sweep_forever, args=(app, stop, 0.35))
    thread.start()
    try:
        time.sleep(1.2)
        healthy = list(events)
        failing.set()
        time.sleep(1.6)  # a failed sweep backs off to 1 s: no looks meanwhile
    finally:
        stop.set()
        thread.join(5)
    assert healthy.count("sweep") >= 2 and healthy.count("look") >= healthy.count("sweep")
    after = events[len(healthy) :]
    assert "sweep" in after and "look" not in after[after.index("sweep") :], events  # from the first failed sweep on
