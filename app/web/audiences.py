"""Audiences pages."""

from flask import Blueprint, render_template

bp = Blueprint("audiences", __name__, url_prefix="/audiences")


@bp.get("/")
def index():
    return render_template("placeholder.html", title="Audiences")
