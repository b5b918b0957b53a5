"""Redis and the RQ queues (`messages_conversational`, `flows`, `messages`), bound to the current app.

The connection is made by `create_app()` (never at import) and kept in
`app.extensions["redis"]`, so web requests, jobs and the runner share it.
"""

from flask import current_app
from redis import Redis
from rq import Queue

# Workers take jobs in this order: journey messages and replies first, so they never wait behind a campaign.
CONVERSATIONAL_QUEUE = "messages_conversational"
BULK_QUEUE = "messages"
QUEUE_NAMES = (CONVERSATIONAL_QUEUE, "flows", BULK_QUEUE)
# What a worker process dedicated to conversations listens to (`python -m app.worker`, see app.worker).
CONVERSATION_QUEUE_NAMES = (CONVERSATIONAL_QUEUE, "flows")
# Finished jobs are only kept briefly; failures long enough to inspect in /rq.
JOB_DEFAULTS = {"result_ttl": 300, "failure_ttl": 7 * 24 * 3600}


def connect(redis_url: str) -> Redis:
    return Redis.from_url(redis_url, health_check_interval=30)


def get_redis() -> Redis:
    return current_app.extensions["redis"]


def get_queue(name: str) -> Queue:
    """One of QUEUE_NAMES, on the app's Redis (enqueue with `**JOB_DEFAULTS`)."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis(), default_timeout=600)
