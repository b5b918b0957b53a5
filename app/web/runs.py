"""Runs pages: start a run, list runs, and the live run page (where every contact is, what went wrong, act).

The run page is one page plus fragments it includes (`templates/runs/_partials/`): the live block
(polled every second while the run is active: counts, diagram with per-node and per-edge numbers,
messages, failures, overdue contacts, unmatched replies), the contacts table (filters and keyset
pagination) and a contact's timeline. Numbers come from `app.runs.read_models.live`, which reads grouped
counts and a per-run tally, never the participations themselves, so an open page costs little.
"""

import hashlib

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.journeys import store as journeys
from app.journeys.diagram import render_svg
from app.journeys.versions import journey_for_version
from app.models import LIVE_RUN_STATUSES, SCHEDULED, STATES, Audience, Participation, Run, User, utcnow
from app.runs import lifecycle, operator_replies, preflight, runner, schedule
from app.runs import prune as run_prune
from app.runs.export import export_csv
from app.runs.read_models import contacts as run_contacts
from app.runs.read_models import live as run_live
from app.runs.read_models.positions import live_run_states, state_counts
from app.runs.read_models.tally import NO_CODE
from app.sending.channels import explain_error
from app.web import htmx

bp = Blueprint("runs", __name__, url_prefix="/runs")

RUNS_PER_PAGE = 25


@bp.get("/")
def index():
    page = max(1, request.args.get("page", 1, type=int))
    runs = db.session.scalars(
        select(Run).order_by(Run.id.desc()).offset((page - 1) * RUNS_PER_PAGE).limit(RUNS_PER_PAGE + 1)
    ).all()
    has_next, runs = len(runs) > RUNS_PER_PAGE, runs[:RUNS_PER_PAGE]
    return render_template("runs/index.html", runs=runs, progress=live_run_states(runs), page=page, has_next=has_next)


# -- starting a run ------------------------------------------------------------------


@bp.get("/new")
def new():
    return render_template("runs/new.html", **_start_context(request.args))


@bp.get("/new/_partials/summary")
def start_summary():
    """htmx: what starting this journey for this audience will do, as the operator picks them."""
    return render_template("runs/_partials/start_summary.html", **_start_context(request.args))


@bp.post("/")
def start():
    context = _start_context(request.form)
    journey, audience = context["journey"], context["audience"]
    errors = {}
    if journey is None:
        errors["journey_id"] = "Choose a journey to run."
    if audience is None:
        errors["audience_id"] = "Choose an audience to run it for."
    elif not audience.total:
        errors["audience_id"] = f"Audience “{audience.name}” has no contacts."
    start_at = context["start_at"]
    if context["start_at_error"]:
        errors["start_at"] = context["start_at_error"]
    elif context["preflight"] and context["preflight"]["blockers"] and not errors and not context["problems"]:
        errors["preflight"] = "The pre-flight found blockers: fix them before starting."
    if not errors:
        try:
            run = lifecycle.start_run(journey, audience_id=audience.id, user=current_user, start_at=start_at)
        except journeys.InvalidJourney as error:
            errors["journey_id"] = f"The journey cannot run: {error}. Fix it in the designer first."
        except LookupError as error:
            errors["audience_id"] = str(error)
        else:
            if start_at:
                flash(f"Run scheduled: it starts in {schedule.starts_in(start_at)}.", "success")
            else:
                flash(f"Run started: {audience.total:,} contacts are being added.", "success")
            return redirect(url_for(".show", run_id=run.id))
    context["errors"] = errors
    return render_template("runs/new.html", **context), 400


def _start_context(values) -> dict:
    journey = journeys.get(values.get("journey_id")) if values.get("journey_id") else None
    audience_id = values.get("audience_id", type=int)
    audience = db.session.get(Audience, audience_id) if audience_id else None
    every_journey = journeys.all_journeys()
    context = {
        "journeys": every_journey,
        "journey_statuses": {item.id: journeys.status_of(item) for item in every_journey},
        "audiences": db.session.scalars(
            select(Audience).order_by(Audience.created_at.desc(), Audience.id.desc())
        ).all(),
        "journey": journey,
        "audience": audience,
        "errors": {},
        "status": None,
        "problems": [],
        "next_version": None,
        "start_at_local": values.get("start_at_local") or "",
        "tz_offset": values.get("tz_offset") or "",
        "start_at": None,
        "start_at_error": None,
        "preflight": None,
    }
    if journey is not None:
        status = journeys.status_of(journey)
        context["status"] = status
        context["problems"] = journeys.problems_of(journey.draft)
        context["next_version"] = (status.version or 0) + (0 if status.status == "published" else 1)
    try:
        context["start_at"] = schedule.start_at_from_form(context["start_at_local"], context["tz_offset"])
    except schedule.StartAtError as error:
        context["start_at_error"] = str(error)
    if journey is not None and audience is not None:
        context["preflight"] = preflight.run_preflight(journey, audience_id=audience.id, start_at=context["start_at"])
    return context


# -- the run page --------------------------------------------------------------------


def _run_or_404(run_id: int) -> Run:
    return db.get_or_404(Run, run_id)


