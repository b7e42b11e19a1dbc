"""Regular expressions that run in time linear in their input, for text watcher does not control.

Python's :mod:`re` backtracks: a pattern as ordinary as ``[A-Za-z]{3}[a-z]*\\s+`` takes time
quadratic in the length of a run of letters, and a vendor page (or an API's error body) of a few
hundred kilobytes then holds the interpreter lock for seconds to minutes. The event loop stops
with it: the board, Slack buttons, acknowledgement links and every other poll. A thread does not
help, since the matcher never releases the lock.

Every pattern that reads vendor text is compiled here, with RE2 (``google-re2``), whose
automaton guarantees time linear in the input whatever the pattern and the text. RE2 has no
backreferences and no lookaround; flags are written inline (``(?i)``, ``(?m)``, ``(?s)``); its
``\\s``, ``\\d``, ``\\w`` and ``\\b`` are ASCII-only. The returned objects answer ``search``,
``match``, ``fullmatch``, ``finditer``, ``findall``, ``sub`` and ``split`` as :mod:`re` does.
"""

from __future__ import annotations

from typing import Any

import re2

error = re2.error


def compile(pattern: str) -> Any:  # noqa: A001 - the name re users expect
    """A linear-time compiled pattern (raises :data:`error` on a pattern RE2 cannot run)."""
    return re2.compile(pattern)
