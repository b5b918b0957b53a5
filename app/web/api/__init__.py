"""The JSON API under `/api/`: bearer tokens, JSON errors, one module per area."""

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.models import ApiToken, utcnow

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _authenticate():
    """Every `/api/` route needs `Authorization: Bearer <token>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return jsonify(error="missing bearer token: send 'Authorization: Bearer <token>'"), 401
    row = db.session.scalar(db.select(ApiToken).filter_by(token_hash=ApiToken.hash(token.strip())))
    if row is None:
        return jsonify(error="invalid API token"), 401
    row.last_used_at = utcnow()
    db.session.commit()
    g.api_user = row.user
    return None


@bp.errorhandler(HTTPException)
def _json_error(error: HTTPException):
    """Errors under /api/ are JSON: {"error": "..."} with a fitting status."""
    return jsonify(error=error.description), error.code


from app.web.api import audiences, campaigns, contacts, inbound, journeys, runs  # noqa: E402,F401  (routes register on bp)
