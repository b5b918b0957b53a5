"""Pre-flight: what starting a run would do, worked out before anything is sent.

`run_preflight` answers `POST /api/journeys/<id>/runs/preview` and the
start-run page with the exact keys of docs/api.md: recipients after
suppression, messages and SMS segments per contact (least and most over the
journey's paths, bodies rendered with each contact's fields), an estimated
duration from the global and per-sender rate limits and the send window,
and the blockers (the start is refused) and warnings shown above Start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app import engine
from app.contacts.csv_import import normalise_phone
from app.engine.paths import message_paths, messages_before_a_reply
from app.engine.placeholders import render, sms_info
from app.engine.windows import closing_after, is_open, next_opening
from app.extensions import db
from app.journeys import store as journeys
from app.models import Audience, AudienceContact, Contact, InboundMessage, Journey, utcnow
from app.models import participation_table as participations
from app.runs.membership import active_contact_ids
from app.runs.quiet_hours import window_zone

CHUNK = 5000  # ids or phones per IN list
SAMPLE_CONTACTS = 2000  # contacts whose bodies are rendered for the segment counts
WHATSAPP_SESSION = timedelta(hours=24)
MAX_WINDOW_DAYS = 366  # the estimate gives up past a year of send windows


def sender_addresses(config, channel: str) -> list[str]:
    """The configured senders of a channel (a comma-separated pool; SMS may use a messaging service)."""
    key = "TWILIO_WHATSAPP_FROM" if channel == "whatsapp" else "TWILIO_FROM"
    addresses = [part.strip() for part in (config.get(key) or "").split(",") if part.strip()]
    if not addresses and channel == "sms" and config.get("TWILIO_MESSAGING_SERVICE_SID"):
        return [config["TWILIO_MESSAGING_SERVICE_SID"]]
    return addresses


def send_rate(config, channel: str) -> float | None:
    """Messages per second a channel can go at: the global limit and the sum of its senders' limits.

    None when nothing limits it. Per-sender limits: `SENDER_RATE_LIMITS`
    overrides (`ADDRESS=RATE`) else `SENDER_RATE_LIMIT`; 0 means none.
    """
    overrides = {}
    for item in (config.get("SENDER_RATE_LIMITS") or "").split(","):
        address, _, rate = item.partition("=")
        if address.strip() and rate.strip():
            overrides[address.strip()] = float(rate)
    default = float(config.get("SENDER_RATE_LIMIT") or 0)
    per_sender = [overrides.get(address, default) for address in sender_addresses(config, channel)]
    limits = [float(config.get("MESSAGE_RATE_LIMIT") or 0)]
    if per_sender and all(rate > 0 for rate in per_sender):
        limits.append(sum(per_sender))
    limits = [limit for limit in limits if limit > 0]
    return min(limits) if limits else None


def run_preflight(journey: Journey, audience_id=None, contacts=None, start_at: datetime | None = None) -> dict:
    """The pre-flight answer for starting `journey` for an audience or inline contacts."""
    config, blockers, warnings = current_app.config, [], []
    problems = journeys.problems_of(journey.draft)
    definition = None
    if problems:
        blockers.append(f"the journey has {len(problems)} error(s): {problems[0].message}")
    else:
        definition = engine.parse({key: value for key, value in journey.draft.items() if key != "id"})
    people, suppressed = _recipients(journey, audience_id, contacts)
    if not people:
        blockers.append(
            "nobody can be sent a message: every contact is opted out, invalid or already active in a run of this journey"
        )
    per_contact = _per_contact(definition, people, warnings) if definition else {"messages": (0, 0), "segments": (0, 0)}
    channels = _channels(definition) if definition else set()
    for channel in sorted(channels):
        if not sender_addresses(config, channel):
            text = f"no {channel} sender is configured (set {_sender_setting(channel)})"
            (warnings if config.get("DRY_RUN") else blockers).append(
                text + (": dry-run mode records messages without sending" if config.get("DRY_RUN") else "")
            )
    if definition is not None and "whatsapp" in channels:
        _whatsapp_session_check(definition, people, blockers)
    if suppressed["already_active"]:
        warnings.append(
            f"{suppressed['already_active']:,} contact(s) are already active in a run of this journey: "
            "the new run leaves them out (a contact is in one run of a journey at a time)"
        )
    seconds = _estimate(definition, people, per_contact["messages"][1], start_at or utcnow(), warnings)
    return {
        "recipients": len(people),
        "suppressed": suppressed,
        "messages_per_contact": dict(zip(("min", "max"), per_contact["messages"], strict=True)),
        "segments_per_contact": dict(zip(("min", "max"), per_contact["segments"], strict=True)),
        "estimated_seconds": seconds,
        "blockers": blockers,
        "warnings": warnings,
    }


def _sender_setting(channel: str) -> str:
    return "TWILIO_WHATSAPP_FROM" if channel == "whatsapp" else "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"


def _recipients(journey: Journey, audience_id, contacts) -> tuple[list, dict]:
    """(phone, fields, opted_out, contact id) of each recipient left, and the suppressed counts."""
    suppressed = {"opted_out": 0, "invalid": 0, "duplicate": 0, "already_active": 0}
    if audience_id is not None:
        audience = db.session.get(Audience, audience_id)
        if audience is None:
            raise LookupError(f"no audience {audience_id}")
        suppressed["invalid"] = len(audience.rejected or [])
        # Only the time zone field of every contact (for the window); all fields for the rendered sample.
        own_zone = func.coalesce(Contact.fields["timezone"].as_string(), Contact.fields["Timezone"].as_string())
        rows = db.session.execute(
            select(Contact.id, Contact.phone, Contact.opted_out, own_zone.label("zone"))
            .join(AudienceContact, AudienceContact.contact_id == Contact.id)
            .where(AudienceContact.audience_id == audience_id)
            .order_by(Contact.id)
        ).all()
        found = [(row.phone, {"timezone": row.zone} if row.zone else {}, row.opted_out, row.id) for row in rows]
    else:
        found = _inline(contacts or [], suppressed)
    active = _already_active(journey.id, audience_id, [item[3] for item in found if item[3] is not None])
    people = []
    for item in found:
        if item[2]:
            suppressed["opted_out"] += 1
        elif item[3] in active:
            suppressed["already_active"] += 1
        else:
            people.append(item)
    if audience_id is not None:
        _load_sample_fields(people)
    return people, suppressed


def _load_sample_fields(people: list) -> None:
    """Give the first SAMPLE_CONTACTS recipients all their fields (their bodies are rendered)."""
    sample = [item[3] for item in people[:SAMPLE_CONTACTS]]
    fields = dict(db.session.execute(select(Contact.id, Contact.fields).where(Contact.id.in_(sample))).all())
    for index, item in enumerate(people[:SAMPLE_CONTACTS]):
        people[index] = (item[0], dict(fields.get(item[3]) or {}), item[2], item[3])


def _inline(contacts: list, suppressed: dict) -> list:
    region, seen, found = current_app.config["DEFAULT_REGION"], set(), []
    for contact in contacts:
        try:
            phone = normalise_phone(str((contact or {}).get("phone") or ""), region)
        except (ValueError, AttributeError):
            suppressed["invalid"] += 1
            continue
        if phone in seen:
            suppressed["duplicate"] += 1
            continue
        seen.add(phone)
        found.append([phone, {str(k): v for k, v in contact.items()}, False, None])
    listed, known = sorted(seen), {}
    for start in range(0, len(listed), CHUNK):
        chunk = listed[start : start + CHUNK]
        for row in db.session.execute(
            select(Contact.id, Contact.phone, Contact.opted_out).where(Contact.phone.in_(chunk))
        ):
            known[row.phone] = row
    for item in found:
        if item[0] in known:
            item[2], item[3] = known[item[0]].opted_out, known[item[0]].id
    return [tuple(item) for item in found]


def _already_active(journey_id: int, audience_id, contact_ids: list[int]) -> set[int]:
    """Contacts (of the audience, or among these ids) in a non-final state in a run of this journey."""
    active = active_contact_ids(journey_id).distinct()
    if audience_id is not None:
        members = select(AudienceContact.contact_id).where(AudienceContact.audience_id == audience_id)
        return set(db.session.scalars(active.where(participations.c.contact_id.in_(members))))
    found = set()
    for start in range(0, len(contact_ids), CHUNK):
        chunk = contact_ids[start : start + CHUNK]
        found |= set(db.session.scalars(active.where(participations.c.contact_id.in_(chunk))))
    return found


def _channels(definition) -> set[str]:
    return {node.data.get("channel") or definition.channel for node in definition.nodes if node.type == "message"}


def _per_contact(definition, people: list, warnings: list) -> dict:
    """Least and most messages and SMS segments over the paths, bodies rendered per (sampled) contact."""
    summary = message_paths(definition)
    counts = [len(path) for path in summary.paths] or [0]
    if summary.loops:
        warnings.append("a loop (through a wait or delay) can send some contacts more messages than counted")
    if len(people) > SAMPLE_CONTACTS:
        warnings.append(f"segments are counted from the first {SAMPLE_CONTACTS:,} recipients")
    used = {node_id for path in summary.paths for node_id in path}
    least, most = None, 0
    for phone, fields, *_rest in people[:SAMPLE_CONTACTS]:
        scope = {**fields, "phone": phone}
        sizes = {node_id: _segments(definition.node(node_id), scope) for node_id in used}
        totals = [sum(sizes[node_id] for node_id in path) for path in summary.paths] or [0]
        least = min(totals) if least is None else min(least, min(totals))
        most = max(most, max(totals))
    return {"messages": (min(counts), max(counts)), "segments": (least or 0, most)}


def _segments(node, scope: dict) -> int:
    """Billed SMS segments of one message (a WhatsApp template or an MMS counts as one)."""
    body = node.data.get("body")
    if node.data.get("content_sid") or node.data.get("media_url") or not isinstance(body, str):
        return 1
    return max(1, sms_info(render(body, scope).text).segments)


def _whatsapp_session_check(definition, people: list, blockers: list) -> None:
    """Free-form WhatsApp text before any reply needs the contact to have written in the last 24 h (else
    Twilio refuses it: 63016); an approved template (`content_sid`) needs no session."""
    free_text = [
        node.id
        for node in map(definition.node, messages_before_a_reply(definition))
        if (node.data.get("channel") or definition.channel) == "whatsapp" and not node.data.get("content_sid")
    ]
    if not free_text or not people:
        return
    since = utcnow() - WHATSAPP_SESSION
    phones = [item[0] for item in people]
    recent = set(
        db.session.scalars(select(func.distinct(InboundMessage.from_phone)).where(InboundMessage.received_at >= since))
    )
    outside = sum(1 for phone in phones if phone not in recent)
    if outside:
        blockers.append(
            f"{outside:,} contact(s) have not written in the last 24 hours: WhatsApp free text to them fails "
            f"at Twilio (63016); use an approved template (content_sid) in message {free_text[0]!r}"
        )


def _estimate(definition, people: list, messages_each: int, begin: datetime, warnings: list) -> float | None:
    if definition is None or not people or not messages_each:
        return 0.0
    channel = next(iter(sorted(_channels(definition))), "sms")
    return estimate_seconds(definition.send_window, people, messages_each, channel, begin, warnings)


def estimate_seconds(window, people: list, messages_each: int, channel: str, begin: datetime, warnings: list):
    """Seconds from the start until the last contact's messages can have gone, at the channel's send rate.

    Without a window: messages / rate. With one: contacts are taken in the
    order their window opens, paced at the rate, and a contact whose window
    has closed meanwhile waits for its next opening. `people` are
    (phone, fields, …) tuples. None when nothing limits the rate.
    """
    rate = send_rate(current_app.config, channel)
    if rate is None and window is None:
        warnings.append("no rate limit is set: the duration depends on Twilio alone")
        return None
    step = timedelta(seconds=messages_each / rate) if rate else timedelta(0)
    if window is None:
        return round(len(people) * step.total_seconds(), 1)
    groups: dict[str, list] = {}  # zone name -> [zone, contacts]
    for phone, fields, *_rest in people:
        tz = window_zone(window, fields, phone)
        groups.setdefault(tz.key, [tz, 0])[1] += 1
    openings = {key: next_opening(window, begin, tz) for key, (tz, _count) in groups.items()}
    if any(opening > begin for opening in openings.values()):
        warnings.append("the send window is closed for some contacts at the start: they wait for it to open")
    cursor = begin
    for key in sorted(groups, key=openings.get):
        tz, count = groups[key]
        cursor = max(cursor, _paced_through_window(window, tz, max(cursor, openings[key]), count, step, begin))
    return round((cursor - begin).total_seconds(), 1)


def _paced_through_window(window, tz, slot: datetime, count: int, step: timedelta, begin: datetime) -> datetime:
    """When `count` contacts of one zone, one every `step` from `slot`, are done inside their open hours."""
    limit = begin + timedelta(days=MAX_WINDOW_DAYS)
    while count > 0 and slot < limit:
        if not is_open(window, slot, tz):
            slot = next_opening(window, slot, tz)
        room = closing_after(window, slot, tz) - slot
        fits = int(room / step) + 1 if step else count
        taken = min(count, max(1, fits))
        slot, count = slot + taken * step, count - taken
        if count:
            slot = closing_after(window, slot - step, tz)  # closed now: wait for the next opening
    return slot
