"""Campaign pages: upload a CSV, preview the messages, send, watch them go, delete.

Upload -> a draft campaign holding the parsed rows -> preview (the template
re-renders live) -> send (messages queued in bulk) -> detail page, which polls
its progress fragment every second until nothing is left to send.
"""

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.campaigns import inputs, service
from app.campaigns import schedule as campaign_schedule
from app.campaigns.inputs import CampaignError
from app.campaigns.preflight import campaign_preflight
from app.engine.windows import DAYS
from app.extensions import db
from app.models import Message
from app.runs.schedule import starts_in
from app.sending.channels import CHANNELS
from app.web import htmx
from app.web.message_log import STATUSES, log_page, wants_log_fragment

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

HISTORY_PAGE_SIZE = 25
REJECTED_SHOWN = 100


@bp.errorhandler(413)
def too_large(_error):
    """A clear page for an upload over MAX_CONTENT_LENGTH (htmx: the column field says it instead)."""
    limit = f"{current_app.config['MAX_CONTENT_LENGTH'] / (1024 * 1024):g} MB"
    if htmx.wants_fragment():
        return render_template(
            "campaigns/_partials/phone_column.html",
            columns=[],
            found=None,
            selected="",
            column_error=f"the file is larger than {limit}, the most this server accepts",
        )
    return render_template("campaigns/too_large.html", limit=limit), 413


def _campaign_or_404(campaign_id: int):
    campaign = service.get_campaign(campaign_id)
    if campaign is None:
        abort(404)
    return campaign


@bp.get("/")
def index():
    page = db.paginate(service.visible_campaigns(), per_page=HISTORY_PAGE_SIZE, error_out=False)
    counts = service.counts_of(page.items)
    rows = [(campaign, counts[campaign.id]) for campaign in page.items]
    return render_template("campaigns/index.html", page=page, rows=rows)


@bp.get("/new")
def new():
    return render_template(
        "campaigns/new.html", form={"channel": "sms"}, errors={}, columns=[], rejected=[], channels=sorted(CHANNELS)
    )


@bp.post("/new")
def upload():
    """Parse the upload and store it as a draft; bad input shows the form again, naming the field."""
    form = {key: request.form.get(key, "") for key in ("name", "body", "channel", "phone_column")}
    file = request.files.get("file")
    errors, columns, rejected, result = {}, [], [], None
    body = _checked(errors, inputs.check_body, form["body"])
    channel = _checked(errors, inputs.check_channel, form["channel"])
    source = Path(file.filename).stem if file is not None and file.filename else None
    name = _checked(errors, inputs.check_name, form["name"], inputs.default_name(source))
    if source is None:
        errors["file"] = "no file was uploaded: choose a CSV file"
    else:
        try:
            result = inputs.read_csv(file.read(), form["phone_column"])
            columns = result.columns
        except CampaignError as error:
            errors[error.field] = error.message
            columns, rejected = error.columns, error.rejected
    if errors:
        return render_template(
            "campaigns/new.html",
            form=form,
            errors=errors,
            columns=columns,
            rejected=rejected[:REJECTED_SHOWN],
            channels=sorted(CHANNELS),
        ), 400
    campaign = service.create_draft(name=name, body=body, channel=channel, upload=result, user_id=current_user.id)
    return redirect(url_for("campaigns.preview", campaign_id=campaign.id))


def _checked(errors: dict, check, *args):
    """Run one field check; on failure record its message under the field's name and return None."""
    try:
        return check(*args)
    except CampaignError as error:
        errors[error.field] = error.message
        return None


@bp.post("/columns")
def columns():
    """htmx: the chosen file's header, to fill the phone-column select before submitting."""
    file = request.files.get("file")
    columns, found, error = [], None, None
    if file is not None and file.filename:
        try:
            result = inputs.read_csv(file.read())
            columns, found = result.columns, result.phone_column
        except CampaignError as failure:
            columns, error = failure.columns, failure.message
    return render_template(
        "campaigns/_partials/phone_column.html", columns=columns, found=found, selected="", column_error=error
    )


