"""Bulk-insert helpers that work the same on SQLite and PostgreSQL."""

from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db


def insert_ignore(table, index_elements: list[str]):
    """INSERT … ON CONFLICT DO NOTHING for the session's database."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)
