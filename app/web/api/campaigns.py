"""JSON API: campaigns (send, upload, history, read, delete), on the shared campaign service."""

from pathlib import Path

from flask import abort, g, jsonify, request

from app.campaigns import inputs, schedule, service
from app.campaigns.inputs import CampaignError
from app.extensions import db
from app.web.api import bp

HISTORY_LIMIT_MAX = 1000
IDEMPOTENCY_KEY_MAX = 120


def _idempotency_key() -> str | None:
    """The client's `Idempotency-Key` header, scoped to its user; CampaignError when unusable."""
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise CampaignError("Idempotency-Key", f"the header must be at most {IDEMPOTENCY_KEY_MAX} characters")
    return f"{g.api_user.id}:{key}"


def _bad_input(error: CampaignError):
    answer = {"error": f"{error.field}: {error.message}", "field": error.field}
    if error.rejected:
        answer["rejected"] = service.rejected_summary(error.rejected)
    return jsonify(answer), 400


def _accepted(campaign):
    return jsonify(
        success=True,
        campaignId=campaign.id,
        total=campaign.total,
        status="queued" if campaign.status in ("queued", "sending") else campaign.status,
        rejected=service.rejected_summary(campaign.rejected),
    ), 202


def _campaign_or_404(campaign_id: int):
    campaign = service.get_campaign(campaign_id)
    if campaign is None:
        abort(404, description=f"no campaign {campaign_id}")
    return campaign


@bp.post("/campaign/send")
def send_campaign():
    """`{"messages": [{"to", "body", "channel", "vars"?}]}` or `{"name"?, "body", "channel"?, "rows": [...]}`."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify(error="the request body must be a JSON object with messages or rows"), 400
    try:
        idempotency_key = _idempotency_key()
        if "messages" in payload:
            channel = inputs.check_channel(payload.get("channel"))
            recipients, rejected = inputs.recipients_from_messages(payload["messages"], channel)
            bodies = {recipient.body for recipient in recipients}
            channels = {recipient.channel for recipient in recipients}
            body = bodies.pop() if len(bodies) == 1 else ""
            channel = channels.pop() if len(channels) == 1 else channel
            columns = ["to", "body", "channel", "vars"]
        elif "rows" in payload:
            body = inputs.check_body(payload.get("body"))
            channel = inputs.check_channel(payload.get("channel"))
            recipients, rejected, columns = inputs.recipients_from_rows(payload["rows"])
        else:
            raise CampaignError("messages", "give either messages (one body each) or body and rows")
        if not recipients:
            items = "messages" if "messages" in payload else "rows"
            raise CampaignError(items, f"no {items[:-1]} has a usable phone number", rejected=rejected)
        name = inputs.check_name(payload.get("name"), inputs.default_name("API"))
        start_at, send_window = schedule.read_schedule(payload.get("start_at"), payload.get("send_window"))
        campaign = service.create_and_send(
            start_at=start_at,
            send_window=send_window,
            name=name,
            body=body,
            channel=channel,
            recipients=recipients,
            rejected=rejected,
            columns=columns,
            user_id=g.api_user.id,
            idempotency_key=idempotency_key,
        )
    except CampaignError as error:
        return _bad_input(error)
    return _accepted(campaign)


@bp.post("/campaign/upload")
def upload_campaign():
    """Multipart `file` (CSV), `body`, optional `name`, `channel`, `phone_column`."""
    file = request.files.get("file")
    try:
        idempotency_key = _idempotency_key()
        body = inputs.check_body(request.form.get("body"))
        channel = inputs.check_channel(request.form.get("channel"))
        if file is None or not file.filename:
            raise CampaignError("file", "no file was uploaded: send the CSV as the multipart field 'file'")
        source = Path(file.filename).stem
        name = inputs.check_name(request.form.get("name"), inputs.default_name(source))
        result = inputs.read_csv(file.read(), request.form.get("phone_column"))
        recipients, rejected = inputs.recipients_from_csv(result)
        start_at, send_window = schedule.read_schedule(
            request.form.get("start_at"), schedule.window_from_text(request.form.get("send_window"))
        )
        campaign = service.create_and_send(
            start_at=start_at,
            send_window=send_window,
            name=name,
            body=body,
            channel=channel,
            recipients=recipients,
            rejected=rejected,
            columns=result.columns,
            user_id=g.api_user.id,
            key_name="line",
            idempotency_key=idempotency_key,
        )
    except CampaignError as error:
        return _bad_input(error)
    return _accepted(campaign)


@bp.get("/campaign/history")
def campaign_history():
    """Campaigns newest first with their counts; `limit` (default 100) and `offset` page through them."""
    limit = request.args.get("limit", 100, type=int)
    offset = request.args.get("offset", 0, type=int)
    if not 1 <= limit <= HISTORY_LIMIT_MAX or offset < 0:
        return jsonify(error=f"limit must be 1-{HISTORY_LIMIT_MAX} and offset 0 or more", field="limit"), 400
    campaigns = db.session.scalars(service.visible_campaigns().limit(limit).offset(offset)).all()
    counts = service.counts_of(campaigns)
    return jsonify([service.as_json(campaign, counts[campaign.id]) for campaign in campaigns])


@bp.get("/campaign/<int:campaign_id>")
def campaign_detail(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    return jsonify(service.as_json(campaign, service.counts(campaign), detail=True))


@bp.delete("/campaign/<int:campaign_id>")
def campaign_delete(campaign_id: int):
    """Stop the campaign's queued messages and delete it (its message log is kept)."""
    campaign = _campaign_or_404(campaign_id)
    service.delete_campaign(campaign)
    return jsonify(success=True, campaignId=campaign_id, status="deleted")
