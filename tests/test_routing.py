"""Routing, quiet hours, on-call rotation and signed links: pure functions, pinned by examples."""

from __future__ import annotations

from datetime import UTC, date, datetime
from datetime import time as t

from watcher.alerts.oncall import rotation
from watcher.alerts.routing import quiet_until, route_matches, targets_for
from watcher.alerts.signing import ack_link, verify_ack
from watcher.config import OnCallPerson, OnCallSettings, QuietHours, RouteSettings


def route(**kw) -> RouteSettings:
    return RouteSettings.model_validate(kw)


def test_route_matches_vendor_kind_and_component_wildcards():
    r = route(
        name="copy",
        vendors=["openai", "anthropic"],
        kinds=["outage", "degradation"],
        components=["*API*"],
        slack_channels=["C1"],
    )
    assert route_matches(r, "openai", "outage", ["Chat Completions API"])
    assert not route_matches(r, "openai", "outage", ["ChatGPT"])
    assert not route_matches(r, "mistral", "outage", ["API"])
    assert not route_matches(r, "openai", "api_change", ["API"])
    # the vendor named no component: a broad alert beats silence
    assert route_matches(r, "openai", "degradation", [])


def test_targets_are_deduplicated_across_routes_first_route_wins():
    routes = [
        route(name="all", slack_channels=["C1"], emails=["team@example.com"]),
        route(name="oncall", kinds=["outage"], slack_channels=["C1", "C2"]),
    ]
    got = {(rt.target.key, rt.route) for rt in targets_for(routes, "openai", "outage", [])}
    assert got == {("slack:C1", "all"), ("email:team@example.com", "all"), ("slack:C2", "oncall")}
    assert {rt.target.key for rt in targets_for(routes, "openai", "degradation", [])} == {
        "slack:C1",
        "email:team@example.com",
    }


def test_a_routes_targets_table_adds_to_the_usual_fields_each_target_once():
    """``targets.slack`` means the same as ``slack_channels``; both together are one list, in order."""
    r = route(name="m", slack_channels=["C1"], targets={"slack": ["C1", "C2"], "email": ["a@example.com"]})
    assert [rt.target.key for rt in targets_for([r], "openai", "outage", [])] == [
        "slack:C1",
        "slack:C2",
        "email:a@example.com",
    ]
    assert r.channel_targets("slack") == ["C1", "C2"] and r.slack_channels == ["C1"], "written as it was"


def test_a_targets_table_with_a_malformed_channel_name_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="channel name 'Pager!'"):
        route(name="m", targets={"Pager!": ["x"]})


def test_quiet_hours_across_midnight_in_the_routes_time_zone():
    q = QuietHours(start=t(22, 0), end=t(7, 0), timezone="Europe/Paris")
    # 21:30 UTC = 22:30 in Paris (CET, winter): held until 07:00 Paris = 06:00 UTC next day
    assert quiet_until(q, "degradation", datetime(2026, 11, 23, 21, 30, tzinfo=UTC)) == datetime(
        2026, 11, 24, 6, 0, tzinfo=UTC
    )
    # 03:00 UTC = 04:00 Paris: held until 06:00 UTC the same day
    assert quiet_until(q, "degradation", datetime(2026, 11, 24, 3, 0, tzinfo=UTC)) == datetime(
        2026, 11, 24, 6, 0, tzinfo=UTC
    )
    # 12:00 UTC: not quiet
    assert quiet_until(q, "degradation", datetime(2026, 11, 24, 12, 0, tzinfo=UTC)) is None


def test_quiet_hours_let_allowed_kinds_through():
    q = QuietHours(start=t(22, 0), end=t(7, 0), timezone="UTC", kinds_allowed=["outage"])
    night = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert quiet_until(q, "outage", night) is None
    assert quiet_until(q, "degradation", night) is not None


def test_quiet_hours_end_on_a_dst_night():
    # Europe/Paris springs forward on 2026-03-29 at 02:00 → 03:00. A window ending 02:30 local
    # does not exist that night; the held alert goes out at the first real minute after it.
    q = QuietHours(start=t(23, 0), end=t(2, 30), timezone="Europe/Paris")
    at = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 Paris, inside the window
    end = quiet_until(q, "degradation", at)
    assert end is not None
    assert end == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    # on the autumn night (clocks go back 03:00 → 02:00 on 2026-10-25) the window still ends once
    q2 = QuietHours(start=t(22, 0), end=t(7, 0), timezone="Europe/Paris")
    end2 = quiet_until(q2, "degradation", datetime(2026, 10, 24, 21, 0, tzinfo=UTC))
    assert end2 == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)  # 07:00 CET


def test_rotation_moves_every_shift_and_escalates_in_order():
    people = [OnCallPerson(name=n) for n in ("Ana", "Ben", "Chloé")]
    oc = OnCallSettings(people=people, rotation_days=7, rotation_start=date(2026, 11, 2))
    assert [p.name for p in rotation(oc, datetime(2026, 11, 3, tzinfo=UTC))] == ["Ana", "Ben", "Chloé"]
    assert [p.name for p in rotation(oc, datetime(2026, 11, 10, tzinfo=UTC))] == ["Ben", "Chloé", "Ana"]
    assert [p.name for p in rotation(oc, datetime(2026, 11, 17, tzinfo=UTC))] == ["Chloé", "Ana", "Ben"]
    assert rotation(OnCallSettings(), datetime(2026, 11, 3, tzinfo=UTC)) == []


def test_signed_ack_link_verifies_and_cannot_be_forged_or_reused_late():
    link = ack_link("https://watcher.example/", "s3cret", 42, ttl=3600, now=1_000_000)
    assert link.startswith("https://watcher.example/ack/42?e=1003600&s=")
    sig = link.rsplit("s=", 1)[1]
    assert verify_ack("s3cret", 42, "1003600", sig, now=1_000_100)
    assert not verify_ack("s3cret", 43, "1003600", sig, now=1_000_100)  # another incident
    assert not verify_ack("s3cret", 42, "1999999", sig, now=1_000_100)  # extended expiry
    assert not verify_ack("other", 42, "1003600", sig, now=1_000_100)  # another secret
    assert not verify_ack("s3cret", 42, "1003600", sig, now=1_003_601)  # expired
    assert not verify_ack("s3cret", 42, "soon", sig, now=1_000_100)


def test_min_impact_keeps_minor_incidents_off_a_route_but_not_unrated_ones():
    r = route(name="execs", min_impact="major", emails=["cmo@example.com"])
    assert not route_matches(r, "openai", "degradation", [], "minor")
    assert route_matches(r, "openai", "outage", [], "major")
    assert route_matches(r, "openai", "outage", [], "critical")
    assert route_matches(r, "openai", "outage", [], None), "unrated: a broad alert beats silence"
