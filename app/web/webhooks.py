"""Twilio webhooks: inbound messages and status callbacks, signed by Twilio."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")
