"""Shared fixtures: the app on SQLite *and* PostgreSQL, real Redis, real RQ, a fake Twilio.

Every test that uses `app` runs twice, once per database (ids `[sqlite]`
and `[postgresql]`). Each pytest session gets its own PostgreSQL database
(dropped at the end) and uses the Redis DB of `TEST_REDIS_URL` (default
DB 15), flushed before every test, so parallel sessions don't collide.
"""

import os
import re
import threading
import uuid

import pytest
from flask import g, has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import HealthCheck, settings
from rq import SimpleWorker
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import ApiToken, User
from app.queues import QUEUE_NAMES, get_queue, get_redis
from tests.databases import scratch_postgres

pytest_plugins = ["tests.fake_twilio", "tests.fake_api"]

# Property tests judge results, not speed: a busy machine must not fail them.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def _test_redis_url() -> str:
    """TEST_REDIS_URL (default DB 15); each further pytest-xdist worker takes the DB below it (14, 13, …)."""
    base = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    prefix, _, database = base.rpartition("/")
    return f"{prefix}/{int(database) - worker}" if worker and database.isdigit() else base


TEST_REDIS_URL = _test_redis_url()
DATABASES = [name for name in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",") if name]
TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
USER_EMAIL, USER_PASSWORD = "operator@example.com", "correct horse battery"


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    else:
        with scratch_postgres(f"jd_test_{os.getpid()}_{uuid.uuid4().hex[:6]}") as url:
            yield url


class TestClient(FlaskClient):
    """A test client whose requests don't see a user cached by an earlier request.

    Requests reuse the test's app context (the `app` fixture keeps one
    pushed), where Flask-Login caches the user in `g`; a real server starts
    every request with a fresh context, so forget it before each request.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            g.pop("_login_user", None)
            g.pop("csrf_token", None)
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def base_app(database_url, tmp_path_factory, fake_twilio_server):
    """One app per database for the session, schema made by the real migrations."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": TEST_REDIS_URL,
            "RQ_DASHBOARD_REDIS_URL": TEST_REDIS_URL,
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "TWILIO_FROM": "+15005550001",
            "TWILIO_WHATSAPP_FROM": "whatsapp:+15005550002",
            "TWILIO_MESSAGING_SERVICE_SID": None,
            "TWILIO_API_BASE_URL": fake_twilio_server.base_url,
            "PUBLIC_BASE_URL": "http://testserver.local",
            "DRY_RUN": False,
            "MESSAGE_RATE_LIMIT": 0,
            "DEFAULT_REGION": "US",
            "API_NODE_ALLOW_PRIVATE": True,
            "RETRY_BACKOFF": [0.05, 0.1, 0.2],
        }
    )
    app.test_client_class = TestClient
    with app.app_context():
        upgrade()
    return app


def _clear_database() -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        quoted = ", ".join(f'"{name}"' for name in tables)
        db.session.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f'DELETE FROM "{name}"'))
    db.session.commit()


@pytest.fixture
def app(base_app, fake_twilio_server):
    """The session app with empty tables, an empty Redis DB and a reset fake Twilio."""
    saved_config = dict(base_app.config)
    with base_app.app_context():
        _clear_database()
        get_redis().flushdb()
        fake_twilio_server.reset()
        yield base_app
        db.session.remove()
    base_app.config.clear()
    base_app.config.update(saved_config)


@pytest.fixture
def user(app):
    account = User(email=USER_EMAIL, role="admin")
    account.set_password(USER_PASSWORD)
    db.session.add(account)
    db.session.commit()
    return account


def csrf_token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


@pytest.fixture
def client(app, user):
    """A test client logged in through the real login form; it sends the CSRF header on every request."""
    test_client = app.test_client()
    login_page = test_client.get("/login")
    response = test_client.post(
        "/login", data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": csrf_token_of(login_page.text)}
    )
    assert response.status_code == 302, response.text
    test_client.environ_base["HTTP_X_CSRFTOKEN"] = csrf_token_of(test_client.get("/").text)
    return test_client


@pytest.fixture
def api_token(app, user):
    row, token = ApiToken.issue(user)
    db.session.add(row)
    db.session.commit()
    return token


@pytest.fixture
def api(app, api_token):
    """A test client that sends the bearer token."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
    return test_client


def worker_env(app, fake_twilio, **settings) -> dict:
    """Environment for a `python -m app.worker` subprocess that works on this test's database, Redis and fake Twilio."""
    return {
        **os.environ,
        **fake_twilio.env(),
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": TEST_REDIS_URL,
        "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
        "SECRET_KEY": "test-secret",
        **{name: str(value) for name, value in settings.items()},
    }


def drain(queues=QUEUE_NAMES) -> None:
    """Run every queued job in this process with a real RQ SimpleWorker (burst)."""
    worker = SimpleWorker([get_queue(name) for name in queues], connection=get_redis())
    worker.work(burst=True, with_scheduler=False)


@pytest.fixture
def live_server(app):
    """The app served over real HTTP in a thread, for the browser tests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(timeout=5)
