"""Status callbacks under load: the app's webhook against a bare signature-checking endpoint, same gunicorn settings.

Prints figures; asserts nothing. Stores N sent messages (a campaign), then
C concurrent keep-alive clients (aiohttp) post a signed `sent` and a signed
`delivered` callback for each, in random order, against the app under
gunicorn (the Procfile's `web` settings: `--workers W --threads 32`, access
log on) with one worker process running (its sweeper applies the stored
callbacks), then the same clients against a bare Flask app under the same
gunicorn settings that only checks the signature. Prints callbacks/s and
p50/p95/p99 latency for both and the ratios, and the time from the last
callback answered until every status is applied. `--web-workers 1,2,4`
repeats the app run with that many gunicorn workers (the scaling figures).

    .venv/bin/python -m bench.bench_callbacks [--messages 3000] [--clients 32] [--postgres] [--rounds 2] [--web-workers 2]

Uses Redis DB 3 (flushed) and, with --postgres, the database jd_bench_hooks (dropped and created again).
"""

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from sqlalchemy import create_engine, func, insert, select, text
from twilio.request_validator import RequestValidator

from tests.databases import scratch_postgres

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "b" * 32
STATUS_PATH = "/webhooks/twilio/status"
WARM_UP = 300
THREADS = int(os.environ.get("WEB_THREADS", 32))  # as the Procfile's web
CPU_KINDS = ("web", "database", "applier", "clients")
CPU_MARKS = (("web", "gunicorn"), ("applier", "app.worker"), ("database", "postgres"))  # by command line