@bp.get("/<int:campaign_id>/preview")
def preview(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    if campaign.status != "draft":
        return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return _preview_page(
        campaign, {"name": campaign.name, "body": campaign.body, "channel": campaign.channel, "window_days": []}
    )


def _preview_page(campaign, form: dict, errors: dict | None = None):
    """The preview page of a draft for the name, template and channel in `form`."""
    channel = form["channel"] if form["channel"] in CHANNELS else campaign.channel
    recipients = service.draft_recipients(campaign)
    preview = service.preview(recipients, form["body"], channel, campaign.columns)
    errors = dict(errors or {})
    start_at, send_window = campaign_schedule.schedule_from_form(form, errors)
    return render_template(
        "campaigns/preview.html",
        preflight=campaign_preflight(campaign, recipients, form["body"], channel, start_at, send_window),
        start_at=start_at,
        days=DAYS,
        campaign=campaign,
        channels=sorted(CHANNELS),
        form=form,
        errors=errors or {},
        channel=channel,
        phone_column=campaign.draft.get("phone_column"),
        rejected_shown=REJECTED_SHOWN,
        preview=preview,
    ), 400 if errors else 200


@bp.post("/<int:campaign_id>/preview")
def rerender(campaign_id: int):
    """htmx: the preview fragment for the template being typed (the rows come from the draft)."""
    campaign = _campaign_or_404(campaign_id)
    if campaign.status != "draft":
        return htmx.redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    channel = request.form.get("channel") if request.form.get("channel") in CHANNELS else campaign.channel
    recipients = service.draft_recipients(campaign)
    form, errors = campaign_schedule.form_values(request.form), {}
    start_at, send_window = campaign_schedule.schedule_from_form(form, errors)
    preview_html = render_template(
        "campaigns/_partials/preview.html",
        campaign=campaign,
        channel=channel,
        preview=service.preview(recipients, request.form.get("body", ""), channel, campaign.columns),
    )
    preflight = campaign_preflight(campaign, recipients, form["body"], channel, start_at, send_window)
    return preview_html + render_template(  # the pre-flight follows the template, channel and schedule too
        "campaigns/_partials/preflight.html",
        oob=True,
        campaign=campaign,
        preflight=preflight,
        start_at=start_at,
        errors=errors,
    )


@bp.post("/<int:campaign_id>/send")
def send(campaign_id: int):
    """Queue the draft's messages and go to the detail page at once; the workers do the sending."""
    campaign = _campaign_or_404(campaign_id)
    if campaign.status != "draft":
        flash("This campaign was already sent.", "info")
        return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    form = campaign_schedule.form_values(request.form)
    schedule_errors: dict = {}
    start_at, send_window = campaign_schedule.schedule_from_form(form, schedule_errors)
    if schedule_errors:
        return _preview_page(campaign, form, schedule_errors)
    recipients = service.draft_recipients(campaign)
    channel = form["channel"] if form["channel"] in CHANNELS else campaign.channel
    blockers = campaign_preflight(campaign, recipients, form["body"], channel, start_at, send_window)["blockers"]
    if blockers:
        return _preview_page(campaign, form, {"preflight": "The pre-flight found blockers: " + "; ".join(blockers)})
    try:
        body, channel = inputs.check_body(form["body"]), inputs.check_channel(form["channel"])
        name = inputs.check_name(form["name"], campaign.name)
        queued = service.send_draft(
            campaign, name=name, body=body, channel=channel, start_at=start_at, send_window=send_window
        )
    except CampaignError as error:
        if error.field == "campaign":
            return redirect(url_for("campaigns.detail", campaign_id=campaign_id))
        return _preview_page(_campaign_or_404(campaign_id), form, {error.field: error.message})
    if start_at:
        flash(f"{queued} messages scheduled: the campaign starts in {starts_in(start_at)}.", "success")
    else:
        flash(f"{queued} messages queued.", "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


@bp.get("/<int:campaign_id>")
def detail(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    if campaign.status == "draft":
        return redirect(url_for("campaigns.preview", campaign_id=campaign.id))
    log = log_page(
        "campaigns.detail", {"campaign_id": campaign.id}, Message.campaign_id == campaign.id, searchable=False
    )
    log_context = {"log": log, "statuses": STATUSES, "show_source": False, "refresh_event": "campaign-progress"}
    if wants_log_fragment():
        return render_template("outbox/_partials/messages.html", **log_context)
    counts = service.counts(campaign)
    return render_template(
        "campaigns/detail.html",
        campaign=campaign,
        counts=counts,
        finished=service.is_finished(campaign, counts),
        rejected_shown=REJECTED_SHOWN,
        starts_in=starts_in,
        **log_context,
    )


@bp.route("/<int:campaign_id>/start-now", methods=["GET", "POST"])
def start_now(campaign_id: int):
    """GET asks for confirmation; POST sends a scheduled campaign now (its window, if any, still holds)."""
    campaign = _campaign_or_404(campaign_id)
    if campaign.status != "scheduled":
        flash(f"This campaign is not scheduled: it is {campaign.status}.", "info")
        return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    if request.method == "GET":
        return render_template("campaigns/start_now.html", campaign=campaign, starts_in=starts_in(campaign.start_at))
    campaign_schedule.start_now(campaign)
    flash("The campaign starts now.", "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))


@bp.get("/<int:campaign_id>/_progress")
def progress(campaign_id: int):
    """htmx, every second: counts and progress; rendered without the poll trigger once finished."""
    campaign = _campaign_or_404(campaign_id)
    counts = service.counts(campaign)
    html = render_template(
        "campaigns/_partials/progress.html",
        campaign=campaign,
        counts=counts,
        finished=service.is_finished(campaign, counts),
    )
    return htmx.trigger(html, "campaign-progress")


@bp.get("/<int:campaign_id>/rejected.csv")
def rejected_csv(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    filename = f"campaign-{campaign.id}-rejected.csv"
    return Response(
        service.rejected_csv(campaign),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/<int:campaign_id>/delete", methods=["GET", "POST"])
def delete(campaign_id: int):
    """GET asks for confirmation; POST stops the queued messages and deletes."""
    campaign = _campaign_or_404(campaign_id)
    if request.method == "GET":
        return render_template("campaigns/delete.html", campaign=campaign, counts=service.counts(campaign))
    name = campaign.name
    service.delete_campaign(campaign)
    flash(f"Campaign “{name}” deleted; its queued messages will not be sent.", "info")
    return redirect(url_for("campaigns.index"))
