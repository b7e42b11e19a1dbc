"""The JSON API's documents as pydantic models: every answer and request body of ``/api/v1``.

They exist so that the OpenAPI document (:mod:`watcher.web.openapi`) is generated from one typed
description instead of being written by hand: each field's type, whether it is required or may be
null, its enum and its description are said once, here. The handlers in :mod:`watcher.web.api`
still build their answers with the serialisers next to them and read request bodies by hand (their
error messages name the field and the fix); ``tests/test_api.py`` validates every real answer
against the schemas generated from these models, and schemathesis drives the live API with them
(``tests/test_faults_input.py``), so the two cannot drift apart unnoticed.

A field with a default is optional in the document (the default itself is not published); a field
typed ``X | None`` without a default is required and may be null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, Field

PREFIX = "/api/v1"
STATES = ("open", "resolved", "all")
Kind = Literal["outage", "degradation", "api_change", "hallucination_spike", "maintenance"]
KINDS: tuple[str, ...] = get_args(Kind)
DURATION_PATTERN = "^[ \\t]*([0-9]+(\\.[0-9]+)?[ \\t]*[smhdSMHD][ \\t]*)+$"
"""``watcher mute --for`` durations: ``2h``, ``30m``, ``1h30m``, ``1d`` (see ``alerts.commands.parse_duration``)."""
MAX_MUTE_S = 30 * 86400


class Error(BaseModel):
    error: str = Field(description="What went wrong, in plain words.")


class IncidentSummary(BaseModel):
    """An incident as watcher tracks it: one per vendor event, however many sources report it."""

    id: int
    vendor: str = Field(description="Vendor id (`watcher` for watcher's own network).")
    title: str = Field(description="The vendor's title (untrusted text: escape it).")
    kind: Kind
    reason: str = Field(description="Why it was classified so, in plain words.")
    state: Literal["open", "resolved"]
    status: str = Field(description="The vendor's status word (investigating, identified...).")
    impact: str | None = None
    phase: Literal["upcoming", "in_progress", "completed"] | None = None
    components: list[str]
    opened_at: datetime | None
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    url: str | None = None
    latest_update: str = ""


class Acknowledgement(BaseModel):
    by: str
    at: datetime
    reason: str | None = None
    via: str = Field(description="board, api, cli, slack, email link...")


class Incident(IncidentSummary):
    vendor_name: str
    is_maintenance: bool
    duration_s: float | None = Field(description="Seconds, once resolved.")
    acknowledgement: Acknowledgement | None
    html_url: str = Field(description="The incident's page on the board.")


class TimelineEvent(BaseModel):
    at: datetime | None
    type: str = Field(
        description="opened, vendor_update, status_changed, kind_changed, components_changed, "
        "merged, maintenance_started, resolved, reopened, measured, backfilled"
    )
    text: str
    status: str | None = None
    source: str | None = Field(default=None, description="The source (signal) that reported it.")


class AlertDelivery(BaseModel):
    """One alert written to the outbox, and how its delivery went."""

    id: int
    action: str = Field(description="opened, updated, resolved, acknowledged, reminder, escalation")
    channel: str = Field(description="slack, email, apprise")
    target: str
    route: str = ""
    state: Literal["pending", "sending", "delivered", "dead"]
    delivery: Literal["pending", "sending", "delivered", "dead", "held", "retrying"] = Field(
        description="state, with pending split into held (quiet hours) and retrying"
    )
    detail: str = ""
    attempts: int
    created_at: datetime | None
    delivered_at: datetime | None = None
    last_error: str | None = None
    fallback_of: int | None = None


class IncidentDetail(Incident):
    events: list[TimelineEvent]
    alerts: list[AlertDelivery]
    playbook: str = Field(description="Markdown: what to do (from the latest alert).")
    playbook_sent: bool = Field(
        description="false when no alert was sent and the playbook was built for this answer"
    )
    signals: list[str]
    keys: list[str]


class LatencyBucket(BaseModel):
    start: datetime
    median_ms: float | None
    samples: int
    failures: int


class Latency(BaseModel):
    """Our own probes' response time over the last 24 h (first token of a chat completion, else the
    model list), in 15-minute buckets; null when the vendor is not probed."""

    window_hours: int
    bucket_minutes: int
    typical_ms: float | None = None
    latest_ms: float | None = None
    samples: int
    failures: int
    series: list[LatencyBucket]


class FailingSource(BaseModel):
    source: str = ""
    error: str | None = None
    kind: str | None = None


class VendorComponent(BaseModel):
    """Per-component truth: the page's status, the state after open incidents naming it, and whether it
    counts for this team (vendors.<id>.uses)."""

    name: str = ""
    status: str | None = None
    state: str = ""
    used: bool = False
    incidents: list[int | None] = []


class Vendor(BaseModel):
    vendor: str
    name: str
    state: Literal["operational", "degraded", "outage", "maintenance", "unknown"]
    reason: str
    incidents: list[IncidentSummary]
    maintenances: list[IncidentSummary]
    failing_sources: list[FailingSource] = []
    components: list[VendorComponent] = []
    status_page: str | None = None
    muted_until: datetime | None = None
    mute_reason: str | None = None
    latency: Latency | None


class VendorList(BaseModel):
    generated_at: datetime
    last_poll: datetime | None = None
    vendors: list[Vendor]


class IncidentList(BaseModel):
    generated_at: datetime
    count: int
    incidents: list[Incident]


class AckRequest(BaseModel):
    by: str = Field(
        max_length=80,
        pattern="[^\\s\\x1c-\\x1f\\x85]",
        description="Who acknowledges (not only blanks). When logged in with HTTP Basic the user name "
        "is recorded instead, and this may be omitted.",
    )
    reason: str | None = Field(default=None, max_length=500)


class MuteRequest(BaseModel):
    for_: (
        Annotated[str, Field(pattern=DURATION_PATTERN, examples=["2h", "30m", "1h30m", "1d"])]
        | Annotated[float, Field(ge=60, le=MAX_MUTE_S)]
    ) = Field(alias="for", description="How long: a duration (s, m, h, d) or seconds; 1 minute to 30 days.")
    reason: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=80)


class MuteResult(BaseModel):
    vendor: str
    muted_until: datetime
    reason: str | None = None
    by: str


class UnmuteResult(BaseModel):
    vendor: str
    ended: int


DOCUMENTS: tuple[type[BaseModel], ...] = (
    Error,
    IncidentSummary,
    Acknowledgement,
    Incident,
    TimelineEvent,
    AlertDelivery,
    IncidentDetail,
    LatencyBucket,
    Latency,
    Vendor,
    VendorList,
    IncidentList,
    AckRequest,
    MuteRequest,
    MuteResult,
    UnmuteResult,
)
"""Every document of the API, in the order the OpenAPI document lists them."""