def bare_app():
    """The baseline: a Flask app that checks the Twilio signature of a status callback and answers empty TwiML."""
    from flask import Flask, Response, request

    app = Flask("bare_callbacks")
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public_url = os.environ["PUBLIC_BASE_URL"] + STATUS_PATH

    @app.post(STATUS_PATH)
    def status():
        if not validator.validate(public_url, request.form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid X-Twilio-Signature", 403)
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', 200, mimetype="text/xml")

    return app


# -- setup -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sid_of(number: int, prefix: str = "SMbench") -> str:
    return f"{prefix}{number:025d}"


def prepare_database(database_url: str, messages: int) -> None:
    """Schema by the real migrations, then one campaign of `messages` sent messages plus the warm-up ones."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import Campaign, message_table, utcnow

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        campaign = Campaign(name="callbacks bench", body="Hello", channel="sms", status="completed", total=messages)
        db.session.add(campaign)
        db.session.flush()
        now = utcnow()
        rows = [
            {
                "campaign_id": campaign.id,
                "to_phone": f"+1206{5550000 + n:07d}",
                "channel": "sms",
                "body": "Hello",
                "status": "sent",
                "sid": sid,
                "attempts": 1,
                "created_at": now,
                "sent_at": now,
                "updated_at": now,
            }
            for n, sid in enumerate(
                [sid_of(n) for n in range(messages)] + [sid_of(n, "SMwarm") for n in range(WARM_UP)]
            )
        ]
        db.session.execute(insert(message_table), rows)
        db.session.commit()
        db.engine.dispose()


def environment(database_url: str, port: int) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": "+15005550006",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DRY_RUN": "0",
    }


@contextmanager
def process(command: list[str], env: dict, ready=None):
    """Run a process (its output to a temporary log) until the block ends; wait for `ready()` first."""
    log = tempfile.NamedTemporaryFile("w", prefix="bench-callbacks-", suffix=".log", delete=False)
    child = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while ready is not None and not ready():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start; see {log.name}")
            time.sleep(0.1)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
        log.close()
        os.unlink(log.name)


def gunicorn(target: str, env: dict, port: int, web_workers: int):
    command = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(web_workers)]
    command += ["--threads", str(THREADS), "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", target]

    def listening():
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    return process(command, env, listening)


# -- load ------------------------------------------------------------------------


def signed_callbacks(sids: list[str], port: int) -> list[tuple[dict, str]]:
    """A `sent` and a `delivered` callback per sid, signed for this port, shuffled (Twilio's order is not ours)."""
    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    validator = RequestValidator(AUTH_TOKEN)
    posts = []
    for sid in sids:
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
            posts.append((params, validator.compute_signature(url, params)))
    random.Random(7).shuffle(posts)
    return posts


async def post_all(port: int, posts: list[tuple[dict, str]], clients: int) -> tuple[list[float], float]:
    """Post every callback with `clients` keep-alive connections; return each latency and the wall time."""
    import aiohttp

    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    pending = list(reversed(posts))
    latencies, failures = [], []

    async def client(session):
        while pending:
            params, signature = pending.pop()
            started = time.perf_counter()
            async with session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as answer:
                await answer.read()
                if answer.status != 200:
                    failures.append(answer.status)
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} callbacks were not answered 200: {sorted(set(failures))}")
    return latencies, wall


def figures(latencies: list[float], wall: float) -> dict:
    ordered = sorted(latencies)

    def percentile(p):
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {"rate": len(ordered) / wall, "p50": percentile(50), "p95": percentile(95), "p99": percentile(99)}


def load(port: int, sids: list[str], warm_sids: list[str], clients: int) -> dict:
    """The figures of posting every callback, with the CPU each kind of process spent per callback."""
    asyncio.run(post_all(port, signed_callbacks(warm_sids, port), clients))
    before = cpu_seconds()
    result = figures(*asyncio.run(post_all(port, signed_callbacks(sids, port), clients)))
    after = cpu_seconds()
    calls = 2 * len(sids)
    result.update({f"cpu_{kind}": (after[kind] - before[kind]) * 1000 / calls for kind in CPU_KINDS})
    return result


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of the gunicorn processes, PostgreSQL, our worker and this process."""
    totals = dict.fromkeys(CPU_KINDS, 0.0)
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == os.getpid():
            kind = "clients"  # first: this script's own command line names --postgres
        else:
            kind = next((kind for kind, mark in CPU_MARKS if mark in command), None)
        if kind:
            totals[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


# -- scenarios -------------------------------------------------------------------


def wait_applied(database_url: str, messages: int, timeout: float = 120) -> float:
    """Seconds until every bench message is `delivered` and no stored callback is left."""
    from app.models import Message, StatusCallback

    engine = create_engine(database_url)
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            while time.perf_counter() - started < timeout:
                delivered = conn.scalar(
                    select(func.count()).where(Message.status == "delivered", Message.sid.like("SMbench%"))
                )
                left = conn.scalar(select(func.count()).select_from(StatusCallback))
                conn.rollback()
                if delivered == messages and left == 0:
                    return time.perf_counter() - started
                time.sleep(0.02)
    finally:
        engine.dispose()
    raise TimeoutError(f"statuses not applied within {timeout} s")


def run_app(database_url: str, messages: int, clients: int, web_workers: int) -> dict:
    """The app's webhook with one worker process applying; returns its figures and the apply time."""
    port = free_port()
    env = environment(database_url, port)
    Redis.from_url(REDIS_URL).flushdb()
    reset = create_engine(database_url)
    with reset.begin() as conn:
        conn.execute(text("UPDATE message SET status = 'sent'"))
        conn.execute(text("DELETE FROM message_event"))
    reset.dispose()
    worker = [sys.executable, "-m", "app.worker", "--processes", "1"]
    with process(worker, env), gunicorn("wsgi:app", env, port, web_workers):
        sids = [sid_of(n) for n in range(messages)]
        result = load(port, sids, [sid_of(n, "SMwarm") for n in range(WARM_UP)], clients)
        result["applied_after"] = wait_applied(database_url, messages)
    return result


def run_bare(database_url: str, messages: int, clients: int, web_workers: int) -> dict:
    port = free_port()
    with gunicorn("bench.bench_callbacks:bare_app()", environment(database_url, port), port, web_workers):
        sids = [sid_of(n) for n in range(messages)]
        return load(port, sids, [sid_of(n, "SMwarm") for n in range(WARM_UP)], clients)


def report(name: str, result: dict) -> None:
    line = f"{name:<28} {result['rate']:8.0f} callbacks/s   p50 {result['p50']:6.1f} ms   p95 {result['p95']:6.1f} ms"
    line += f"   p99 {result['p99']:6.1f} ms"
    if "applied_after" in result:
        line += f"   all applied {result['applied_after']:.2f} s after the last answer"
    cpu = ", ".join(f"{kind} {result[f'cpu_{kind}']:.3f}" for kind in CPU_KINDS if result[f"cpu_{kind}"] >= 0.001)
    print(f"{line}\n{'':<28} CPU ms per callback: {cpu}", flush=True)


def bench(database_url: str, args) -> None:
    """For each web-worker count: app and bare in turn, `rounds` times (a shared machine drifts); the medians."""
    prepare_database(database_url, args.messages)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for web_workers in args.web_workers:
        apps, bares = [], []
        for _ in range(args.rounds):
            apps.append(run_app(database_url, args.messages, args.clients, web_workers))
            report(f"app, {web_workers} web worker(s)", apps[-1])
            bares.append(run_bare(database_url, args.messages, args.clients, web_workers))
            report(f"bare, {web_workers} web worker(s)", bares[-1])
        app_figures, bare_figures = median(apps), median(bares)
        report(f"median app, {web_workers} web", app_figures)
        report(f"median bare, {web_workers} web", bare_figures)
        print(
            f"  ratio: rate {app_figures['rate'] / bare_figures['rate']:.0%} of bare (goal >= 85%), "
            f"p95 {app_figures['p95'] / bare_figures['p95']:.2f}x bare (goal <= 1.5x); "
            f"web tier CPU per callback {app_figures['cpu_web'] / bare_figures['cpu_web']:.2f}x bare's",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def median(results: list[dict]) -> dict:
    return {key: statistics.median(result[key] for result in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="app and bare runs, in turn, per web-worker count")
    parser.add_argument(
        "--web-workers", type=lambda value: [int(n) for n in value.split(",")], default=[2], help="e.g. 1,2,4"
    )
    args = parser.parse_args()
    print(
        f"{args.messages} messages, {2 * args.messages} signed callbacks, {args.clients} keep-alive clients, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, gunicorn --threads {THREADS}",
        flush=True,
    )
    if args.postgres:
        with scratch_postgres("jd_bench_hooks") as url:
            bench(url, args)
    else:
        with tempfile.TemporaryDirectory() as directory:
            bench(f"sqlite:///{directory}/bench.sqlite3", args)


if __name__ == "__main__":
    main()
