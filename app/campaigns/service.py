"""Bulk campaigns: one templated message to every row of a CSV or of an API call.

The pages and the JSON API share this service, so both read CSV with the one
importer, validate the same way and queue messages the same way: one Campaign
row, its Message rows in ONE bulk insert, then `messaging.enqueue_messages`.
The upload form first stores a *draft* (the parsed rows kept on the campaign)
so the preview and the send never trust data sent back by the browser.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.campaigns.counts import campaigns_counts
from app.campaigns.inputs import CampaignError, Recipient, recipients_from_csv, rejected_entry
from app.contacts.csv_import import (
    ImportResult,
    RejectedRow,
    rejected_rows_csv,
)
from app.engine.placeholders import (
    PLACEHOLDER_RE,
    SmsInfo,
    placeholders,
    render,
    sms_info,
    spellings,
    template_problems,
)
from app.extensions import db
from app.models import Campaign, Message, bulk, utcnow
from app.models.vocabulary import iso_z
from app.sending import log, messaging

logger = logging.getLogger("app.sending.campaigns")

PREVIEW_ROWS = 5
# The preview's figures (segments, blank values) come from at most this many rows, so typing stays fast.
PREVIEW_SCAN_ROWS = 10_000
TWILIO_BODY_MAX = 1600


@dataclass(slots=True)
class PreviewRow:
    line: int
    phone: str
    parts: list[tuple[str, str | None]]  # (text, missing placeholder path or None), for highlighting
    info: SmsInfo


@dataclass
class Preview:
    """What the operator checks before sending: sample messages and the problems of the template."""

    rows: list[PreviewRow]
    total: int
    scanned: int
    problems: list[str]
    unfilled: list[str]  # placeholders that no column fills and that have no default
    defaulted: list[str]  # placeholders that no column fills but that have a default
    blank_counts: dict[str, int] = field(default_factory=dict)  # path -> rows where its value is blank
    empty_messages: int = 0
    too_long: int = 0
    ucs2_messages: int = 0
    max_segments: int = 0
    total_segments: int = 0
    spellings: tuple[str, ...] = ()  # placeholder spellings read (`<<name>>`, the predecessor's `{{name}}`)


# -- validation ---------------------------------------------------------------


# -- reading input ------------------------------------------------------------


# -- drafts and preview -------------------------------------------------------


def create_draft(*, name: str, body: str, channel: str, upload: ImportResult, user_id: int | None) -> Campaign:
    """Store the parsed upload as a draft campaign, to preview and then send without uploading again."""
    recipients, rejected = recipients_from_csv(upload)
    campaign = Campaign(
        name=name,
        body=body,
        channel=channel,
        status="draft",
        total=len(recipients),
        columns=upload.columns,
        rejected=rejected,
        created_by_id=user_id,
        dry_run=current_app.config["DRY_RUN"],
        draft={"phone_column": upload.phone_column, "rows": [[r.key, r.phone, r.fields] for r in recipients]},
    )
    db.session.add(campaign)
    db.session.commit()
    return campaign


def draft_recipients(campaign: Campaign) -> list[Recipient]:
    return [Recipient(line, phone, fields) for line, phone, fields in (campaign.draft or {}).get("rows", [])]


def preview(recipients: list[Recipient], body: str, channel: str, columns: list[str]) -> Preview:
    """Render the first rows and scan up to PREVIEW_SCAN_ROWS rows for blanks, length and segments."""
    problems = template_problems(body) if body.strip() else ["the message template is empty"]
    known = {name.casefold() for name in columns} | {"phone"}
    if recipients:
        known |= {str(key).casefold() for key in recipients[0].fields}
    unfilled, defaulted = {}, {}
    for placeholder in placeholders(body):
        if placeholder.path.split(".")[0].strip().casefold() not in known:
            (unfilled if placeholder.default is None else defaulted).setdefault(placeholder.path, None)
    result = Preview(
        rows=[],
        total=len(recipients),
        scanned=min(len(recipients), PREVIEW_SCAN_ROWS),
        problems=problems,
        unfilled=list(unfilled),
        defaulted=list(defaulted),
        spellings=spellings(body),
    )
    for position, recipient in enumerate(recipients[:PREVIEW_SCAN_ROWS]):
        rendered = render(body, recipient.fields)
        info = _message_info(rendered.text, channel)
        for path in rendered.missing:
            if path not in unfilled:
                result.blank_counts[path] = result.blank_counts.get(path, 0) + 1
        result.empty_messages += not rendered.text.strip()
        result.too_long += info.characters > TWILIO_BODY_MAX
        result.ucs2_messages += info.encoding == "UCS-2"
        result.max_segments = max(result.max_segments, info.segments)
        result.total_segments += info.segments
        if position < PREVIEW_ROWS:
            result.rows.append(PreviewRow(recipient.key, recipient.phone, highlight(body, recipient.fields), info))
    return result


def _message_info(text: str, channel: str) -> SmsInfo:
    """SMS encoding and segments; a WhatsApp message is one message whatever its length."""
    info = sms_info(text)
    return info if channel == "sms" else SmsInfo(info.encoding, len(text), 1 if text else 0)


def highlight(template: str, variables: dict) -> list[tuple[str, str | None]]:
    """The rendered message as pieces; a placeholder without value is kept as (its text, its path)."""
    parts: list[tuple[str, str | None]] = []
    position = 0
    for match in PLACEHOLDER_RE.finditer(template):
        parts.append((template[position : match.start()], None))
        rendered = render(match.group(0), variables)
        missing = rendered.missing[0] if rendered.missing else None
        parts.append((match.group(0), missing) if missing else (rendered.text, None))
        position = match.end()
    parts.append((template[position:], None))
    return [part for part in parts if part[0]]


# -- sending ------------------------------------------------------------------


def send_draft(campaign: Campaign, *, name: str, body: str, channel: str, start_at=None, send_window=None) -> int:
    """Turn a draft into queued messages; returns how many. Sending a draft twice sends it once."""
    claimed = db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == "draft")
        .values(status="queued", name=name, body=body, channel=channel, dry_run=current_app.config["DRY_RUN"])
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise CampaignError("campaign", "this campaign was already sent")
    from app.campaigns.schedule import apply_schedule  # here: app.campaigns.schedule imports this module

    apply_schedule(campaign, start_at, send_window)
    return _queue(campaign, draft_recipients(campaign), "line")


def create_and_send(
    *,
    name: str,
    body: str,
    channel: str,
    recipients: list[Recipient],
    rejected: list[dict],
    columns: list[str],
    user_id: int | None,
    key_name: str = "index",
    idempotency_key: str | None = None,
    start_at=None,
    send_window: dict | None = None,
) -> Campaign:
    """Store a campaign and queue its messages at once (the JSON API); `key_name` is line (CSV) or index.

    With an `idempotency_key` (already scoped to its user), a second call with the same key returns the
    campaign the first one stored instead of making another.
    """
    if idempotency_key:
        existing = campaign_for_key(idempotency_key)
        if existing is not None:
            return existing
    campaign = Campaign(
        idempotency_key=idempotency_key,
        name=name,
        body=body,
        channel=channel,
        status="queued",
        columns=columns,
        rejected=rejected,
        created_by_id=user_id,
        dry_run=current_app.config["DRY_RUN"],
    )
    from app.campaigns.schedule import apply_schedule  # here: app.campaigns.schedule imports this module

    apply_schedule(campaign, start_at, send_window)
    db.session.add(campaign)
    try:
        db.session.flush()
    except IntegrityError:  # the same key at the same moment: the other request stored it
        db.session.rollback()
        existing = campaign_for_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
    _queue(campaign, recipients, key_name)
    return campaign


def campaign_for_key(idempotency_key: str) -> Campaign | None:
    """The campaign a client's earlier request with this `Idempotency-Key` stored, if any."""
    return db.session.scalar(select(Campaign).where(Campaign.idempotency_key == idempotency_key))


