"""Putting claimed messages on the wire: warm senders, threads, and the rate limits.

Limits: the global `MESSAGE_RATE_LIMIT` window and, per sender address, its
own window (`senders_pool.rate_for`), both moving windows in Redis shared by
every worker (`app.sending.limiter`). A batch is cut into chunks of one
sender each, interleaved across senders; each chunk takes its place in its
sender's window, then in the global one, then leaves at once. Conversational
sends (journey messages, replies) pass `priority=True`: while one waits for
room, bulk sends hold back, so they take what they need and bulk gets the rest
(`SendRateLimiter`); the limit itself is shared and never exceeded.
"""

import os
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from itertools import zip_longest

from flask import current_app

from app.queues import get_redis
from app.sending.channels import OutboundMessage, SenderSettings, SendResult, get_sender
from app.sending.limiter import SendRateLimiter, acquire_all
from app.sending.senders_pool import rate_for

# Rate-limited chunks in flight at once in one worker process (each chunk is one concurrent send_many).
CHUNK_THREADS = 32
# Without a rate limit, results are handed out (and recorded) every this many answers.
RECORD_EVERY = 50


def global_limiter() -> SendRateLimiter | None:
    """This process's limiter for `MESSAGE_RATE_LIMIT`, or None when it is 0."""
    return _cached_limiter("messages", float(current_app.config.get("MESSAGE_RATE_LIMIT") or 0))


def sender_limiter(address: str | None) -> SendRateLimiter | None:
    """This process's limiter for one sender address, or None when it has no per-sender limit."""
    if not address:
        return None
    return _cached_limiter(f"sender:{address}", rate_for(address))


def _cached_limiter(key: str, rate: float) -> SendRateLimiter | None:
    if rate <= 0:
        return None
    limiters = current_app.extensions.setdefault("send_limiters", {})
    guard = current_app.config["RATE_LIMIT_GUARD_MS"] / 1000
    cached = limiters.get(key)
    if cached is None or (cached.per_second_configured, cached.guard_seconds) != (rate, guard):
        cached = limiters[key] = SendRateLimiter(get_redis(), rate, key=key, guard_seconds=guard)
    return cached


class _SenderPool:
    """This process's warm senders and threads, kept from job to job so connections are reused.

    A new sender is warmed up with a message it refuses without calling
    Twilio: that builds its event loop, connection pool and SDK client before
    it is used, not inside a timed send (tens of ms on a busy machine: enough
    to push a rate-limited chunk into the next second at Twilio). A forked
    worker starts with an empty pool rather than its parent's sockets.
    """

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: dict[SenderSettings, list] = defaultdict(list)
        self.threads = ThreadPoolExecutor(CHUNK_THREADS, thread_name_prefix="send-chunk")
        self.free_threads = threading.BoundedSemaphore(CHUNK_THREADS)

    def take(self, settings: SenderSettings):
        with self.lock:
            if self.idle[settings]:
                return self.idle[settings].pop()
        sender = get_sender(settings)
        sender.send_many([OutboundMessage(key="warm-up", to="", channel="sms", body="warm-up")])
        return sender

    def give_back(self, settings: SenderSettings, sender) -> None:
        with self.lock:
            self.idle[settings].append(sender)


_sender_pools: list[_SenderPool] = []
_sender_pools_lock = threading.Lock()


def _sender_pool() -> _SenderPool:
    with _sender_pools_lock:
        if not _sender_pools or _sender_pools[0].pid != os.getpid():
            _sender_pools[:] = [_SenderPool()]
        return _sender_pools[0]


def send(outbound: list[OutboundMessage], settings: SenderSettings, priority: bool) -> Iterator[list[SendResult]]:
    """Send everything; yield the results in groups as they arrive, so they are recorded while others fly."""
    limited = global_limiter() is not None or any(sender_limiter(m.from_address) for m in outbound)
    if not limited:
        return _send_unlimited(outbound, settings)
    return _send_limited(outbound, settings, priority)


def _send_unlimited(outbound: list[OutboundMessage], settings: SenderSettings) -> Iterator[list[SendResult]]:
    """One `send_many`, `SEND_CONCURRENCY` calls in flight, in a pool thread; its results are handed out
    every `RECORD_EVERY` (or fewer at the end) as they arrive."""
    pool = _sender_pool()
    arrived: queue.SimpleQueue[SendResult | None] = queue.SimpleQueue()
    sender = pool.take(settings)

    def send_all():
        try:
            return sender.send_many(outbound, on_result=arrived.put)
        finally:
            pool.give_back(settings, sender)
            arrived.put(None)

    sending = pool.threads.submit(send_all)
    group = []
    while (result := arrived.get()) is not None:
        group.append(result)
        if len(group) >= RECORD_EVERY:
            yield group
            group = []
    if group:
        yield group
    sending.result()  # an error that stopped the batch surfaces here


def _chunks(outbound: list[OutboundMessage]) -> list[tuple[list[OutboundMessage], list[SendRateLimiter]]]:
    """One sender's messages per chunk, chunks of different senders interleaved, each with its limiters."""
    overall = global_limiter()
    by_sender: dict[str | None, list[OutboundMessage]] = defaultdict(list)
    for message in outbound:
        by_sender[message.from_address].append(message)
    streams = []
    for address, messages in by_sender.items():
        limiters = [limiter for limiter in (sender_limiter(address), overall) if limiter is not None]
        size = min(limiter.chunk_size for limiter in limiters)
        streams.append([(messages[at : at + size], limiters) for at in range(0, len(messages), size)])
    return [chunk for group in zip_longest(*streams) for chunk in group if chunk is not None]


def _send_limited(outbound: list[OutboundMessage], settings: SenderSettings, priority: bool):
    """For each chunk, first reserve a free thread and a warm sender, then take its capacity and hand it
    over at once, so nothing stands between a chunk's place in the window and its calls. Several chunks
    are in flight together, hiding Twilio's latency. Finished chunks are handed out between submissions.
    """
    pool = _sender_pool()
    _preload_twilio_sdk()
    chunks = _chunks(outbound)
    chunk_settings = replace(settings, concurrency=max(len(chunk) for chunk, _ in chunks))

    def send_chunk(sender, chunk):
        try:
            return sender.send_many(chunk)
        finally:
            pool.give_back(chunk_settings, sender)
            pool.free_threads.release()

    running: set[Future] = set()
    for chunk, limiters in chunks:
        yield from _finished(running, block=False)
        pool.free_threads.acquire()
        sender = pool.take(chunk_settings)
        try:
            acquire_all(limiters, len(chunk), priority)
        except BaseException:  # e.g. the job timed out while waiting: the rest of the batch stays unsent
            pool.give_back(chunk_settings, sender)
            pool.free_threads.release()
            raise
        running.add(pool.threads.submit(send_chunk, sender, chunk))
    while running:
        yield from _finished(running, block=True)


def _finished(running: set[Future], block: bool) -> Iterator[list[SendResult]]:
    """Take the chunks that are done out of `running` (waiting for one first if `block`)."""
    if not running:
        return
    done, _ = wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
    for future in done:
        running.discard(future)
        yield future.result()


def _preload_twilio_sdk() -> None:
    """Import the SDK's Messages resource now: it loads lazily on first use (50-100 ms), and a first
    chunk that late would land in the next window at Twilio, not the one it took its place in."""
    import twilio.rest.api.v2010.account.message  # noqa: F401