@bp.get("/<int:run_id>")
def show(run_id: int):
    run = _run_or_404(run_id)
    filters = _filters()
    created_by = db.session.get(User, run.created_by_id) if run.created_by_id else None
    live_context = _live_context(run)
    # A moving run's tally may trail its rows by a moment: count the rows then, so the page agrees with itself.
    known_total = None if live_context["live"] else sum(live_context["stats"].states.values())
    return render_template(
        "runs/show.html",
        run=run,
        created_by=created_by,
        filters=filters,
        nodes=_node_ids(run),
        contacts=_contacts_page(run, filters, total=known_total),
        cursor=_cursor(),
        **live_context,
    )


def _cursor() -> dict:
    return {key: request.args[key] for key in ("after", "before") if request.args.get(key, "").isdecimal()}


@bp.get("/<int:run_id>/_partials/live")
def live(run_id: int):
    """htmx, every second while the run moves: the live block, rendered without its trigger once finished."""
    run = _run_or_404(run_id)
    context = _live_context(run)
    response = Response(render_template("runs/_partials/live.html", run=run, **context))
    if request.args.get("seen") != context["signature"]:
        response.headers["HX-Trigger"] = "run-changed"  # the contacts table refreshes with the counters
    return response


def _live_context(run: Run) -> dict:
    now = utcnow()
    stats = run_live.live_stats(run, now)
    definition = run.version.definition
    diagram = render_svg(
        definition,
        node_counts=stats.nodes,
        edge_counts=stats.edges,
        link_template=url_for(".contacts", run_id=run.id) + "?node={id}",
    )
    waiting_for_window, window_opens = schedule.window_waits(run.id)
    return {
        "waiting_for_window": waiting_for_window,
        "window_opens": window_opens,
        "starts_in": schedule.starts_in(run.start_at, now) if run.status == SCHEDULED else None,
        "stats": stats,
        "signature": _signature(run, stats),
        "diagram": diagram,
        "now": now,
        "live": run.status in LIVE_RUN_STATUSES,
        "errors": [(code, number, explain_error(None if code == NO_CODE else code)) for code, number in stats.errors],
        "failure_reasons": run_live.remembered(
            run, "failure-reasons", stats.states["failed"], lambda: run_live.failure_reasons(run.id)
        ),
        "unmatched": run_live.remembered(run, "unmatched", stats.unmatched, lambda: run_live.unmatched_replies(run.id)),
        "elapsed": ((run.finished_at or now) - run.created_at).total_seconds(),
    }


def _signature(run: Run, stats: run_live.LiveStats) -> str:
    """A short fingerprint of where the contacts are: it changes whenever the contacts table would."""
    parts = [run.status, *map(str, stats.states.values())]
    parts += [
        f"{node}:{counts.get('here', 0)}:{counts.get('visits', 0)}" for node, counts in sorted(stats.nodes.items())
    ]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


@bp.get("/<int:run_id>/contacts")
def contacts(run_id: int):
    """htmx: the contacts table with its filters and page; a plain request opens the run page on it."""
    run = _run_or_404(run_id)
    filters = _filters()
    if not htmx.wants_fragment():
        return redirect(url_for(".show", run_id=run.id, **filters.as_args(), **_cursor()) + "#contacts")
    template = "contacts_results" if request.args.get("part") == "results" else "contacts"
    return render_template(
        f"runs/_partials/{template}.html",
        run=run,
        filters=filters,
        nodes=_node_ids(run),
        contacts=_contacts_page(run, filters),
        cursor=_cursor(),
        now=utcnow(),
    )


def _contacts_page(
    run: Run, filters: run_contacts.ContactFilter, total: int | None = None
) -> run_contacts.ContactsPage:
    return run_contacts.contacts_table(
        run,
        filters,
        after=request.args.get("after", type=int),
        before=request.args.get("before", type=int),
        total=total,
    )


def _filters() -> run_contacts.ContactFilter:
    args = request.args
    state = args.get("state") or None
    return run_contacts.ContactFilter(
        state=state if state in STATES else None,
        node=args.get("node") or None,
        search=(args.get("q") or "").strip()[:100] or None,
        error=args.get("error") or None,
        overdue=args.get("overdue") == "1",
    )


def _node_ids(run: Run) -> list[str]:
    return [node.id for node in journey_for_version(run.version_id).nodes]


def _participation_or_404(run: Run, participation_id: int) -> Participation:
    participation = db.session.get(Participation, participation_id)
    if participation is None or participation.run_id != run.id:
        abort(404)
    return participation


def _timeline_context(run: Run, participation: Participation, **extra) -> dict:
    return {
        "run": run,
        "participation": participation,
        "now": utcnow(),
        "entries": run_contacts.contact_timeline(participation),
        "limit": run_contacts.TIMELINE_LIMIT,
        "entered_by": operator_replies.operator_replies(participation.id),
        "reply_choices": operator_replies.reply_choices(participation),
        **extra,
    }


@bp.get("/<int:run_id>/contacts/<int:participation_id>")
def timeline(run_id: int, participation_id: int):
    """A contact's timeline: a panel of the run page (htmx) or a page of its own."""
    run = _run_or_404(run_id)
    context = _timeline_context(run, _participation_or_404(run, participation_id))
    return htmx.page_or_fragment("runs/contact.html", "runs/_partials/timeline.html", **context)


