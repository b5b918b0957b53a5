"""Journeys pages."""

from flask import Blueprint, render_template

bp = Blueprint("journeys", __name__, url_prefix="/journeys")


@bp.get("/")
def index():
    return render_template("placeholder.html", title="Journeys")
