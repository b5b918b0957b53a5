"""The schema comes only from the migrations: they must build exactly what the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app.extensions import db


def _differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_models_and_migrations_agree(app):
    assert _differences() == []


def test_migrations_go_down_and_up_again(app):
    downgrade(revision="base")
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is None
    upgrade()
    assert _differences() == []
