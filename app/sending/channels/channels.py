"""The channels we send on: how each one writes its addresses and which sender setting it needs."""

import json

from app.sending.channels.messages import OutboundMessage, SenderSettings


class Channel:
    """Turns an `OutboundMessage` into the keyword arguments of `messages.create_async`."""

    name: str
    label: str
    required_setting: str

    def address(self, phone: str) -> str:
        """The To/From address Twilio expects for a `+E164` number on this channel."""
        raise NotImplementedError

    def sender(self, settings: SenderSettings) -> dict | None:
        """The sender arguments (`from_` or `messaging_service_sid`), or None when not configured."""
        raise NotImplementedError

    def sender_of(self, settings: SenderSettings, from_address: str | None) -> dict | None:
        """The sender arguments for one message: its pool address when it has one, else `sender()`."""
        configured = self.sender(settings)
        if configured is None or not from_address or "messaging_service_sid" in configured:
            return configured
        return {"from_": self.address(from_address)}

    def missing_sender_message(self) -> str:
        return f"{self.required_setting} is not set, so {self.label} messages cannot be sent"

    def create_params(self, message: OutboundMessage, sender: dict) -> dict:
        """Keyword arguments for `client.messages.create_async`, without empty values."""
        params = {"to": self.address(message.to), **sender}
        if message.body:
            params["body"] = message.body
        if message.content_sid:
            params["content_sid"] = message.content_sid
            if message.content_variables:
                params["content_variables"] = _json_text(message.content_variables)
        if message.media_url:
            params["media_url"] = [message.media_url] if isinstance(message.media_url, str) else list(message.media_url)
        if message.status_callback:
            params["status_callback"] = message.status_callback
        return params


class SmsChannel(Channel):
    """SMS/MMS: plain `+E164` addresses, from a number or a Messaging Service (which wins)."""

    name = "sms"
    label = "SMS"
    required_setting = "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"

    def address(self, phone: str) -> str:
        return phone.strip()

    def sender(self, settings: SenderSettings) -> dict | None:
        if settings.messaging_service_sid:
            return {"messaging_service_sid": settings.messaging_service_sid}
        if settings.sms_from:
            return {"from_": self.address(_first(settings.sms_from))}
        return None


class WhatsAppChannel(Channel):
    """WhatsApp: `whatsapp:+E164` addresses, from `TWILIO_WHATSAPP_FROM`."""

    name = "whatsapp"
    label = "WhatsApp"
    required_setting = "TWILIO_WHATSAPP_FROM"
    prefix = "whatsapp:"

    def address(self, phone: str) -> str:
        phone = phone.strip()
        if phone.lower().startswith(self.prefix):
            phone = phone[len(self.prefix) :].strip()
        return self.prefix + phone

    def sender(self, settings: SenderSettings) -> dict | None:
        if settings.whatsapp_from:
            return {"from_": self.address(_first(settings.whatsapp_from))}
        return None


def _first(addresses: str) -> str:
    """The first address of a comma-separated pool (messages without their own sender use it)."""
    return addresses.split(",")[0].strip()


def _json_text(value: str | dict) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


CHANNELS: dict[str, Channel] = {channel.name: channel for channel in (SmsChannel(), WhatsAppChannel())}
