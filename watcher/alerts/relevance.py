"""Does an incident touch what the team uses? And how to say so, in English and French.

An incident on components the team uses (``vendors.<id>.uses``) pages as always. One
that touches only other components (the console's usage page, billing, support
chat, sign-up, a region not used) is a *quiet notice*: sent without mention,
reminder or escalation (or only in the weekly report, per route), with the notice
playbook instead of "expect failed requests". The per-component judgement is
:func:`watcher.status.incident_uses`, the same one that computes the vendor's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from watcher.catalog import VendorSpec
from watcher.catalog.uses import (
    CAPABILITIES,
    capabilities_of,
    label,
    used_capabilities,
    vendor_says_not_affected,
)
from watcher.incidents.model import Incident
from watcher.model import SELF_VENDOR
from watcher.status import incident_uses


@dataclass(frozen=True, slots=True)
class Relevance:
    relevant: bool
    """It touches what the team uses (or we cannot tell): page as always."""
    core: bool
    """It touches the work itself (API, app, images, ...), not only the admin around it (console, billing)."""
    touched: tuple[str, ...]
    """The components it names, or the capabilities its words name."""
    scope: str
    """What is and is not affected, one or two sentences in the alert's language ('' when nothing to say)."""

    @property
    def quiet(self) -> bool:
        return not self.relevant


def judge(vendor: VendorSpec | None, inc: Incident, locale: str = "en") -> Relevance:
    if vendor is None or inc.vendor == SELF_VENDOR or inc.origin == "probe":
        return Relevance(True, True, (), "")  # our own evidence is about the API the team uses
    relevant, touched = incident_uses(vendor, inc)
    if inc.components:
        caps = {c for name in touched for c in capabilities_of(name, vendor.capabilities)}
        core = (
            not caps
            or any(CAPABILITIES[c].core for c in caps if c in CAPABILITIES)
            or any(not capabilities_of(name, vendor.capabilities) for name in touched)
        )
    else:
        caps = set(touched)
        core = not caps or any(CAPABILITIES[c].core for c in caps if c in CAPABILITIES)
    text = " ".join([*inc.bodies, inc.title])
    lines = []
    says = vendor_says_not_affected(text)
    if says:
        lines.append(_t(locale, "says", what=says, vendor=vendor.name))
    used = used_capabilities(vendor.uses)
    if inc.components:
        hit = [n for n in touched if vendor.uses_component(n)]
    else:  # capabilities named by the words: say them in the team's language
        hit = [label(c, locale) for c in touched if c in used]
        touched = [label(c, locale) for c in touched]
    if not relevant and used:
        lines.append(
            _t(
                locale,
                "not_affected",
                uses=_join([label(c, locale) for c in used], locale),
                what=_few(touched),
            )
        )
    elif not relevant:
        lines.append(_t(locale, "not_used", what=_few(touched)))
    elif vendor.uses and hit:
        lines.append(_t(locale, "affected", what=_few(hit)))
    elif not core and touched:
        lines.append(_t(locale, "admin_only", what=_few(touched)))
    return Relevance(relevant, core, tuple(touched), " ".join(lines))


def _few(items) -> str:
    items = list(items)
    return ", ".join(items[:4]) + ("…" if len(items) > 4 else "")


def _join(items: list[str], locale: str) -> str:
    word = _t(locale, "and")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + word + items[-1]


def _t(locale: str, key: str, **values: str) -> str:
    from watcher import i18n

    return i18n.t(locale, f"scope.{key}", **values)
