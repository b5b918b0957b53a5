"""The send rates (`MESSAGE_RATE_LIMIT`, `SENDER_RATE_LIMIT`): moving windows in Redis shared by every worker.

A window is a Redis list of the times its places were taken, newest first.
One Lua script checks every window a chunk needs (its sender's and the
global one) and takes its places in all of them at once, or in none, so a
limit is never exceeded whichever process or host asks. Times come from
Redis's own clock (`TIME`), not the asking process's: a list is then in
the order the server ran the script, and neither a host whose clock is off
nor a process paused between reading its clock and asking (a busy machine)
can make fresh places look old and let more through. (The `limits` library
stamps each place with the client's clock, which is why this is our own.)

What Twilio counts, though, is when calls *arrive*, a few milliseconds after
the places were taken and not always the same few: a chunk taken exactly one
window after an earlier one that left late would land inside the earlier
one's window. So the check looks at the window plus a guard
(`RATE_LIMIT_GUARD_MS`, default `GUARD_SECONDS`): it
covers the usual spread (p99 ~16 ms at 200/s on 2 busy cores, measured with
`bench/bench_campaign.py`) and costs ~3 % of the rate (50/s and 200/s sent
at ~97 % of the limit with the busiest second at the fake Twilio exactly at
the limit). Two larger delays are removed at their source: the worker
freezes its startup objects out of the garbage collector (a full collection
paused it ~80 ms), and senders are warmed up before they take capacity.
A host whose calls leave later than that (many processes per core) needs
a larger guard.
"""

import random
import threading
import time
from fractions import Fraction

from redis import Redis

GUARD_SECONDS = 0.03
# Capacity is taken in about this many chunks per window: small chunks leave a process close together,
# so their calls reach Twilio at nearly the moment they took their place in the window.
CHUNKS_PER_WINDOW = 50
KEY = "messages"
# A waiting priority caller refreshes its flag this often, and the flag lapses this long after its last refresh.
PRIORITY_POLL = 0.01
PRIORITY_FLAG_MS = 60
MICROSECONDS = 1_000_000

# KEYS: the windows; ARGV: cost, then (places, span in µs) per window. Returns 0 once taken, else the µs to wait.
TAKE_PLACES = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local places, span = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local oldest_needed = redis.call('LINDEX', key, places - cost)
  if oldest_needed and tonumber(oldest_needed) > now - span then
    wait = math.max(wait, tonumber(oldest_needed) + span - now)
  end
end
if wait > 0 then
  return wait
end
local stamp = clock[1] .. string.format('%06d', tonumber(clock[2]))
local stamps = {}
for n = 1, cost do
  stamps[n] = stamp
end
for i, key in ipairs(KEYS) do
  local places, span = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('LPUSH', key, unpack(stamps))
  redis.call('LTRIM', key, 0, places - 1)
  redis.call('EXPIRE', key, math.ceil(span / 1000000) + 1)
end
return 0
"""


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

    def __init__(self, redis: Redis, per_second: float, key: str = KEY, guard_seconds: float = GUARD_SECONDS):
        amount, seconds = window_for(per_second)
        self.per_second_configured = per_second
        self.per_second = amount / seconds
        self.amount, self.seconds = amount, seconds
        self.key = key
        self.redis = redis
        self.window_key = f"jd-limits:window:{key}"
        self.guard_seconds = guard_seconds
        self.span_us = int((seconds + guard_seconds) * MICROSECONDS)
        self.chunk_size = max(1, amount // CHUNKS_PER_WINDOW)
        self.priority_flag = f"jd-limits:priority-waiting:{key}"
        self.take_places = redis.register_script(TAKE_PLACES)
        self._lock = threading.Lock()
        self._next_chunk_at = 0.0

    def __repr__(self) -> str:
        return f"<SendRateLimiter {self.key} {self.amount} per {self.seconds} s chunk={self.chunk_size}>"

    def acquire(self, cost: int, priority: bool = False) -> None:
        """Wait until `cost` sends fit in the window (and its guard margin), then take them."""
        acquire_all([self], cost, priority)


def acquire_all(limiters: list[SendRateLimiter], cost: int, priority: bool = False) -> None:
    """Take `cost` sends from every one of these windows at the same moment (a sender's and the global one).

    Taking them one after the other would let a wait on the second push the
    calls late, bunched against the first window's next places; so the script
    takes them only when all of them have room, in one step.
    """
    for limiter in limiters:
        if cost > limiter.amount:
            raise ValueError(f"cannot take {cost} sends at once from a limit of {limiter!r}")
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
    keys = [limiter.window_key for limiter in limiters]
    arguments = [cost, *(value for limiter in limiters for value in (limiter.amount, limiter.span_us))]
    while True:
        if not priority and any(limiter.redis.exists(limiter.priority_flag) for limiter in limiters):
            time.sleep(PRIORITY_POLL + random.uniform(0, 0.002))
            continue
        wait = int(limiters[0].take_places(keys=keys, args=arguments)) / MICROSECONDS
        if wait <= 0:
            return
        pause = max(wait, 0.001)
        if priority:
            for limiter in limiters:
                limiter.redis.set(limiter.priority_flag, "1", px=PRIORITY_FLAG_MS)
            pause = min(pause, PRIORITY_POLL)
        # A little random spread keeps workers that wake together from all asking at once.
        time.sleep(pause + random.uniform(0, 0.003))
