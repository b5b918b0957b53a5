"""Phone addresses as Twilio writes them."""


def bare_phone(address: str) -> str:
    """`whatsapp:+1555…` -> `+1555…`: contacts are keyed by the plain E.164 number."""
    address = address.strip()
    return address.split(":", 1)[1].strip() if address.lower().startswith("whatsapp:") else address
