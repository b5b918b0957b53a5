"""HTMX the same way in every blueprint: page or fragment, redirects, refusals shown in a target.

Built on htmx-flask (`request.htmx`, `make_response`), never on `HX-*` headers read by hand.
A history-restore request (the browser went back and htmx's cache missed) wants the whole
page, so it is answered as a page even though it carries `HX-Request`.
"""

from __future__ import annotations

from flask import Response, render_template
from flask import redirect as flask_redirect
from htmx_flask import make_response, request


def wants_fragment(target: str | None = None) -> bool:
    """An HTMX request that swaps part of a page (into `target`, when given), not a history restore."""
    htmx = request.htmx
    if not htmx or htmx.history_restore_request:
        return False
    return target is None or htmx.target == target


def page_or_fragment(page: str, fragment: str, target: str | None = None, **context) -> str:
    """The whole page for a browser, the fragment for an HTMX swap (into `target`, when given)."""
    return render_template(fragment if wants_fragment(target) else page, **context)


def redirect(url: str, htmx_status: int = 204) -> Response:
    """HTMX follows `HX-Redirect` (a full page load); a plain form post gets a 303.

    `htmx_status` 401 tells a swap that its session ended (HTMX still follows the redirect to the login).
    """
    if request.htmx:
        return make_response("", htmx_status, redirect=url)
    return flask_redirect(url, 303)


def refuse(body: str, status: int, target: str) -> Response:
    """A refusal whose message HTMX shows in `target` (the element the form aimed at stays as it is)."""
    return make_response(body, status, retarget=target, reswap="innerHTML")


def trigger(body: str, event: str, status: int = 200) -> Response:
    """A fragment that also fires `event` on the page (other parts listen and refresh)."""
    return make_response(body, status, trigger=event)
