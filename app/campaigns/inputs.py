"""What a campaign is made from: the template, channel and name checked, and recipients read from rows, messages or a CSV upload."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import current_app

from app.contacts.csv_import import (
    CsvImportError,
    ImportResult,
    import_contacts_csv,
    normalise_phone,
)
from app.engine.placeholders import (
    template_problems,
)
from app.models import utcnow
from app.sending.channels import CHANNELS

NAME_MAX = 200


class CampaignError(ValueError):
    """Input that cannot make a campaign; `field` names what to fix (form field or JSON path).

    `columns` is the CSV header when the phone column must be chosen; `rejected`
    lists the rows refused when no row at all is usable.
    """

    def __init__(self, field: str, message: str, *, columns=None, rejected=None):
        super().__init__(message)
        self.field = field
        self.message = message
        self.columns = columns or []
        self.rejected = rejected or []


@dataclass(slots=True)
class Recipient:
    """One message to queue: `key` is the CSV line (or API index) it came from."""

    key: int
    phone: str
    fields: dict
    body: str | None = None  # a per-message template (API `messages` form); None = the campaign's
    channel: str | None = None


def check_body(body, field_name: str = "body") -> str:
    """The message template, or CampaignError naming `field_name`."""
    if not isinstance(body, str) or not body.strip():
        raise CampaignError(field_name, "the message template is empty: write the message to send")
    problems = template_problems(body)
    if problems:
        raise CampaignError(field_name, "the message template is not valid: " + "; ".join(problems))
    return body.strip()


def check_channel(channel, field_name: str = "channel") -> str:
    """The channel name (sms when not given), or CampaignError naming `field_name`."""
    if channel is None or channel == "":
        return "sms"
    if isinstance(channel, str) and channel.strip().lower() in CHANNELS:
        return channel.strip().lower()
    raise CampaignError(field_name, f"unknown channel {channel!r}: use one of {', '.join(sorted(CHANNELS))}")


def check_name(name, fallback: str) -> str:
    if name is not None and not isinstance(name, str):
        raise CampaignError("name", "the name must be text")
    name = (name or "").strip() or fallback
    if len(name) > NAME_MAX:
        raise CampaignError("name", f"the name is longer than {NAME_MAX} characters")
    return name


def default_name(source: str | None = None) -> str:
    stamp = utcnow().strftime("%Y-%m-%d %H:%M")
    return f"{source} ({stamp})" if source else f"Campaign {stamp}"


def read_csv(data: bytes, phone_column: str | None = None) -> ImportResult:
    """Parse an uploaded CSV with the shared importer; CampaignError names `file` or `phone_column`."""
    if not data:
        raise CampaignError("file", "the file is empty: choose a CSV file with a header line and contacts")
    try:
        result = import_contacts_csv(
            data, current_app.config["DEFAULT_REGION"], phone_column or None, current_app.config["CSV_MAX_COLUMNS"]
        )
    except CsvImportError as error:
        field_name = "phone_column" if error.columns else "file"
        raise CampaignError(field_name, str(error), columns=error.columns) from None
    if not result.contacts:
        raise CampaignError(
            "file",
            f"no row of the file has a usable phone number ({len(result.rejected)} rejected)",
            columns=result.columns,
            rejected=[rejected_entry("line", row.line, row.reason, row.raw) for row in result.rejected],
        )
    return result


def recipients_from_rows(rows) -> tuple[list[Recipient], list[dict], list[str]]:
    """API `rows` ([{"phone", ...}]) -> recipients, rejected entries (by index) and the column names seen."""
    if not isinstance(rows, list) or not rows:
        raise CampaignError("rows", 'rows must be a non-empty list of objects such as {"phone": "+15551234567"}')
    region = current_app.config["DEFAULT_REGION"]
    columns: dict[str, None] = {}
    first_index: dict[str, int] = {}
    recipients, rejected = [], []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise CampaignError(f"rows[{index}]", 'each row must be an object such as {"phone": "+15551234567"}')
        columns.update(dict.fromkeys(str(key) for key in row))
        try:
            phone = normalise_phone(_text(row.get("phone")), region)
        except ValueError as error:
            rejected.append(rejected_entry("index", index, str(error), row))
            continue
        seen = first_index.setdefault(phone, index)
        if seen != index:
            rejected.append(rejected_entry("index", index, f"duplicate of index {seen} ({phone})", row))
            continue
        recipients.append(Recipient(index, phone, {**row, "phone": phone}))
    return recipients, rejected, list(columns)


def recipients_from_messages(messages, default_channel: str) -> tuple[list[Recipient], list[dict]]:
    """API `messages` ([{"to", "body", "channel", "vars"?}]): each its own template, rendered with its vars."""
    if not isinstance(messages, list) or not messages:
        raise CampaignError("messages", 'messages must be a non-empty list of {"to", "body", "channel"}')
    region = current_app.config["DEFAULT_REGION"]
    recipients, rejected = [], []
    for index, item in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise CampaignError(where, "each message must be an object with to, body and channel")
        body = check_body(item.get("body"), f"{where}.body")
        channel = check_channel(item.get("channel") or default_channel, f"{where}.channel")
        variables = item.get("vars") or {}
        if not isinstance(variables, dict):
            raise CampaignError(f"{where}.vars", "vars must be an object of placeholder values")
        try:
            phone = normalise_phone(_text(item.get("to")), region)
        except ValueError as error:
            rejected.append(rejected_entry("index", index, str(error), item))
            continue
        recipients.append(Recipient(index, phone, {**variables, "phone": phone}, body, channel))
    return recipients, rejected


def recipients_from_csv(result: ImportResult) -> tuple[list[Recipient], list[dict]]:
    """The importer's contacts and rejected rows (by line) in the campaign's terms."""
    recipients = [Recipient(contact.line, contact.phone, contact.fields) for contact in result.contacts]
    return recipients, [rejected_entry("line", row.line, row.reason, row.raw) for row in result.rejected]


def _text(value) -> str:
    return "" if value is None else str(value)


def rejected_entry(key: str, position: int, reason: str, raw: dict) -> dict:
    """A rejected row as stored on the campaign; cells as text so the CSV download can show them."""
    cells = {str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in raw.items()}
    return {key: position, "reason": reason, "raw": cells}
