"""The JSON API under `/api/`: JSON errors, one module per area.

Bearer tokens and roles are checked for every `/api/` route by `app.web.security` (it sets `g.api_user`).
"""

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(HTTPException)
def _json_error(error: HTTPException):
    """Errors under /api/ are JSON: {"error": "..."} with a fitting status."""
    return jsonify(error=error.description), error.code


from app.web.api import audiences, campaigns, contacts, inbound, journeys, runs  # noqa: E402,F401  (routes register on bp)