@bp.app_template_global()
def may_reply_as_contact() -> bool:
    """Editors reply as a contact in a dry run; with real Twilio only admins (testing on a colleague's phone).

    Viewers never: a reply moves the contact on.
    """
    if not current_user.is_authenticated or not current_user.can("editor"):
        return False
    return bool(current_app.config.get("DRY_RUN")) or current_user.can("admin")


@bp.post("/<int:run_id>/contacts/<int:participation_id>/reply")
def reply_as_contact(run_id: int, participation_id: int):
    """An operator answers for a waiting contact: stored and routed exactly as a reply from Twilio."""
    run = _run_or_404(run_id)
    participation = _participation_or_404(run, participation_id)
    if not may_reply_as_contact():
        abort(403, "Only admins may reply as a contact while messages really go out through Twilio.")
    form = request.form
    payload = (form.get("quick_payload") or "").strip() or None
    text = payload if payload is not None else (form.get("quick_text") or form.get("text") or "").strip()[:1600]
    if not text:
        notice = ("error", "Type a reply, or choose one of the buttons.")
    else:
        row = operator_replies.reply_as_contact(participation, text, payload, current_user.id)
        db.session.refresh(participation)
        notice = ("success" if row.outcome == "matched" else "info", _reply_outcome(row.outcome, text, participation))
    if not htmx.wants_fragment():
        flash(notice[1], notice[0])
        target = form.get("next", "")
        if not (target.startswith("/") and not target.startswith("//")):
            target = url_for(".timeline", run_id=run.id, participation_id=participation.id)
        return redirect(target)
    context = _timeline_context(run, participation, reply_notice=notice)
    status = 422 if notice[0] == "error" else 200
    return render_template("runs/_partials/timeline.html", **context), status, {"HX-Trigger": "run-changed"}


def _reply_outcome(outcome: str, text: str, participation: Participation) -> str:
    where = participation.node_id or "the end"
    return {
        "matched": f"Replied “{text}” as the contact: it is now {participation.state.replace('_', ' ')} at {where}.",
        "unmatched": f"Replied “{text}” as the contact: it matched no edge, so the contact still waits at {where}.",
        "not_waiting": f"Replied “{text}” as the contact: it was not waiting, so the reply is recorded but not used.",
        "opted_out": "Replied STOP as the contact: it is opted out and its journeys end.",
        "opted_in": "Replied START as the contact: it may be messaged again.",
    }.get(outcome, f"Replied “{text}” as the contact ({outcome}).")


@bp.route("/<int:run_id>/stop", methods=["GET", "POST"])
def stop(run_id: int):
    """GET asks for confirmation; POST stops every contact not yet finished and cancels queued messages."""
    run = _run_or_404(run_id)
    if run.status not in (SCHEDULED, *LIVE_RUN_STATUSES):
        flash(f"This run is already {run.status}.", "info")
        return redirect(url_for(".show", run_id=run.id))
    if request.method == "GET":
        return render_template("runs/stop.html", run=run, states=state_counts(run.id))
    stopped = lifecycle.stop_run(run)
    flash(f"Run stopped: {stopped:,} contacts were stopped; their queued messages will not be sent.", "success")
    return redirect(url_for(".show", run_id=run.id))


@bp.route("/<int:run_id>/start-now", methods=["GET", "POST"])
def start_now(run_id: int):
    """GET asks for confirmation; POST starts a scheduled run at once (the sweeper fires it within a second)."""
    run = _run_or_404(run_id)
    if run.status != SCHEDULED:
        flash(f"This run is not scheduled: it is {run.status}.", "info")
        return redirect(url_for(".show", run_id=run.id))
    if request.method == "GET":
        return render_template("runs/start_now.html", run=run, starts_in=schedule.starts_in(run.start_at))
    schedule.start_now(run)
    flash("The run starts now: its contacts are being added.", "success")
    return redirect(url_for(".show", run_id=run.id))


@bp.route("/<int:run_id>/prune", methods=["GET", "POST"])
def prune(run_id: int):
    """GET asks for confirmation; POST has a worker archive the finished run's results and delete its history."""
    run = _run_or_404(run_id)
    if run.status in LIVE_RUN_STATUSES or run.pruned_at is not None:
        flash(f"Run {run.id} is {'already pruned' if run.pruned_at else run.status}: nothing to prune.", "info")
        return redirect(url_for(".show", run_id=run.id))
    if request.method == "GET":
        return render_template("runs/prune.html", run=run, archive_dir=run_prune.archive_dir())
    runner.enqueue_prune(run.id)
    flash("Pruning started: the results are archived to a CSV file, then the history is deleted.", "success")
    return redirect(url_for(".show", run_id=run.id))


@bp.get("/<int:run_id>/export.csv")
def export(run_id: int):
    """Every contact's state, node, variables and replies, streamed page by page."""
    run = _run_or_404(run_id)
    filename = f"run-{run.id}-results-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(export_csv(run)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