def _queue(campaign: Campaign, recipients: list[Recipient], key_name: str) -> int:
    """Render every body, insert every Message in one statement, commit, then enqueue the ids.

    A row whose message renders empty is not sent and joins the rejected rows
    with its reason: nothing is skipped silently.
    """
    from app.campaigns.schedule import hold_times  # here: app.campaigns.schedule imports this module

    now, dry_run = utcnow(), campaign.dry_run
    rows, rejected, kept = [], list(campaign.rejected or []), []
    for recipient in recipients:
        template = recipient.body if recipient.body is not None else campaign.body
        text = render(template, recipient.fields).text.strip()
        if not text:
            rejected.append(
                rejected_entry(key_name, recipient.key, "the message is empty for this row", recipient.fields)
            )
            continue
        rows.append(
            {
                "campaign_id": campaign.id,
                "to_phone": recipient.phone,
                "channel": recipient.channel or campaign.channel,
                "body": text,
                "status": "queued",
                "attempts": 0,
                "dry_run": dry_run,
                "created_at": now,
                "updated_at": now,
            }
        )
        kept.append((recipient.phone, recipient.fields))
    if not rows:
        db.session.rollback()
        raise CampaignError(
            "body", "the message is empty for every row: check the template's placeholders", rejected=rejected
        )
    for row, not_before in zip(rows, hold_times(campaign, kept, now), strict=True):
        row["not_before"] = not_before  # a schedule or send window: the sweeper enqueues it when due
    # A Core executemany: measured faster than the ORM bulk path and than RETURNING on PostgreSQL.
    db.session.execute(insert(Message.__table__), rows)
    campaign.total, campaign.rejected, campaign.draft = len(rows), rejected, None
    db.session.commit()
    bulk.refresh_statistics_after(len(rows), Message.__table__)
    ids = db.session.scalars(select(Message.id).where(Message.campaign_id == campaign.id).order_by(Message.id)).all()
    db.session.commit()
    if campaign.start_at is not None or campaign.send_window:
        return len(rows)  # held until their `not_before`: the sweeper enqueues them (runs.schedule.release_due)
    try:
        messaging.enqueue_messages(ids, bulk=True)
    except RedisError as error:
        # Stored is what counts: recovery enqueues queued messages that have no job once Redis is back.
        logger.warning(
            "campaign=%d stored with %d messages but Redis is unavailable (%s): they go out once it is back",
            campaign.id,
            len(ids),
            error,
        )
    return len(rows)


