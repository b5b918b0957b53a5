"""The journey designer: `create_app()` builds the Flask app; nothing happens at import."""

from importlib import import_module
from pathlib import Path

from flask import Flask

from app.config import PROJECT_ROOT, load_settings
from app.extensions import csrf, db, login_manager, migrate
from app.queues import connect

# One blueprint per area, each `bp` in `app/web/<name>.py` (or package).
BLUEPRINTS = (
    "auth",
    "home",
    "campaigns",
    "outbox",
    "audiences",
    "journeys",
    "runs",
    "contacts",
    "inbox",
    "senders",
    "webhooks",
    "api",
    "users",
)


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app from the environment, with optional config overrides (tests)."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        static_folder=str(PROJECT_ROOT / "static"),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(load_settings(Path(app.instance_path)))
    app.config.update(overrides or {})

    from app.logging_setup import configure_logging
    from app.models import bulk
    from app.web import security
    from app.web.status_lane import StatusCallbackLane

    configure_logging(app)
    app.wsgi_app = StatusCallbackLane(app, app.wsgi_app)  # status callbacks are answered before Flask's machinery
    security.init_app(app)  # login, roles, tokens and /rq for every route (before CSRF); security headers
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    _init_sqlite(app)
    bulk.init_app(app)  # PostgreSQL: row arrays go to the server in binary
    app.extensions["redis"] = connect(app.config["REDIS_URL"])

    from htmx_flask import Htmx

    Htmx(app)
    for name in BLUEPRINTS:
        blueprint = import_module(f"app.web.{name}").bp
        app.register_blueprint(blueprint)
    csrf.exempt(import_module("app.web.webhooks").bp)
    csrf.exempt(import_module("app.web.api").bp)
    _mount_rq_dashboard(app)

    from app import cli
    from app.web import errors, jinja

    cli.register(app)
    jinja.register(app)
    errors.register(app)
    return app


def _mount_rq_dashboard(app: Flask) -> None:
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")
    csrf.exempt(rq_dashboard.blueprint)


def _init_sqlite(app: Flask) -> None:
    """WAL and relaxed fsync for SQLite: many workers write the message log."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
