"""Who acknowledged: the display name people type (acknowledge page, ``watcher ack --by``), checked.

Apart from the engine because the web form and the CLI check a name before any
alert work: a name goes into Slack messages and log lines, so it must be plain.
"""

from __future__ import annotations

import re
import unicodedata

from watcher.i18n import Said

NAME_MAX = 80
_SLACK_ID = re.compile(r"\b[UWBSTCGD][A-Z0-9]{7,}\b")
_NAME_PUNCT = set(" -'’.,()")


def plain_name(text: str | None) -> str:
    """An acknowledger's name as typed on the acknowledge page, if it is a plain display name.

    Letters (any script), digits, spaces and ``- ' . , ( )`` only: no Slack ids
    (``U0VICTIM01`` would ping that user), no ``@`` or ``<...>`` mentions, no control,
    bidi or zero-width characters (a newline would forge a log line). Raises
    ValueError with the message to show: an :class:`~watcher.i18n.Said`, English as ``str(e)``, and
    in the team's language on the acknowledge page.
    """
    name = " ".join((text or "").split(" ")).strip()
    if not name:
        raise ValueError(Said("names.empty"))
    if len(name) > NAME_MAX:
        raise ValueError(Said("names.too_long", max=NAME_MAX))
    bad = sorted({c for c in name if not (unicodedata.category(c)[0] in "LMN" or c in _NAME_PUNCT)})
    if bad:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad[:5])
        raise ValueError(Said("names.not_plain", shown=shown))
    if any(any(c.isdigit() for c in m.group()) for m in _SLACK_ID.finditer(name)):
        raise ValueError(Said("names.slack_id"))
    return name
