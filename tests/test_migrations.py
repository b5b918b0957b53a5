"""The schema comes only from the migrations: they must build exactly what the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app.extensions import db

# SQLite cannot reflect PostgreSQL's expression indexes; alembic says so, and `_made_on_this_database` skips them.
pytestmark = pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")


def _differences():
    with db.engine.connect() as connection:
        options = {"compare_type": True, "include_object": _made_on_this_database}
        context = MigrationContext.configure(connection, opts=options)
        return compare_metadata(context, db.metadata)


def _made_on_this_database(schema_object, name, type_, reflected, compare_to) -> bool:
    """Skip what the models only make on another database (`Index(...).ddl_if(dialect=...)`)."""
    ddl_if = getattr(schema_object, "_ddl_if", None)
    return ddl_if is None or ddl_if.dialect in (None, db.engine.dialect.name)


def test_models_and_migrations_agree(app):
    assert _differences() == []


def test_migrations_go_down_and_up_again(app):
    downgrade(revision="base")
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is None
    upgrade()
    assert _differences() == []
