"""Is the background work moving? Queue lengths, failures, workers and the oldest waiting job, from RQ.

The home page shows this so an operator sees at once when runs cannot progress (no worker alive, a queue
growing, jobs failing); the details are one click away in rq-dashboard (`/rq`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from app.queues import QUEUE_NAMES, get_redis


@dataclass
class QueueStats:
    name: str
    queued: int
    running: int
    scheduled: int
    failed: int
    oldest_enqueued_at: datetime | None  # naive UTC, like the rest of the app


@dataclass
class WorkerInfo:
    name: str
    state: str
    queues: list[str]
    last_heartbeat: datetime | None
    current_job: str | None


@dataclass
class QueueHealth:
    queues: list[QueueStats] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    error: str | None = None  # Redis could not be asked

    @property
    def workers_alive(self) -> int:
        return len(self.workers)

    @property
    def queued(self) -> int:
        return sum(queue.queued for queue in self.queues)

    @property
    def failed(self) -> int:
        return sum(queue.failed for queue in self.queues)


def queue_health(redis: Redis | None = None) -> QueueHealth:
    """Counts for every queue of the app and the workers alive (registered with a live heartbeat key)."""
    redis = redis or get_redis()
    try:
        queues = [_queue_stats(Queue(name, connection=redis)) for name in QUEUE_NAMES]
        workers = [_worker_info(worker) for worker in Worker.all(connection=redis)]
    except RedisError as error:
        return QueueHealth(error=f"Redis is not reachable: {error}")
    return QueueHealth(queues=queues, workers=sorted(workers, key=lambda worker: worker.name))


def _queue_stats(queue: Queue) -> QueueStats:
    connection = queue.connection
    return QueueStats(
        name=queue.name,
        queued=queue.count,
        running=StartedJobRegistry(queue=queue, connection=connection).count,
        scheduled=ScheduledJobRegistry(queue=queue, connection=connection).count,
        failed=FailedJobRegistry(queue=queue, connection=connection).count,
        oldest_enqueued_at=_oldest_enqueued_at(queue),
    )


def _oldest_enqueued_at(queue: Queue) -> datetime | None:
    """When the job at the head of the queue was enqueued (None for an empty queue)."""
    for job_id in queue.get_job_ids(0, 4):  # the head may vanish (taken by a worker) while we look
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.enqueued_at is not None:
            return _naive_utc(job.enqueued_at)
    return None


def _worker_info(worker: Worker) -> WorkerInfo:
    state = worker.get_state()
    return WorkerInfo(
        name=worker.name,
        state=str(getattr(state, "value", state)),
        queues=worker.queue_names(),
        last_heartbeat=_naive_utc(worker.last_heartbeat) if worker.last_heartbeat else None,
        current_job=worker.get_current_job_id(),
    )


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
