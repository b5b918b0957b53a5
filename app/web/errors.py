"""Error pages: a styled page for people, JSON under /api/ and plain text for Twilio's webhooks."""

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

MACHINE_PREFIXES = ("/api/", "/webhooks/")
TITLES = {
    400: "The request was not understood",
    403: "You may not do that",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too large",
    500: "Something went wrong",
}


def _page(code: int, description: str):
    if request.path.startswith("/api/"):
        return jsonify(error=description), code
    if request.path.startswith(MACHINE_PREFIXES):
        return description, code, {"Content-Type": "text/plain; charset=utf-8"}
    title = TITLES.get(code, "Error")
    return render_template("errors/error.html", code=code, title=title, description=description), code


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        return _page(error.code, error.description or "")

    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError):
        original = getattr(error, "original_exception", None)
        if original is not None:
            current_app.logger.error("unhandled error on %s", request.path, exc_info=original)
        return _page(500, "The server hit an error it did not expect. It is logged; try again in a moment.")
