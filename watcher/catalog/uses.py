"""What a team uses, in its own words: capabilities mapped to each vendor's real component names.

A team writes ``vendors.<id>.uses = ["api", "chat app"]``; the catalog says, per
vendor, which components serve which capability (``[vendor.capabilities]`` in
``vendors.toml``, names taken from the vendors' own pages). An entry that is no
capability word is a component name pattern (``*`` wildcards, any case), so
``uses = ["api", "EU *"]`` also works for pages keyed by region.

The rules, in one place:

- no ``uses`` at all: every component is used (what watcher did before);
- a component the catalog does not map to any capability counts as used until the
  team says otherwise (a vendor adds components faster than any catalog);
- otherwise a component is used when one of its capabilities, or its name, is in ``uses``.

Incidents that name no component are judged by their words (:func:`capabilities_in_text`):
"Support chat unavailable" is about support, not the chat app.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capability:
    core: bool
    """Part of the work itself (a failed request costs the team time), not the admin around it."""
    en: str
    fr: str


CAPABILITIES: dict[str, Capability] = {
    "api": Capability(True, "API", "API"),
    "chat app": Capability(True, "chat app", "application de chat"),
    "image generation": Capability(True, "image generation", "génération d'images"),
    "voice": Capability(True, "voice", "voix"),
    "video": Capability(True, "video generation", "génération de vidéos"),
    "coding": Capability(True, "coding tools", "outils de code"),
    "agents": Capability(True, "agents", "agents"),
    "search": Capability(True, "search", "recherche"),
    "marketing tools": Capability(True, "marketing tools", "outils marketing"),
    "crm": Capability(True, "CRM", "CRM"),
    "console": Capability(
        False, "developer console (usage, keys, limits)", "console développeur (usage, clés, limites)"
    ),
    "billing": Capability(False, "billing", "facturation"),
    "support": Capability(False, "support chat and help center", "chat d'assistance et centre d'aide"),
    "account": Capability(False, "sign-up and account settings", "inscription et réglages du compte"),
    "government": Capability(False, "government offering", "offre pour le secteur public"),
}

ALIASES = {
    "chat": "chat app",
    "chatgpt": "chat app",
    "app": "chat app",
    "images": "image generation",
    "image": "image generation",
    "audio": "voice",
    "realtime": "voice",
    "code": "coding",
    "sign-up": "account",
    "signup": "account",
    "usage page": "console",
    "dashboard": "console",
}


def capability_word(entry: str) -> str | None:
    """The capability an entry of ``uses`` names, or None when it is a component pattern."""
    low = " ".join(entry.lower().split())
    low = ALIASES.get(low, low)
    return low if low in CAPABILITIES else None


def check_uses(uses: list[str], mapping: dict[str, tuple[str, ...]], where: str) -> str | None:
    """A problem with an entry of ``uses`` (a likely typo of a capability word), or None.

    A word that is no capability, has no wildcard, names no component the catalog knows
    and looks like a capability ("apii") would silently make every incident a quiet
    notice: refuse it with the fix.
    """
    import difflib

    known = {p.lower() for patterns in mapping.values() for p in patterns}
    words = sorted(set(CAPABILITIES) | set(ALIASES))
    for entry in uses:
        low = " ".join(entry.lower().split())
        if capability_word(entry) or "*" in low or "?" in low or low in known:
            continue
        close = difflib.get_close_matches(low, words, n=1, cutoff=0.75)
        if close:
            return (
                f"{where}: {entry!r} is not a capability; did you mean {close[0]!r}? "
                f"(capabilities: {', '.join(CAPABILITIES)}; or a component name, * wildcards)"
            )
    return None


def label(cap: str, locale: str = "en") -> str:
    c = CAPABILITIES.get(cap)
    if c is None:
        return cap
    return c.fr if locale == "fr" else c.en


def capabilities_of(name: str, mapping: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The capabilities a component serves, from the catalog's patterns for its vendor."""
    low = name.lower()
    return tuple(
        cap for cap, patterns in mapping.items() if any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)
    )


def is_used(name: str, uses: tuple[str, ...], mapping: dict[str, tuple[str, ...]]) -> bool:
    """Whether the team uses this component (see the module's rules)."""
    if not uses:
        return True
    low = name.lower()
    caps = set(capabilities_of(name, mapping))
    for entry in uses:
        cap = capability_word(entry)
        if cap is None:
            if fnmatch.fnmatchcase(low, entry.lower()):
                return True
        elif cap in caps:
            return True
    return not caps  # unknown to the catalog: it counts until told otherwise


def used_capabilities(uses: tuple[str, ...]) -> list[str]:
    return [c for c in (capability_word(u) for u in uses) if c]


# Words that say which capability a text is about. Peripheral phrases are matched (and
# removed) first: "support chat" is support, not the chat app.
_PERIPHERAL = [
    ("support", r"support chat|help ?center|support (?:portal|tickets?|team)|customer support"),
    ("billing", r"billing|invoices?|payments?|credit purchases?|subscriptions? (?:page|management)"),
    (
        "console",
        r"usage (?:page|data|report|dashboard)s?|rate limits? page|admin api usage|console|dashboard",
    ),
    ("account", r"sign[- ]?ups?|account creation|new accounts?|password reset"),
]
_CORE = [
    ("api", r"\bapi\b|api requests|endpoints?|completions|responses api|batch"),
    ("chat app", r"chatgpt|claude\.ai|\bchat\b|conversations?|gemini app|\bapp\b"),
    ("image generation", r"image generation|images?\b|dall-?e|imagen"),
    ("voice", r"voice|audio|realtime|speech"),
    ("video", r"\bsora\b|\bveo\b|video"),
    ("coding", r"codex|claude code|\bcli\b"),
    ("agents", r"\bagents?\b"),
]


def capabilities_in_text(text: str) -> set[str]:
    """The capabilities an incident's words name (empty: it says nothing we can place)."""
    low = " " + " ".join((text or "").lower().split()) + " "
    found: set[str] = set()
    for cap, pattern in _PERIPHERAL:
        if re.search(pattern, low):
            found.add(cap)
            low = re.sub(pattern, " ", low)
    for cap, pattern in _CORE:
        if re.search(pattern, low):
            found.add(cap)
    return found


_NOT_AFFECTED = re.compile(
    r"(?:^|(?<=[.!?]\s))([^.!?\n]{0,160}?\b(?:is|are|remains?|were|was)\s+(?:not\s+(?:been\s+)?affected|"
    r"unaffected|not\s+impacted|unimpacted|working\s+(?:normally|as\s+expected)|fully\s+operational)"
    r"[^.!?\n]{0,80}[.!?]?)",
    re.IGNORECASE,
)


def vendor_says_not_affected(text: str) -> str | None:
    """The vendor's own sentence saying what still works ("Core functionality is not affected."), if any."""
    m = _NOT_AFFECTED.search(" ".join((text or "").split()))
    if not m:
        return None
    sentence = m.group(1).strip().rstrip(".!?")
    return sentence[:1].upper() + sentence[1:] if sentence else None
