"""RSS/Atom feed parser: real Statuspage and Flashduty feeds, synthetic GitHub Atom and incident.io RSS."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from fixtures_path import read_fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.model import IncidentScope, IncidentStatus
from watcher.sources import feeds
from watcher.sources.base import ParseError, SourceOptions

PARSE_RSS = "feeds/statuspage-parse-history-2014-trimmed.rss"
DEEPSEEK_RSS = "feeds/deepseek-flashduty-history-2026-09-24.rss"
GITHUB_ATOM = "synthetic/statuspage-history-github-style.atom"
INCIDENTIO_RSS = "synthetic/incidentio-feed.rss"


def _parse(body: bytes):
    return feeds.parse(body, SourceOptions())


def _rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://status.example.com</link>" + "".join(items) + "</channel></rss>"
    ).encode()


def _item(title: str, link: str, guid: str, date: str, description: str) -> str:
    esc = description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
        f"<pubDate>{date}</pubDate><description>{esc}</description></item>"
    )


def test_statuspage_history_rss_updates_parsed_oldest_first_with_years_from_pubdate():
    snap = _parse(read_fixture(PARSE_RSS))
    assert snap.incident_scope is IncidentScope.HISTORY
    assert snap.page_name == "Parse Status - Incident History"
    assert [r.key for r in snap.incidents] == ["lzf7mjchpy20", "x7yb1mmd4721", "p9hy357zjvb3"]
    first = snap.incidents[0]
    assert first.title == "Elevated error rates"
    assert first.url == "http://status.parse.com/incidents/lzf7mjchpy20"
    assert first.status is IncidentStatus.RESOLVED
    assert [u.status for u in first.updates] == [
        IncidentStatus.INVESTIGATING,
        IncidentStatus.IDENTIFIED,
        IncidentStatus.RESOLVED,
    ]
    # "Jan  1, 08:17 PST" with the year of pubDate (2014), PST = UTC-8
    assert first.updates[0].created_at == datetime(2014, 1, 1, 16, 17, tzinfo=UTC)
    assert first.updates[0].body == "We are currently investigating an issue with elevated error rates."
    assert first.started_at == datetime(2014, 1, 1, 16, 17, tzinfo=UTC)
    assert first.updated_at == datetime(2014, 1, 1, 17, 9, tzinfo=UTC)
    assert first.resolved_at == datetime(2014, 1, 1, 17, 9, tzinfo=UTC)

    analytics = snap.incidents[1]
    assert IncidentStatus.UPDATE in [u.status for u in analytics.updates]
    assert "We're working" in analytics.updates[1].body  # &apos; unescaped

    postmortem = snap.incidents[2]
    assert postmortem.status is IncidentStatus.POSTMORTEM
    assert postmortem.resolved_at == datetime(2013, 12, 24, 19, 21, tzinfo=UTC)
    # The postmortem was posted two days after the item's pubDate (which did not move).
    assert postmortem.updates[-1].created_at == datetime(2013, 12, 26, 18, 22, tzinfo=UTC)
    assert "\n" in postmortem.updates[-1].body and len(postmortem.updates[-1].body) > 3000


def test_update_ids_are_stable_and_distinct():
    a = _parse(read_fixture(PARSE_RSS))
    b = _parse(read_fixture(PARSE_RSS))
    assert a == b
    ids = [u.id for r in a.incidents for u in r.updates]
    assert len(ids) == len(set(ids))


def test_flashduty_status_line_components_and_bilingual_titles():
    snap = _parse(read_fixture(DEEPSEEK_RSS))
    assert len(snap.incidents) == 32
    assert all(r.status is IncidentStatus.RESOLVED for r in snap.incidents)
    r = snap.incidents[0]
    assert r.key == "7023110499287"  # from /incidents/<id>, same id as the urn guid
    assert r.title == "DeepSeek 网页/API 性能下降（DeepSeek Web/API Degraded Performance）"
    assert r.components == (
        "DeepSeek V4.1 Flash API服务(API Service)",
        "DeepSeek V4 Pro API服务(API Service)",
        "对话服务(Chatservice)",
    )
    (u,) = r.updates
    english = "The incident has been resolved and service has been restored."
    assert u.body == "本次问题已解决，服务已恢复。\n\n" + english
    # pubDate "Thu, 24 Sep 2026 06:20:46 +0800"
    assert r.updated_at == datetime(2026, 9, 23, 22, 20, 46, tzinfo=UTC)
    assert u.created_at == r.updated_at


def test_github_style_atom_with_var_dates_and_a_maintenance():
    snap = _parse(read_fixture(GITHUB_ATOM))
    (inc,) = snap.incidents
    assert inc.key == "k3x9v7q2m1zp"  # from the alternate link, not the tag: id
    assert inc.status is IncidentStatus.RESOLVED
    assert inc.updates[0].created_at == datetime(2026, 9, 30, 17, 5, tzinfo=UTC)
    assert inc.updated_at == datetime(2026, 9, 30, 18, 42, 11, tzinfo=UTC)
    (maint,) = snap.maintenances
    assert maint.is_maintenance and maint.status is IncidentStatus.COMPLETED
    assert [u.status for u in maint.updates] == [
        IncidentStatus.SCHEDULED,
        IncidentStatus.IN_PROGRESS,
        IncidentStatus.COMPLETED,
    ]


def test_incidentio_feed_key_from_double_slash_link_and_live_states_dropped():
    snap = _parse(read_fixture(INCIDENTIO_RSS))
    first, second = snap.incidents
    assert first.key == "01M2VA7X37P1ASADSNZ1CG4N4D"
    assert first.status is IncidentStatus.MONITORING
    assert first.components == ("Responses", "Chat Completions")
    assert first.updates[0].body == "A fix has been implemented and we are monitoring the recovery."
    assert second.status is IncidentStatus.RESOLVED
    assert second.resolved_at == datetime(2026, 9, 28, 9, 41, 12, tzinfo=UTC)


def test_republished_item_with_new_update_yields_new_latest_update():
    link = "https://status.example.com/incidents/abc123"
    p1 = "<p><small>Sep 30, 17:05 UTC</small><br><strong>Investigating</strong> - Looking into it.</p>"
    p2 = "<p><small>Sep 30, 17:40 UTC</small><br><strong>Monitoring</strong> - Fix deployed.</p>"
    before = _parse(_rss(_item("Errors", link, link, "Wed, 30 Sep 2026 17:05:00 +0000", p1))).incidents[0]
    after = _parse(_rss(_item("Errors", link, link, "Wed, 30 Sep 2026 17:40:00 +0000", p2 + p1))).incidents[0]
    assert before.key == after.key == "abc123"
    assert after.updates[0] == before.updates[0]  # same update, same id
    assert after.updates[-1].id not in {u.id for u in before.updates}
    assert after.status is IncidentStatus.MONITORING


def test_status_line_item_republished_with_same_guid_changes_update_id():
    link = "https://status.deepseek.com/incidents/1"
    one = _item("x", link, "urn:flashduty:change:1", "Thu, 24 Sep 2026 06:00:00 +0800",
                "<p><strong>Status:</strong> investigating</p><p>Looking.</p>")
    two = _item("x", link, "urn:flashduty:change:1", "Thu, 24 Sep 2026 07:00:00 +0800",
                "<p><strong>Status:</strong> resolved</p><p>Fixed.</p>")
    a = _parse(_rss(one)).incidents[0]
    b = _parse(_rss(two)).incidents[0]
    assert a.key == b.key == "1"
    assert a.updates[0].id != b.updates[0].id
    assert b.status is IncidentStatus.RESOLVED


def test_betterstack_per_update_items_merge_into_one_report():
    link = "https://status.example.com/incidents/98765"
    body = _rss(
        _item("[Resolved] Database Connection Issues", link, link + "#update-2",
              "Mon, 15 Jan 2024 11:45:00 +0000", "The database connection issue has been resolved."),
        _item("[Investigating] Database Connection Issues", link, link + "#update-1",
              "Mon, 15 Jan 2024 10:30:00 +0000", "We're investigating connection issues."),
    )
    (r,) = _parse(body).incidents
    assert r.key == "98765"
    assert r.title == "Database Connection Issues"
    assert r.status is IncidentStatus.RESOLVED
    assert [u.status for u in r.updates] == [IncidentStatus.INVESTIGATING, IncidentStatus.RESOLVED]
    assert r.started_at == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_plain_item_is_unknown_with_description_as_extra_text():
    body = _rss(_item("Service issue", "https://aws.example/x", "guid-42", "Mon, 15 Jan 2024 11:45:00 +0000",
                      "<div>Increased <b>error rates</b> in us-east-1.</div>"))
    (r,) = _parse(body).incidents
    assert r.key == "guid-42"
    assert r.status is IncidentStatus.UNKNOWN
    assert r.extra_text == "Increased error rates in us-east-1."
    assert r.updates == ()


def test_item_with_missing_fields_has_none_values():
    (r,) = _parse(_rss("<item><title>Only a title</title></item>")).incidents
    assert r.url is None and r.updated_at is None and r.started_at is None
    assert r.key.startswith("feed-")


def test_feed_truncated_inside_an_item_keeps_what_was_read():
    body = _rss(_item("Whole", "https://s.example/incidents/a1", "g1", "Mon, 15 Jan 2024 11:45:00 GMT", "x"))
    cut = body[: body.index(b"</channel>")] + b"<item><title>Half"
    keys = [r.key for r in _parse(cut).incidents]
    assert "a1" in keys


def test_empty_valid_feed_has_no_incidents():
    snap = _parse(_rss())
    assert snap.incidents == () and snap.maintenances == ()


def test_bozo_feed_with_entries_is_still_read():
    link = "https://s.example/incidents/z9"
    body = _rss(_item("Broken & feed", link, "g", "Mon, 15 Jan 2024 11:45:00 +0000", "x"))
    snap = _parse(body)  # the bare "&" makes it not well-formed
    assert [r.key for r in snap.incidents] == ["z9"]


ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<rss version=\"2.0\"><channel><item><title>&lol3;</title></item></channel></rss>"
)


@pytest.mark.parametrize(
    "body",
    [
        ENTITY_BOMB,
        ENTITY_BOMB.decode().encode("utf-16"),
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel>'
        b"<item><title>&x;</title></item></channel></rss>",
        b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        b'{"page": {}, "incidents": []}',
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>trunc',
        b"\xff\xfe\xfa\x00garbage",
        b"",
        b"<a>" * 100_000,
        b"[" * 100_000,
        b"/etc/passwd",
    ],
    ids=["entity-bomb", "entity-bomb-utf16", "external-entity", "html", "json", "truncated", "bad-utf8",
         "empty", "deep-xml", "deep-json", "file-name"],
)
def test_bad_input_raises_parse_error(body):
    with pytest.raises(ParseError):
        _parse(body)


@given(st.binary(max_size=600))
@settings(max_examples=200)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        _parse(body)


_fragment = st.sampled_from(
    ["<p>", "</p>", "<small>", "</small>", "<strong>", "</strong>", "<b>", "</b>", "<br>", "<ul>", "<li>",
     "</li>", "Status:", "Resolved", " - ", "Affected components", ":", ",", "(Operational)",
     "Jan 99, 25:61 XYZ", "Dec 31, 23:59 PST", "Feb 29, 10:00 UTC", "\n", "&amp;", "x"]
)


@given(
    title=st.text(max_size=40),
    link=st.sampled_from(
        ["", "https://s.io/incidents/a", "https://s.io//incidents/", "javascript:x", "/incidents/"]
    ),
    date=st.sampled_from(["", "garbage", "Mon, 01 Jan 0001 00:00:00 +0100", "9999-12-31T23:59:59-01:00",
                          "Wed, 30 Sep 2026 17:05:00 +0000"]),
    description=st.lists(_fragment | st.text(max_size=10), max_size=25).map("".join),
)
@settings(max_examples=200)
def test_random_items_only_raise_parse_error(title, link, date, description):
    title = title.replace("&", "").replace("<", "")
    with contextlib.suppress(ParseError):
        _parse(_rss(_item(title, link, link, date, description)))
