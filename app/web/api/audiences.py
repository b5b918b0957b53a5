"""JSON API: audiences uploaded as CSV, through `app.contacts.audiences` (the same importer as the pages)."""

from pathlib import PurePath

from flask import abort, jsonify, request

from app.contacts import audiences
from app.extensions import db
from app.models import Audience
from app.models.vocabulary import iso_z
from app.web.api import bp


@bp.post("/audiences")
def create_audience():
    """Multipart `file` (CSV), optional `name`, `phone_column`, `default_region` -> 201 with rejected rows."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        abort(400, "missing file: send the CSV as the multipart form field 'file'")
    name = request.form.get("name", "").strip() or PurePath(upload.filename).stem
    try:
        audience, rejected = audiences.import_audience(
            name,
            upload.read(),
            phone_column=request.form.get("phone_column") or None,
            default_region=request.form.get("default_region") or None,
        )
    except audiences.CsvImportError as error:
        abort(400, str(error))
    return jsonify(
        id=audience.id,
        name=audience.name,
        imported=audience.total,
        rejected=[{"line": row.line, "reason": row.reason} for row in rejected],
    ), 201


@bp.get("/audiences")
def list_audiences():
    rows = db.session.scalars(db.select(Audience).order_by(Audience.id.desc()))
    return jsonify([_summary(audience) for audience in rows])


@bp.get("/audiences/<int:audience_id>")
def get_audience(audience_id: int):
    audience = db.get_or_404(Audience, audience_id, description=f"no audience {audience_id}")
    return jsonify(_summary(audience))


def _summary(audience: Audience) -> dict:
    return {
        "id": audience.id,
        "name": audience.name,
        "contacts": audience.total,
        "columns": audience.columns,
        "rejected": [{"line": row["line"], "reason": row["reason"]} for row in audience.rejected or []],
        "created_at": iso_z(audience.created_at),
    }
