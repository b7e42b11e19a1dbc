"""Who acknowledged: the display name people type (acknowledge page, ``watcher ack --by``), checked.

Apart from the engine because the web form and the CLI check a name before any
alert work: a name goes into Slack messages and log lines, so it must be plain.
"""

from __future__ import annotations

import re
import unicodedata

NAME_MAX = 80
_SLACK_ID = re.compile(r"\b[UWBSTCGD][A-Z0-9]{7,}\b")
_NAME_PUNCT = set(" -'’.,()")


def plain_name(text: str | None) -> str:
    """An acknowledger's name as typed on the acknowledge page, if it is a plain display name.

    Letters (any script), digits, spaces and ``- ' . , ( )`` only: no Slack ids
    (``U0VICTIM01`` would ping that user), no ``@`` or ``<...>`` mentions, no control,
    bidi or zero-width characters (a newline would forge a log line). Raises
    ValueError with the message to show.
    """
    name = " ".join((text or "").split(" ")).strip()
    if not name:
        raise ValueError("Enter your name: it is shown to the team as who acknowledged.")
    if len(name) > NAME_MAX:
        raise ValueError(f"That name is too long: {NAME_MAX} characters at most.")
    bad = sorted({c for c in name if not (unicodedata.category(c)[0] in "LMN" or c in _NAME_PUNCT)})
    if bad:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad[:5])
        raise ValueError(
            f"Enter a plain display name (letters, digits, spaces and - ' . , only); not allowed: {shown}."
        )
    if any(any(c.isdigit() for c in m.group()) for m in _SLACK_ID.finditer(name)):
        raise ValueError("Enter your name as people know it, not a Slack member id (like U0123ABCD).")
    return name
