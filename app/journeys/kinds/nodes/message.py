"""Designer half of `message`: text or WhatsApp template, channel, media, and a live preview."""

from __future__ import annotations

from markupsafe import Markup, escape

from app.engine.placeholders import PLACEHOLDER_RE, render, scope, sms_info, spellings
from app.journeys.forms import Form, pairs
from app.journeys.kinds.base import NodeKind


class MessageKind(NodeKind):
    name = "message"
    style = ("#e7f0ff", "#3b5bdb", "bubble")

    def summary(self, node):
        if node.get("content_sid"):
            return f"template {node['content_sid']}"
        return " ".join(str(node.get("body") or "").split()) or "(empty message)"

    def from_form(self, form: Form, node: dict) -> None:
        channel = form.get("channel", "")
        if channel:
            node["channel"] = channel
        if form.get("mode") == "template":
            node["content_sid"] = form.get("content_sid", "").strip()
            variables = pairs(form.get("content_variables", ""), "=")
            if variables:
                node["content_variables"] = variables
        else:
            node["body"] = form.get("body", "")
        media = form.get("media_url", "").strip()
        if media:
            node["media_url"] = media

    def preview(self, node, sample):
        variables = scope(sample)
        if node.get("content_sid"):
            rendered = {
                name: render(str(value), variables) for name, value in (node.get("content_variables") or {}).items()
            }
            return {
                "template": True,
                "content_sid": node["content_sid"],
                "variables": [(name, item.text, item.missing) for name, item in rendered.items()],
            }
        body = str(node.get("body") or "")
        rendered = render(body, variables)
        info = sms_info(rendered.text)
        return {
            "template": False,
            "spellings": spellings(body),
            "html": highlight_missing(body, variables),
            "text": rendered.text,
            "missing": rendered.missing,
            "encoding": info.encoding,
            "characters": info.characters,
            "segments": info.segments,
        }


def highlight_missing(body: str, variables: dict) -> Markup:
    """The rendered body as HTML, each placeholder with no value shown marked by its name."""
    out, last = [], 0
    for match in PLACEHOLDER_RE.finditer(body):
        out.append(escape(body[last : match.start()]))
        rendered = render(match.group(0), variables)
        if rendered.missing:
            out.append(
                Markup('<mark class="pill-missing" title="no value for this contact">«{}»</mark>').format(
                    rendered.missing[0]
                )
            )
        else:
            out.append(escape(rendered.text))
        last = match.end()
    out.append(escape(body[last:]))
    return Markup("").join(out)


NODE_KIND = MessageKind()
