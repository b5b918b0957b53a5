"""How long an audience CSV import takes, end to end (parse + normalise + bulk upsert). Prints figures; asserts nothing.

Each database gets a fresh schema (SQLite file in a temp dir; PostgreSQL database `jd_bench_<pid>`, dropped
afterwards). For each size it imports a new audience, then re-uploads the same file with one changed column
(every contact updated, none duplicated), timing the importer alone and the whole `import_audience`.

    .venv/bin/python -m bench.bench_audience_import [--rows 100000] [--databases sqlite postgresql]
"""

import argparse
import os
import tempfile
import time
from contextlib import contextmanager

from flask_migrate import upgrade

from app import create_app
from app.contacts import audiences
from app.contacts.csv_import import import_contacts_csv
from tests.databases import scratch_postgres


def csv_bytes(rows: int, tier: str) -> bytes:
    lines = ["phone,name,order_id,city,tier"]
    lines += [f"+1{2015550000 + index},Person {index},A-{index},Oakland,{tier}" for index in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def database(kind: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.sqlite3"
        return
    with scratch_postgres(f"jd_bench_{os.getpid()}") as url:
        yield url


def bench(kind: str, rows: int) -> None:
    with database(kind) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "DEFAULT_REGION": "US"})
        with app.app_context():
            upgrade()
            first, second = csv_bytes(rows, "gold"), csv_bytes(rows, "silver")
            started = time.perf_counter()
            import_contacts_csv(first, "US")
            parse_seconds = time.perf_counter() - started

            started = time.perf_counter()
            audience, rejected = audiences.import_audience("bench", first)
            new_seconds = time.perf_counter() - started
            started = time.perf_counter()
            audiences.import_audience("bench", second, audience=audience)
            update_seconds = time.perf_counter() - started
            assert audience.total == rows and not rejected
            print(
                f"{kind:10} {rows:>7} rows: CSV parse alone {parse_seconds:5.2f} s | new audience "
                f"{new_seconds:5.2f} s ({rows / new_seconds:,.0f} rows/s, ~{new_seconds - parse_seconds:.2f} s "
                f"in the database) | re-upload updating all {update_seconds:5.2f} s "
                f"({rows / update_seconds:,.0f} rows/s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    for kind in args.databases:
        for rows in args.rows:
            bench(kind, rows)


if __name__ == "__main__":
    main()
