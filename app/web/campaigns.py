"""Campaigns pages."""

from flask import Blueprint, render_template

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")


@bp.get("/")
def index():
    return render_template("placeholder.html", title="Campaigns")
