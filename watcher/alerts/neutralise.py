"""Untrusted vendor text made inert inside our Markdown, whatever renders it later (Slack, email, Apprise).

Apart from the playbook because every renderer of vendor text needs it, not only
the playbook: the Apprise text, the resolved note, the saved-prompt names.
"""

from __future__ import annotations

import re

NEUTRAL_LIMIT = 500
"""Default cap of :func:`neutralise`."""


# -- neutralise ----------------------------------------------------------------------------------

# Invisible and control characters (C0/C1 except whitespace, soft hyphen, zero-width and bidi
# controls, variation selectors, Hangul fillers, tags, lone surrogates): dropped. Whitespace
# (including \n, \r, \t, U+2028/2029, U+0085) is collapsed to one space afterwards.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\ud800-\udfff\U000e0000-\U000e0fff]"
)
_SPACES = re.compile(r"\s+")
# "@here" and friends anywhere (Discord honours them mid-word), and any "@name" at a word start
# (Telegram, Teams, Mattermost user mentions); e-mail addresses (a@b.com) are left alone.
_MENTION = re.compile(r"@(?=channel|here|everyone|all\b)|(?<![\w.])@(?=\w)", re.IGNORECASE)
# "_" is kept only inside a word (snake_case), where neither CommonMark nor Slack makes emphasis.
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# Look-alikes, one character for one, so that the result reads the same and stays inert.
_LOOKALIKES = str.maketrans(
    {
        "<": "‹",
        ">": "›",
        "[": "(",
        "]": ")",
        "*": "∗",
        "~": "∼",
        "`": "‘",
        "\\": "⧵",
    }
)
_LEADING = re.compile(r"^(?:[#=+\-]|\d{1,9}[.)](?=\s|$))")
_LEADING_MAP = str.maketrans({"#": "＃", "=": "＝", "+": "＋", "-": "‐", ".": "．", ")": "）"})


def neutralise(text: str, *, limit: int = NEUTRAL_LIMIT) -> str:
    """Make untrusted vendor text inert inside our Markdown, whatever renders it later.

    - control and invisible characters are dropped, every run of whitespace
      (newlines included) becomes one space, so no line of Markdown can start
      inside it;
    - cut to ``limit`` characters, ending with "…";
    - ``<`` ``>`` become ‹ ›: no ``<!channel>``, ``<@U…>``, ``<a href>``,
      ``<script>``, ``<http://…>`` auto-link can form;
    - ``[`` ``]`` become ( ): no ``[label](url)`` link, no reference link;
      a bare URL stays visible as plain text;
    - ``@`` before channel/here/everyone/all, and at the start of any word,
      becomes ＠: no broadcast or user mention on any platform;
    - ``*`` ``~`` `````, ``\\`` and ``_`` (except inside a word) become
      look-alikes: no emphasis, strike, code or escape;
    - a leading ``#`` ``-`` ``+`` ``=`` or ``1.`` becomes a look-alike: no
      heading, bullet or list if a template places the text at a line start.

    Every replacement is one character for one look-alike that is not itself
    replaced, so ``neutralise(neutralise(x)) == neutralise(x)``. Cost is linear
    in ``limit``: the input is cut to a few times the limit first.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    limit = max(1, int(limit))
    text = text[: limit * 4 + 64]
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = _MENTION.sub("＠", text)
    text = _UNDERSCORE.sub("ˍ", text)
    text = text.translate(_LOOKALIKES)
    if m := _LEADING.match(text):
        text = m.group(0).translate(_LEADING_MAP) + text[m.end() :]
    return text
