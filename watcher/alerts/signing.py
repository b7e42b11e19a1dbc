"""Signed, expiring acknowledge links for email and the web page.

The link carries the incident id, an expiry and an HMAC over both with a secret
only the server knows: anyone holding the email can acknowledge (that is the
point), nobody can forge a link for another incident or extend one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


def _mac(secret: str, incident_id: int, expires: int) -> str:
    msg = f"ack:{incident_id}:{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def ack_link(base_url: str, secret: str, incident_id: int, ttl: float, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    query = urlencode({"e": expires, "s": _mac(secret, incident_id, expires)})
    return f"{base_url.rstrip('/')}/ack/{incident_id}?{query}"


def verify_ack(secret: str, incident_id: int, expires: str, signature: str, now: float | None = None) -> bool:
    try:
        exp = int(expires)
    except (TypeError, ValueError):
        return False
    if exp < (now if now is not None else time.time()):
        return False
    signature = signature or ""
    if not signature.isascii():  # compare_digest raises TypeError on non-ASCII str: a forgery, not a 500
        return False
    return hmac.compare_digest(_mac(secret, incident_id, exp), signature)
