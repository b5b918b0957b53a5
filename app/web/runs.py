"""Runs pages."""

from flask import Blueprint, render_template

bp = Blueprint("runs", __name__, url_prefix="/runs")


@bp.get("/")
def index():
    return render_template("placeholder.html", title="Runs")
