"""Scratch PostgreSQL databases, for the test session and the benchmarks.

The server comes from `TEST_POSTGRES_URL` (an admin URL whose user may create
databases) or `TEST_DATABASE_URL`; else the local default
(`postgres@127.0.0.1:5432`) when it lets us in without a password; else a
throwaway server of our own (`initdb` + `pg_ctl` in a temporary directory, on
a free loopback port, as the `postgres` OS user when run as root), stopped
and deleted at exit. The system's PostgreSQL configuration is never touched.
"""

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _can_connect(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@cache
def postgres_admin_url() -> str:
    """The admin URL of the PostgreSQL server the tests use (see the module docstring)."""
    given = os.environ.get("TEST_POSTGRES_URL") or os.environ.get("TEST_DATABASE_URL")
    if given:
        return given
    if _can_connect(DEFAULT_ADMIN_URL):
        return DEFAULT_ADMIN_URL
    url, stop = start_private_postgres()
    atexit.register(stop)
    return url


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run scripts/services, or set TEST_POSTGRES_URL")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_private_postgres() -> tuple[str, Callable[[], None]]:
    """Start a PostgreSQL of our own in a temporary directory; return its admin URL and what stops and deletes it."""
    directory = tempfile.mkdtemp(prefix="jd-test-pg-")
    data, port = os.path.join(directory, "data"), _free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(directory, "postgres")
        os.chmod(directory, 0o700)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    # trust is for this private, loopback-only server, which lives as long as the test process.
    subprocess.run(
        [*as_postgres, _binary("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_postgres, _binary("pg_ctl"), "-D", data]
    subprocess.run(
        [*pg_ctl, "-o", options, "-l", os.path.join(directory, "log"), "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )

    def stop() -> None:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@contextmanager
def scratch_postgres(name: str):
    """Create database `name` afresh, yield its URL, drop it at the end."""
    admin_url = postgres_admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
