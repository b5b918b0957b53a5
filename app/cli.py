"""`flask --app wsgi …` commands of the contract: users (and journeys, from their area)."""

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db
from .models import ApiToken, User

users = AppGroup("users", help="Manage operator accounts.")


@users.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user(email: str, password: str) -> None:
    """Make a user (or reset the password of an existing one)."""
    email = email.strip().lower()
    if "@" not in email:
        raise click.BadParameter("must be an email address", param_hint="EMAIL")
    if len(password) < 8:
        raise click.BadParameter("must be at least 8 characters", param_hint="--password")
    user = db.session.scalar(db.select(User).filter_by(email=email))
    created = user is None
    if created:
        user = User(email=email)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    click.echo(f"{'Created' if created else 'Updated password of'} user {email}")


@users.command("token")
@click.argument("email")
def create_token(email: str) -> None:
    """Print a new API token for that user (shown once, stored hashed)."""
    user = db.session.scalar(db.select(User).filter_by(email=email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email!r}; create it with `flask --app wsgi users create`")
    row, token = ApiToken.issue(user)
    db.session.add(row)
    db.session.commit()
    click.echo(token)


def register(app: Flask) -> None:
    app.cli.add_command(users)