# -- reading and deleting -----------------------------------------------------


def visible_campaigns():
    """Campaigns not deleted, newest first (a select to paginate or limit)."""
    return select(Campaign).where(Campaign.deleted_at.is_(None)).order_by(Campaign.id.desc())


def get_campaign(campaign_id: int) -> Campaign | None:
    campaign = db.session.get(Campaign, campaign_id)
    return None if campaign is None or campaign.deleted_at is not None else campaign


def counts(campaign: Campaign) -> dict:
    """total, queued, sent, delivered, failed, canceled (cumulative, as docs/api.md defines them)."""
    return counts_of([campaign])[campaign.id]


def counts_of(campaigns: list[Campaign]) -> dict[int, dict]:
    """`counts` of many campaigns in one query; a draft counts its rows as its total."""
    found = campaigns_counts([campaign.id for campaign in campaigns if campaign.status != "draft"])
    for campaign in campaigns:
        if campaign.status == "draft":
            found[campaign.id] = {
                "total": campaign.total,
                "queued": 0,
                "sent": 0,
                "delivered": 0,
                "failed": 0,
                "canceled": 0,
            }
    return found


def is_finished(campaign: Campaign, campaign_counts: dict) -> bool:
    """Nothing left to send: the live view can stop polling."""
    return campaign.status != "draft" and campaign_counts["queued"] == 0


def delete_campaign(campaign: Campaign) -> None:
    """Stop its queued messages, then delete it.

    A draft sent nothing and is removed. A sent campaign is hidden (deleted_at)
    while its message log stays: what was sent to whom remains on record in the
    outbox, and late status callbacks still find their messages.
    """
    if campaign.status == "draft":
        db.session.delete(campaign)
        db.session.commit()
        return
    log.cancel_campaign(campaign.id)
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(deleted_at=utcnow()))
    db.session.commit()


def rejected_csv(campaign: Campaign) -> str:
    """The rejected rows as CSV (line, reason, the original columns) for the operator to fix."""
    rows = [
        RejectedRow(entry.get("line", entry.get("index")), entry["reason"], entry.get("raw") or {})
        for entry in campaign.rejected or []
    ]
    columns = list(campaign.columns or [])
    for entry in campaign.rejected or []:
        columns.extend(key for key in entry.get("raw") or {} if key not in columns)
    return rejected_rows_csv(rows, columns)


def rejected_summary(rejected: list[dict]) -> list[dict]:
    """Rejected rows as the API shows them: line (or index) and reason."""
    return [{key: value for key, value in entry.items() if key != "raw"} for entry in rejected]


def as_json(campaign: Campaign, campaign_counts: dict, *, detail: bool = False) -> dict:
    """The API's view of a campaign with its counts; `detail` adds the template and the rejected rows."""
    answer = {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "channel": campaign.channel,
        "dry_run": campaign.dry_run,
        **campaign_counts,
        "rejected_count": len(campaign.rejected or []),
        "created_at": iso_z(campaign.created_at),
        "finished_at": iso_z(campaign.finished_at),
    }
    if detail:
        answer["body"] = campaign.body
        answer["rejected"] = rejected_summary(campaign.rejected or [])
    return answer
