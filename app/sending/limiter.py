"""The global send rate (`MESSAGE_RATE_LIMIT`): one moving window in Redis shared by every worker.

Built on the `limits` library (moving-window strategy, Redis storage): its
atomic Lua `hit` guarantees that no one-second window of *taken capacity* ever
holds more than the limit, whichever process asks. What Twilio counts,
though, is when calls *arrive*, a few milliseconds after the capacity was
taken and not always the same few: a chunk taken exactly one second after an
earlier one that left late would land inside the earlier one's second. So a
chunk is only taken when the window over `1 s + GUARD_SECONDS` has room too
(read with the storage's own moving-window query; `limits` cannot make the
window itself a fraction longer, as its Redis `EXPIRE` takes whole seconds).

The guard covers the usual spread (p99 ~16 ms at 200/s on 2 busy cores,
measured with `bench/bench_campaign.py`) and costs ~3 % of the rate: 50/s
and 200/s sent at ~97 % of the limit with the busiest second at the fake
Twilio exactly at the limit. Two larger delays are removed at their source:
the worker freezes its startup objects out of the garbage collector (a full
collection paused it ~80 ms), and senders are warmed up before they take
capacity (`messaging._SenderPool`).
"""

import random
import threading
import time
from fractions import Fraction

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis

GUARD_SECONDS = 0.03
# Capacity is taken in about this many chunks per window: small chunks leave a process close together,
# so their calls reach Twilio at nearly the moment they took their place in the window.
CHUNKS_PER_WINDOW = 50
KEY = "messages"
# A waiting priority caller refreshes its flag this often, and the flag lapses this long after its last refresh.
PRIORITY_POLL = 0.01
PRIORITY_FLAG_MS = 60


def window_for(per_second: float) -> tuple[int, int]:
    """(amount, seconds) for a rate: 50 -> (50, 1); 0.5 -> (1, 2); 2.5 -> (5, 2). Windows stay under a minute."""
    if per_second <= 0:
        raise ValueError(f"MESSAGE_RATE_LIMIT must be positive to build a limiter, got {per_second!r}")
    rate = Fraction(per_second).limit_denominator(60)
    if rate.numerator == 0:
        return 1, 60
    return rate.numerator, rate.denominator


class SendRateLimiter:
    """Blocks a sender until the shared window has room for its next chunk of messages.

    One per worker process and key (the global limit, or one sender address):
    besides the shared window it paces its own process at the limit (one chunk
    every `chunk_size / per_second` seconds), so a batch goes out as a steady
    stream rather than a burst per second.

    Priority: a `priority` caller that finds no room raises a short-lived flag
    in Redis while it waits; ordinary callers do not take capacity while the
    flag is up, so conversational sends get the next free places and bulk
    sends the rest.
    """

    def __init__(self, redis: Redis, per_second: float, key: str = KEY):
        amount, seconds = window_for(per_second)
        self.per_second_configured = per_second
        self.per_second = amount / seconds
        self.item = RateLimitItemPerSecond(amount, seconds)
        self.key = key
        self.redis = redis
        self.storage = RedisStorage("redis://", connection_pool=redis.connection_pool, key_prefix="jd-limits")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.chunk_size = max(1, amount // CHUNKS_PER_WINDOW)
        self.priority_flag = f"jd-limits:priority-waiting:{key}"
        self._lock = threading.Lock()
        self._next_chunk_at = 0.0

    def __repr__(self) -> str:
        return f"<SendRateLimiter {self.key} {self.item} chunk={self.chunk_size}>"

    def acquire(self, cost: int, priority: bool = False) -> None:
        """Wait until `cost` sends fit in the window (and its guard margin), then take them."""
        acquire_all([self], cost, priority)

    def used(self) -> int:
        """Sends taken in the current window (for pages and benchmarks)."""
        return self.storage.get_moving_window(self.item.key_for(self.key), self.item.amount, self.item.get_expiry())[1]

    def _room_at(self, cost: int) -> float:
        """When `cost` sends fit in the window plus its guard (now or later, as `time.time()`)."""
        oldest, used = self.storage.get_moving_window(
            self.item.key_for(self.key), self.item.amount, self.item.get_expiry() + GUARD_SECONDS
        )
        return time.time() if used + cost <= self.item.amount else oldest + self.item.get_expiry() + GUARD_SECONDS


def acquire_all(limiters: list[SendRateLimiter], cost: int, priority: bool = False) -> None:
    """Take `cost` sends from every one of these windows at the same moment (a sender's and the global one).

    Taking them one after the other would let a wait on the second push the
    calls late, bunched against the first window's next places; so capacity
    is only taken once all of them have room. A lost race (another process
    took the room meanwhile) can leave a place taken in an earlier window:
    that only slows sending a little, it never exceeds a limit.
    """
    for limiter in limiters:
        if cost > limiter.item.amount:
            raise ValueError(f"cannot take {cost} sends at once from a limit of {limiter.item}")
    locks = sorted(limiters, key=lambda limiter: limiter.key)
    for limiter in locks:
        limiter._lock.acquire()
    try:
        if not priority:
            time.sleep(max(max(limiter._next_chunk_at for limiter in limiters) - time.monotonic(), 0))
        _take_all(limiters, cost, priority)
        for limiter in limiters:
            limiter._next_chunk_at = time.monotonic() + cost / limiter.per_second
    finally:
        for limiter in reversed(locks):
            limiter._lock.release()


def _take_all(limiters: list[SendRateLimiter], cost: int, priority: bool) -> None:
    while True:
        if not priority and any(limiter.redis.exists(limiter.priority_flag) for limiter in limiters):
            time.sleep(PRIORITY_POLL + random.uniform(0, 0.002))
            continue
        wake_at = max(limiter._room_at(cost) for limiter in limiters)
        if wake_at <= time.time():
            taken = 0
            for limiter in limiters:
                if not limiter.limiter.hit(limiter.item, limiter.key, cost=cost):
                    break
                taken += 1
            if taken == len(limiters):
                return
        pause = max(wake_at - time.time(), 0.001)
        if priority:
            for limiter in limiters:
                limiter.redis.set(limiter.priority_flag, "1", px=PRIORITY_FLAG_MS)
            pause = min(pause, PRIORITY_POLL)
        # A little random spread keeps workers that wake together from all asking at once.
        time.sleep(pause + random.uniform(0, 0.003))
