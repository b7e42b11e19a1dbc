"""The built-in vendor catalog (``vendors.toml``, data not code) merged with the user's config.

:func:`resolve` is the one place that decides what gets watched: catalog vendors
picked by id, patched by ``[vendors.<id>]`` tables, plus vendors the user defines.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from watcher.catalog.checks import HTTP_FIELDS, HttpCheck, build_check
from watcher.config import SOURCE_TYPES, ConfigError, Settings, SourceSettings, VendorSettings


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One document to poll: everything the poller and the parser need."""

    vendor: str
    id: str
    type: str
    url: str
    interval: float
    product_ids: tuple[str, ...] = ()
    ignore_components: tuple[str, ...] = ()
    html: dict[str, Any] = field(default_factory=dict)
    check: HttpCheck | None = None
    """``http`` sources: what to ask and how to judge the answer."""
    confidence: str | None = None
    """How sure we are that this source says something true (catalog: verified, third-party, unverified)."""

    @property
    def key(self) -> str:
        """Globally unique name, ``vendor/source``."""
        return f"{self.vendor}/{self.id}"


@dataclass(frozen=True, slots=True)
class VendorSpec:
    id: str
    name: str
    status_page: str | None
    platform: str
    sources: tuple[SourceSpec, ...]
    components: tuple[str, ...] | None = None
    ignore_components: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    """What the vendor does (text, image, voice, api, ...): alternatives share one."""
    api_base: str | None = None
    api_format: str | None = None
    probe: dict[str, Any] | None = None
    notes: str = ""
    comparison: dict[str, str] = field(default_factory=dict)
    """One line per locale (``en``, ``fr``): what the tool is good at and what to watch out for."""
    confidence: str | None = None
    uses: tuple[str, ...] = ()
    """What the team uses (``vendors.<id>.uses``): capability words or component patterns; empty = all."""
    capabilities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """From the catalog: capability word → this vendor's component name patterns."""

    def uses_component(self, name: str) -> bool:
        """Whether the team uses this component (unknown components count): see :mod:`watcher.catalog.uses`."""
        from watcher.catalog.uses import is_used

        return is_used(name, self.uses, self.capabilities)

    def counts_component(self, name: str) -> bool:
        """Whether a component of this name is evidence, after the user's filters."""
        low = name.lower()
        if any(fnmatch.fnmatchcase(low, pat.lower()) for pat in self.ignore_components):
            return False
        if self.components is None:
            return True
        return any(fnmatch.fnmatchcase(low, pat.lower()) for pat in self.components)


@cache
def load_catalog() -> dict[str, dict[str, Any]]:
    """The shipped catalog as raw tables keyed by vendor id."""
    raw = resources.files("watcher.catalog").joinpath("vendors.toml").read_bytes()
    data = tomllib.loads(raw.decode("utf-8"))
    return {v["id"]: v for v in data.get("vendor", [])}


def resolve(settings: Settings) -> list[VendorSpec]:
    """The vendors to watch, in a stable order. Raises ConfigError for unknown ids."""
    catalog = load_catalog()
    from watcher.model import SELF_VENDOR

    if SELF_VENDOR in settings.vendors or SELF_VENDOR in (settings.watch or []):
        raise ConfigError(f"vendors.{SELF_VENDOR}: the id {SELF_VENDOR!r} is reserved for watcher's own notices")
    custom = {vid for vid in settings.vendors if vid not in catalog}
    if settings.watch is None:
        ids = [vid for vid, v in catalog.items() if v.get("sources")] + sorted(custom)
    else:
        unknown = [vid for vid in settings.watch if vid not in catalog and vid not in settings.vendors]
        if unknown:
            raise ConfigError(
                f"watch: unknown vendor id(s) {', '.join(unknown)}; known: {', '.join(sorted(catalog))}, "
                "or define it under [vendors.<id>] with a name and sources"
            )
        ids = list(dict.fromkeys(settings.watch))
    return [_vendor(vid, catalog.get(vid), settings.vendors.get(vid), settings) for vid in ids]


def _vendor(
    vid: str, base: dict[str, Any] | None, patch: VendorSettings | None, settings: Settings
) -> VendorSpec:
    base = base or {}
    patch = patch or VendorSettings()
    name = patch.name or base.get("name")
    if not name:
        raise ConfigError(
            f'vendors.{vid}: not in the catalog, so it needs a name = "..." and at least one source'
        )
    merged: dict[str, dict[str, Any]] = {s["id"]: dict(s) for s in base.get("sources", [])}
    for sid, sp in patch.sources.items():
        entry = merged.setdefault(sid, {"id": sid})
        entry.update(_patch_fields(sp))
    sources = []
    for sid, s in merged.items():
        if s.get("enabled", True) is False:
            continue
        where = f"vendors.{vid}.sources.{sid}"
        if s.get("type") not in SOURCE_TYPES:
            raise ConfigError(
                f"{where}.type: must be one of {', '.join(SOURCE_TYPES)} (got {s.get('type')!r})"
            )
        if not s.get("url"):
            raise ConfigError(f"{where}.url: a source needs a url")
        if s["type"] == "gcp" and not s.get("product_ids"):
            raise ConfigError(f"{where}.product_ids: a gcp source needs the Google Cloud product ids to keep")
        check = None
        if s["type"] == "http":
            p = settings.probes
            check = build_check(
                s, where, default_fail=p.fail_consecutive, default_recover=p.recover_consecutive
            )
        else:
            stray = [k for k in HTTP_FIELDS if s.get(k) is not None]
            if stray:
                raise ConfigError(f"{where}.{stray[0]}: only a source of type = \"http\" takes this setting")
        sources.append(
            SourceSpec(
                vendor=vid,
                id=sid,
                type=s["type"],
                url=s["url"],
                interval=float(s.get("interval") or settings.poll.interval),
                product_ids=tuple(s.get("product_ids") or ()),
                ignore_components=tuple(s.get("ignore_components") or ()),
                html=dict(s.get("html") or {}),
                check=check,
                confidence=s.get("confidence"),
            )
        )
    if not sources and not base:
        raise ConfigError(f"vendors.{vid}: define at least one source, e.g. [vendors.{vid}.sources.summary]")
    from watcher.catalog.uses import check_uses

    capabilities = {k: tuple(v) for k, v in (base.get("capabilities") or {}).items()}
    problem = check_uses(patch.uses, capabilities, f"vendors.{vid}.uses")
    if problem:
        raise ConfigError(problem)
    return VendorSpec(
        id=vid,
        name=name,
        status_page=patch.status_page or base.get("status_page"),
        platform=base.get("platform", "custom"),
        sources=tuple(sources),
        components=tuple(patch.components) if patch.components is not None else None,
        ignore_components=tuple(patch.ignore_components),
        products=tuple(base.get("products", ())),
        categories=tuple(
            patch.categories if patch.categories is not None else base.get("categories", ())
        ),
        api_base=base.get("api_base"),
        api_format=base.get("api_format"),
        probe=base.get("probe"),
        notes=base.get("notes", ""),
        comparison=dict(base.get("comparison") or {}),
        confidence=base.get("confidence"),
        uses=tuple(patch.uses),
        capabilities=capabilities,
    )


def _patch_fields(sp: SourceSettings) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in sp.model_dump(exclude_unset=True).items() if v is not None}
    return out
