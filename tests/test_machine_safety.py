"""The project's scripts leave the machine as they found it: no PostgreSQL authentication rewritten, the web
process on loopback unless HOST says otherwise, and tests that need their own PostgreSQL start a private one."""

import os
import re
import tempfile

from sqlalchemy import create_engine, text

from app.config import PROJECT_ROOT
from tests.databases import PrivatePostgres, _can_connect


def test_no_script_touches_postgresql_authentication():
    for path in (PROJECT_ROOT / "scripts").iterdir():
        script = path.read_text()
        assert not re.search(r"hba|\btrust\b|ALTER\s+(USER|ROLE)|password_encryption", script, re.I), path.name


def test_the_web_process_binds_loopback_unless_host_says_otherwise():
    (web,) = [line for line in (PROJECT_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    assert "--bind ${HOST:-127.0.0.1}:${PORT:-5000}" in web


def test_a_private_postgresql_starts_and_is_removed_without_a_trace():
    """Checks its own directory, not a count of them: the other pytest worker starts and removes private
    servers of its own (the restart tests) at the same time."""
    server = PrivatePostgres()
    server.start()
    assert os.path.isdir(server.directory) and server.directory.startswith(tempfile.gettempdir())
    try:
        engine = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            assert conn.execute(text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            conn.execute(text('CREATE DATABASE "jd_private_check"'))
        engine.dispose()
    finally:
        server.stop_and_delete()
    assert not _can_connect(server.admin_url)
    assert not os.path.exists(server.directory)
