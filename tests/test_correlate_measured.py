"""Findings of watcher's own detectors merge with status-page evidence into one incident."""

from __future__ import annotations

from test_correlate import World, report

from watcher.incidents.model import EventType
from watcher.model import IncidentKind, IncidentScope, IncidentStatus, Report, Snapshot


def finding(kind=IncidentKind.OUTAGE, key="probe:outage:2026-10-07T13:00", reason="3 probes failed in a row"):
    return Report(
        key=key,
        title=f"Anthropic API: {kind.value} seen by watcher's probes",
        status=IncidentStatus.INVESTIGATING,
        kind=kind,
        reason=reason,
        components=("API",),
    )


def probe(*findings: Report) -> Snapshot:
    return Snapshot(incidents=tuple(findings), incident_scope=IncidentScope.ACTIVE)


def vendor(*reports: Report) -> Snapshot:
    return Snapshot(incidents=tuple(reports), incident_scope=IncidentScope.ACTIVE)


def test_a_finding_opens_an_incident_of_the_measured_kind_with_its_evidence():
    w = World()
    w.apply("probe", probe(finding(IncidentKind.HALLUCINATION_SPIKE, reason="12 of the last 40 wrong")))
    [inc] = w.open()
    assert inc.kind is IncidentKind.HALLUCINATION_SPIKE, "the text classifier does not overrule a measurement"
    assert inc.reason == "12 of the last 40 wrong"
    assert inc.origin == "probe"
    assert w.types(inc) == [EventType.OPENED]


def test_a_cleared_finding_resolves_the_incident_it_opened():
    w = World()
    w.apply("probe", probe(finding()))
    w.apply("probe", probe())
    [inc] = w.incidents
    assert not inc.is_open
    assert w.types(inc)[-1] is EventType.RESOLVED


def test_a_worse_finding_changes_the_kind_of_the_same_incident():
    w = World()
    w.apply("probe", probe(finding(IncidentKind.DEGRADATION, reason="p50 TTFT 2.1x baseline")))
    w.apply("probe", probe(finding(IncidentKind.OUTAGE, reason="3 probes failed in a row")))
    [inc] = w.open()
    assert inc.kind is IncidentKind.OUTAGE
    assert EventType.KIND_CHANGED in w.types(inc)


def test_a_finding_joins_an_open_vendor_incident_and_never_closes_it():
    w = World()
    w.apply("summary", vendor(report()))
    w.apply("probe", probe(finding()))
    [inc] = w.open()
    assert len(w.incidents) == 1, "one incident, not one per signal"
    assert w.types(inc)[-1] is EventType.MEASURED
    w.apply("probe", probe())  # our probes recover first
    [still] = w.open()
    assert still is inc, "the vendor still calls it open"
    assert w.types(inc)[-1] is EventType.MEASURED
    w.apply("summary", vendor())
    assert w.open() == []


def test_the_vendors_incident_adopts_the_one_our_probes_opened_first():
    w = World()
    w.apply("probe", probe(finding()))
    w.apply("summary", vendor(report(title="Elevated errors on the Claude API")))
    [inc] = w.open()
    assert len(w.incidents) == 1
    assert EventType.MERGED in w.types(inc)
    assert inc.origin == "vendor"
    w.apply("probe", probe())
    assert w.open() == [inc], "our probes clearing does not close what the vendor still lists"
