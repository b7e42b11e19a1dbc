"""Hostile vendor documents, shared by tests/test_faults_input.py and the bench/ scripts.

Synthetic (made here, not copied from a status page): each is the smallest shape that made the
old code take time super-linear in its size, repeated up to the size asked for.
"""

from __future__ import annotations

import gzip
import html
import zlib

FEED_PATH = "/hostile/history.rss"


def _item(i: int, description: str) -> str:
    return (
        f"<item><title>Hostile {i}</title><link>https://status.example.com/incidents/h{i}</link>"
        f"<guid>h{i}</guid><pubDate>Tue, 07 Oct 2025 10:0{i}:00 +0000</pubDate>"
        f"<description>{html.escape(description)}</description></item>"
    )


def feed(size: int = 200_000) -> bytes:
    """An RSS feed of about ``size`` bytes whose items each target one super-linear spot: a
    Statuspage date that is one long word (the date regex), a run of ``<!--`` (feedparser's
    sanitizer), a run of ``<a`` (html.parser), and a status line padded with tabs."""
    share = size // 4
    parts = [
        "<p><small>" + "a" * (share - 200) + "</small><br><strong>Resolved</strong> - done</p>",
        "<!--" * ((share - 200) // 7),  # escaped in the XML: "&lt;!--" is 7 bytes
        "<a" * ((share - 200) // 5),
        "<p>Status: a" + "\t" * (share - 200) + "!</p>",
    ]
    items = "".join(_item(i, d) for i, d in enumerate(parts))
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Hostile</title>'
        f"<link>https://status.example.com</link>{items}</channel></rss>"
    ).encode()


def nested_gzip(decoded: int = 1_000_000_000, layers: int = 2) -> bytes:
    """``decoded`` zero bytes, gzip-compressed ``layers`` times: 1 GB is about 1 KB on the wire."""
    chunk = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    out = [chunk.compress(block) for _ in range(decoded // len(block))]
    out.append(chunk.flush())
    body = b"".join(out)
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body
