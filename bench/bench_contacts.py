"""Contact search latency over 100,000 contacts, on SQLite and PostgreSQL. Prints figures; asserts nothing.

Each database gets a fresh schema (SQLite file in a temp dir; PostgreSQL database `jd_bench_contacts_<pid>`,
dropped afterwards), filled through the real audience import. Every query is timed `--repeat` times through
`app.contacts.search.search` (one page + the total), and through `GET /api/contacts` (with auth and JSON);
the baseline is a primary-key lookup of one contact in the same run.

    .venv/bin/python -m bench.bench_contacts [--rows 100000] [--repeat 30] [--databases sqlite postgresql]
"""

import argparse
import os
import statistics
import tempfile
import time
from contextlib import contextmanager

from flask_migrate import upgrade

from app import create_app
from app.contacts import audiences
from app.contacts.search import search
from app.extensions import db
from app.models import ApiToken, Contact, User
from tests.databases import scratch_postgres

FIRST = ["Maria", "Mário", "Ana", "João", "Lucas", "Júlia", "Carla", "Paulo", "Zoë", "Pedro", "Beatriz", "Rafael"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Lima", "Costa", "Pereira", "Almeida", "Brown", "Smith"]
QUERIES = {
    "all, first page": "",
    "name prefix 'ma' (broad)": "ma",
    "name prefix 'maria si'": "maria si",
    "name prefix, no match": "zzz",
    "phone prefix '+1201555'": "+1201555",
    "local digits '201 555 12'": "201 555 12",
    "whole number": "(201) 555-0777",
}


def csv_bytes(rows: int) -> bytes:
    lines = ["phone,name,city"]
    lines += [
        f"+1{2015550000 + index},{FIRST[index % len(FIRST)]} {LAST[(index // 7) % len(LAST)]} {index},Oakland"
        for index in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def database(kind: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.sqlite3"
        return
    with scratch_postgres(f"jd_bench_contacts_{os.getpid()}") as url:
        yield url


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def timed(action, repeat: int) -> list[float]:
    action()  # warm caches and the connection
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def bench(kind: str, rows: int, repeat: int) -> None:
    with database(kind) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "DEFAULT_REGION": "US", "TESTING": True})
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            audiences.import_audience("bench", csv_bytes(rows))
            print(f"\n{kind}: {rows:,} contacts imported in {time.perf_counter() - started:.1f} s")
            if kind == "postgresql":  # as autovacuum leaves a table at rest: statistics and visibility map
                db.session.commit()
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(db.text("VACUUM ANALYZE contact"))
            user = User(email="bench@example.com")
            user.set_password("bench-password")
            token_row, token = ApiToken.issue(user)
            db.session.add_all([user, token_row])
            db.session.commit()
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            middle = rows // 2
            base50, base95 = percentiles(
                timed(lambda: (db.session.get(Contact, middle), db.session.expunge_all()), repeat)
            )
            print(f"  {'baseline: one contact by id':34} p50 {base50:6.2f} ms  p95 {base95:6.2f} ms")
            all_samples = []
            for label, query in QUERIES.items():
                found = search(query)
                samples = timed(lambda q=query: (search(q), db.session.expunge_all()), repeat)
                api = timed(lambda q=query: client.get("/api/contacts", query_string={"q": q}, headers=headers), repeat)
                all_samples += samples
                p50, p95 = percentiles(samples)
                a50, a95 = percentiles(api)
                print(
                    f"  {label:34} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({p50 / base50:5.1f}x baseline)"
                    f"  | API p50 {a50:6.2f} ms p95 {a95:6.2f} ms | {found.total:,} match"
                )
            deep = timed(lambda: (search("", page=1500), db.session.expunge_all()), repeat)
            p50, p95 = percentiles(deep)
            print(f"  {'all, page 1,500 (offset 74,950)':34} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
            p50, p95 = percentiles(all_samples)
            print(f"  {'every search above together':34} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} CPUs")
    for kind in args.databases:
        bench(kind, args.rows, args.repeat)


if __name__ == "__main__":
    main()
