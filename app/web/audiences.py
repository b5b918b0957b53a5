"""Audiences pages: list, upload a CSV (new audience or into an existing one), view contacts and rejected rows, delete.

Deleting removes the audience and its memberships only; contacts stay, because other audiences, runs and
the message log refer to them. It is refused while an active run uses the audience: a run being prepared
still reads the audience's contact list.
"""

from pathlib import PurePath

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from app.contacts import audiences
from app.contacts.csv_import import rejected_rows_csv
from app.extensions import db
from app.models import Audience, AudienceContact, Contact, Run
from app.web import htmx

bp = Blueprint("audiences", __name__, url_prefix="/audiences")

CONTACTS_PER_PAGE = 50
RUNS_SHOWN = 20


@bp.get("/")
def index():
    rows = db.session.scalars(db.select(Audience).order_by(Audience.created_at.desc(), Audience.id.desc())).all()
    return render_template("audiences/index.html", audiences=rows)


@bp.route("/new", methods=["GET", "POST"])
def new():
    if request.method == "GET":
        return render_template("audiences/new.html", form={})
    audience, error = _import_upload(audience=None)
    if error:
        return render_template("audiences/new.html", form=request.form, error=error), 400
    return redirect(url_for(".show", audience_id=audience.id))


@bp.get("/<int:audience_id>")
def show(audience_id: int):
    audience = db.get_or_404(Audience, audience_id)
    context = {"audience": audience, "contacts": _contacts_page(audience), "columns": _extra_columns(audience)}
    context["runs"] = db.session.scalars(
        db.select(Run).where(Run.audience_id == audience.id).order_by(Run.id.desc()).limit(RUNS_SHOWN)
    ).all()
    return htmx.page_or_fragment(
        "audiences/show.html", "audiences/_partials/contacts.html", target="contacts", **context
    )


@bp.post("/<int:audience_id>/upload")
def upload(audience_id: int):
    """Upload another CSV into this audience: known phones are updated, new ones added."""
    audience = db.get_or_404(Audience, audience_id)
    _, error = _import_upload(audience=audience)
    if error:
        flash(error, "error")
    return redirect(url_for(".show", audience_id=audience_id))


@bp.get("/<int:audience_id>/rejected.csv")
def rejected_csv(audience_id: int):
    audience = db.get_or_404(Audience, audience_id)
    text = rejected_rows_csv(audiences.audience_rejected_rows(audience), audience.columns or [])
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="audience-{audience.id}-rejected.csv"',
        },
    )


@bp.route("/<int:audience_id>/delete", methods=["GET", "POST"])
def delete(audience_id: int):
    """Confirmation page (GET) and deletion (POST); refused with 409 while an active run uses the audience."""
    audience = db.get_or_404(Audience, audience_id)
    in_use = audiences.has_active_run(audience)
    if request.method == "GET":
        return render_template("audiences/delete.html", audience=audience, in_use=in_use)
    if in_use:
        return render_template("audiences/delete.html", audience=audience, in_use=True), 409
    name = audience.name
    audiences.delete_audience(audience)
    flash(f"Deleted audience “{name}”; its contacts are kept.", "success")
    return redirect(url_for(".index"))


def _import_upload(audience: Audience | None) -> tuple[Audience | None, str | None]:
    """Import the uploaded file; return the audience, or an error message for the form."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None, "Choose a CSV file to upload."
    name = request.form.get("name", "").strip() or PurePath(upload.filename).stem
    try:
        audience, rejected = audiences.import_audience(
            name,
            upload.read(),
            phone_column=request.form.get("phone_column", "").strip() or None,
            audience=audience,
        )
    except audiences.CsvImportError as error:
        return None, f"{upload.filename}: {error}"
    message = f"Imported {upload.filename}: the audience has {audience.total} contacts"
    if rejected:
        flash(f"{message}; {len(rejected)} rows were rejected (see below).", "warning")
    else:
        flash(f"{message}.", "success")
    return audience, None


def _contacts_page(audience: Audience):
    query = (
        db.select(Contact)
        .join(AudienceContact, AudienceContact.contact_id == Contact.id)
        .where(AudienceContact.audience_id == audience.id)
        .order_by(Contact.id)
    )
    return db.paginate(query, per_page=CONTACTS_PER_PAGE, max_per_page=500, error_out=False)


def _extra_columns(audience: Audience) -> list[str]:
    """CSV columns shown after phone and name."""
    return [column for column in audience.columns or [] if column.lower() not in ("phone", "name")]
