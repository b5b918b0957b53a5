"""Outbox pages."""

from flask import Blueprint, render_template

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.get("/")
def index():
    return render_template("placeholder.html", title="Outbox")
