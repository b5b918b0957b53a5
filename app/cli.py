"""`flask --app wsgi …` commands (README.md, *Command line*): users, journeys import/export, and the first-run `demo`."""

import json
import os
import secrets
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.contacts import audiences
from app.extensions import db
from app.journeys import store as journeys
from app.models import (
    ROLES,
    AccountRefused,
    ApiToken,
    Audience,
    Journey,
    User,
    check_keeps_an_admin,
    check_new_account,
    first_user_role,
    utcnow,
)
from app.runs import prune as run_prune

users = AppGroup("users", help="Manage operator accounts.")
journeys_group = AppGroup("journeys", help="Import and export journey/v1 files.")
runs_group = AppGroup("runs", help="Look after journey runs.")

DEMO_JOURNEY = Path(__file__).with_name("demo_journey.json")
DEMO_ADMIN = "admin@example.com"
DEMO_AUDIENCE_CSV = (
    "phone,name,order_id\n"
    "+1 500 555 0101,Ana Demo,A-1001\n"
    "+1 500 555 0102,Bruno Demo,A-1002\n"
    "+1 500 555 0103,Carla Demo,A-1003\n"
)


@users.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=None,
    help="admin, editor or viewer (default: admin for the first user, else editor; unchanged for an existing user)",
)
def create_user(email: str, password: str, role: str | None) -> None:
    """Make a user (or reset the password, and set the role, of an existing one)."""
    user = db.session.scalar(db.select(User).filter_by(email=email.strip().lower()))
    created = user is None
    try:
        role = role or (first_user_role() if created else user.role)
        email = check_new_account(email, password, role)
        if not created:
            check_keeps_an_admin(user, new_role=role)
    except AccountRefused as error:
        raise click.ClickException(str(error)) from None
    if created:
        user = User(email=email)
        db.session.add(user)
    user.role = role
    user.set_password(password)
    db.session.commit()
    click.echo(f"{'Created' if created else 'Updated password of'} user {email} ({role})")


def _user_named(email: str) -> User:
    user = db.session.scalar(db.select(User).filter_by(email=email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email!r}; create it with `flask --app wsgi users create`")
    return user


@users.command("token")
@click.argument("email")
@click.option("--expires-in", "expires_in", type=click.FloatRange(min=0, min_open=True), help="days until it expires")
def create_token(email: str, expires_in: float | None) -> None:
    """Print a new API token for that user (shown once, stored hashed); it acts with the user's role."""
    row, token = ApiToken.issue(_user_named(email), expires_in_days=expires_in)
    db.session.add(row)
    db.session.commit()
    click.echo(token)


@users.command("tokens")
@click.argument("email")
def list_tokens(email: str) -> None:
    """List that user's API tokens: id, status, created, last used, expires."""
    user = _user_named(email)
    rows = db.session.scalars(db.select(ApiToken).filter_by(user_id=user.id).order_by(ApiToken.id)).all()
    click.echo("id\tstatus\tcreated\tlast_used\texpires")
    for row in rows:
        times = (row.created_at, row.last_used_at, row.expires_at)
        click.echo("\t".join([str(row.id), row.status, *(f"{t:%Y-%m-%d %H:%M}Z" if t else "-" for t in times)]))


@users.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke API token TOKEN_ID (see `users tokens EMAIL`): it stops working at once."""
    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise click.ClickException(f"no API token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
    click.echo(f"Revoked token {token_id} of {row.user.email}")


@journeys_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_journey(file: Path) -> None:
    """Import a journey/v1 FILE as a new journey and print its id; nothing is written if it has problems."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise click.ClickException(f"{file}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise click.ClickException(
            f"{file}: not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    try:
        journey = journeys.import_document(doc)
    except journeys.InvalidJourney as error:
        click.echo(f"{file}: not imported, {len(error.problems)} problem(s):", err=True)
        for problem in error.problems:
            click.echo(f"  - {journeys.describe_problem(problem)}", err=True)
        raise SystemExit(1) from None
    click.echo(journey.id)


@journeys_group.command("export")
@click.argument("journey_id")
def export_journey(journey_id: str) -> None:
    """Print journey JOURNEY_ID (its draft) as journey/v1 JSON."""
    journey = journeys.get(journey_id)
    if journey is None:
        raise click.ClickException(f"no journey {journey_id!r}")
    click.echo(json.dumps(journeys.export_document(journey), indent=2, ensure_ascii=False))


@journeys_group.command("list")
def list_journeys() -> None:
    """List journeys: id, status, latest version and name."""
    for journey in journeys.all_journeys():
        status = journeys.status_of(journey)
        version = f"v{status.version}" if status.version else "-"
        click.echo(f"{journey.id}\t{status.status}\t{version}\t{journey.name}")


@runs_group.command("prune")
@click.option(
    "--finished-before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Prune runs that finished before this date (UTC), e.g. 2026-06-30.",
)
@click.option("--dry-run", is_flag=True, help="Only list the runs that would be pruned.")
def prune_runs(finished_before, dry_run: bool) -> None:
    """Archive finished runs' results to CSV files, then delete their steps and message texts."""
    run_ids = run_prune.runs_finished_before(finished_before)
    if not run_ids:
        click.echo(f"No finished run left to prune before {finished_before:%Y-%m-%d %H:%M:%S}.")
        return
    if dry_run:
        click.echo(f"Would prune {len(run_ids)} run(s): {', '.join(map(str, run_ids))}")
        return
    for run_id in run_ids:
        pruned = run_prune.prune_run(run_id)
        click.echo(
            f"run {run_id}: archived to {pruned.archive}; {pruned.steps_deleted:,} steps deleted, "
            f"{pruned.bodies_cleared:,} message texts cleared"
        )
    click.echo(f"Pruned {len(run_ids)} run(s) into {run_prune.archive_dir()}.")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """First-run setup (idempotent): an admin user, a published demo journey and a small demo audience."""
    did_something = False
    if db.session.scalar(db.select(User).limit(1)) is None:
        _create_demo_admin()
        did_something = True
    if db.session.scalar(db.select(Journey).limit(1)) is None:
        journey = journeys.import_document(json.loads(DEMO_JOURNEY.read_text(encoding="utf-8")))
        version = journeys.publish(journey, note="demo journey")
        click.echo(f"Imported and published the demo journey “{journey.name}” (id {journey.id}, v{version.number}).")
        did_something = True
    if db.session.scalar(db.select(Audience).limit(1)) is None:
        audience, _ = audiences.import_audience("Demo audience", DEMO_AUDIENCE_CSV.encode(), default_region="US")
        click.echo(
            f"Created the demo audience “{audience.name}” (id {audience.id}, {audience.total} fictional contacts)."
        )
        did_something = True
    if not did_something:
        click.echo("Demo setup: nothing to do (users, journeys and audiences already exist).")


def _create_demo_admin() -> None:
    password = secrets.token_urlsafe(12)
    user = User(email=DEMO_ADMIN, role="admin")
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    credentials_file = Path(current_app.instance_path) / "first-login.txt"
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(f"email: {DEMO_ADMIN}\npassword: {password}\n")
    credentials_file.chmod(0o600)
    banner = "=" * 60
    click.echo(
        f"{banner}\nCreated the first user. Log in with:\n  email:    {DEMO_ADMIN}\n"
        f"  password: {password}\n(saved in {credentials_file}, readable only by you)\n{banner}"
    )


def register(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(journeys_group)
    app.cli.add_command(runs_group)
    app.cli.add_command(demo)
