"""Verifying that an HTTP request really comes from Slack (the ``v0`` signing scheme).

Slack signs every interactivity request (button clicks) with the app's signing
secret: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">``
and ``X-Slack-Request-Timestamp``. Without this check anyone who learns our
interaction URL could acknowledge or mute incidents.

- The HMAC covers the *raw* body bytes, so verify before form-decoding.
- The timestamp is inside the HMAC and must be within ``window`` seconds of now
  (either way): a captured request cannot be replayed later.
- Comparison is constant-time (``hmac.compare_digest``) so the signature cannot
  be guessed byte by byte from response timings.

Written here rather than using ``slack_sdk.signature.SignatureVerifier`` so the
rules (future timestamps, malformed input → False, never an exception) are ours
and tested.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

VERSION = "v0"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``: the signature Slack would send for this timestamp and body."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    signing_secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float | None = None,
    window: float = 300,
) -> bool:
    """True only for a well-formed, fresh, correctly signed request. Never raises on bad input."""
    if not signing_secret or not timestamp or not signature or body is None:
        return False
    if not isinstance(timestamp, str) or not (timestamp.isascii() and timestamp.isdigit()):
        return False  # "1e9", "-5", "nan", " 12 ": Slack sends plain Unix seconds, nothing else
    ts = int(timestamp)
    current = time.time() if now is None else now
    if not math.isfinite(current) or abs(current - ts) > window:
        return False
    if not isinstance(signature, str) or not signature.startswith(f"{VERSION}="):
        return False
    expected = sign(signing_secret, timestamp, bytes(body))
    # compare_digest needs ASCII strings of any length; encode to bytes to accept any input safely
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
