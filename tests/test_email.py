"""Email alerts against a real SMTP server (aiosmtpd on 127.0.0.1, TLS from a trustme CA)."""

from __future__ import annotations

import dataclasses
import logging
import smtplib
import socket
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from smtp_server import PASSWORD, USERNAME

from watcher.alerts.email import SmtpMailer, render_email
from watcher.alerts.model import Alert, AlertAction, Alternative, TransportError

SENDER = "Watcher alerts <alerts@watcher.example.com>"
TO = "ana@marketing.example.com"
PLAYBOOK = """## What to do now

1. Pause the **ChatGPT** step of the newsletter workflow.
2. Draft with [Claude](https://claude.ai/new) instead, using the saved prompts.

- Tell the team in #marketing.
"""


def make_alert(**changes) -> Alert:
    alert = Alert(
        incident_id=42,
        vendor="openai",
        vendor_name="OpenAI",
        title="Elevated error rates on ChatGPT",
        kind="outage",
        reason='"error rates" in title',
        state="open",
        status="investigating",
        action=AlertAction.OPENED,
        impact="major",
        components=("ChatGPT", "API"),
        latest_update="We are investigating elevated error rates for ChatGPT users.",
        event_text="new incident",
        url="https://status.openai.com/incidents/01ABC",
        status_page="https://status.openai.com/",
        started_at="2026-09-15T14:03:00+00:00",
        playbook=PLAYBOOK,
        alternatives=(
            Alternative("anthropic", "Anthropic", "operational", "all components operational", 820.0),
            Alternative("google", "Google Gemini", "degraded", "Elevated latency on Gemini API", 2400.0),
        ),
        ack_url="https://watcher.example.com/ack/42?sig=abc&exp=1",
        incident_url="https://watcher.example.com/incidents/42",
    )
    return dataclasses.replace(alert, **changes)


def mailer(server, **changes) -> SmtpMailer:
    kwargs = dict(
        username=USERNAME,
        password=PASSWORD,
        starttls=server.mode == "starttls",
        ssl=server.mode == "smtps",
        timeout=5.0,
        sender=SENDER,
        ssl_context=server.client_context(),
    )
    kwargs.update(changes)
    return SmtpMailer(server.host, server.port, **kwargs)


def parts(received):
    msg = received.message
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    return text, html


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def html_tags(html: str) -> TagCollector:
    p = TagCollector()
    p.feed(html)
    p.close()
    return p


SAFE_TAGS = {
    "html", "head", "meta", "title", "body", "table", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6",
    "p", "a", "blockquote", "div", "strong", "em", "ul", "ol", "li", "code", "pre", "hr", "br",
}  # fmt: skip


def assert_html_safe(html: str) -> TagCollector:
    """Only the tags we emit; no event handler attribute; every link http(s)."""
    p = html_tags(html)
    for tag, attrs in p.tags:
        assert tag in SAFE_TAGS, f"unexpected <{tag}> in the HTML part"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler {name} on <{tag}>"
            if name in ("href", "src"):
                assert value and value.startswith(("https://", "http://")), f"{name}={value!r}"
    return p


# -- delivery ---------------------------------------------------------------------------------


def test_alert_is_delivered_over_starttls_with_login_and_both_parts_intact(smtp_server):
    alert = make_alert()

    delivery = mailer(smtp_server).send(alert, [TO], 0)

    [got] = smtp_server.messages
    assert got.login == USERNAME and got.tls
    assert got.mail_from == "alerts@watcher.example.com"
    assert got.rcpt_tos == [TO]
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == "[watcher] OpenAI outage: Elevated error rates on ChatGPT (open)"
    assert msg["From"] == SENDER and msg["To"] == TO
    assert msg["Message-ID"] == delivery.ref["message_id"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["List-Id"] is None and msg["Precedence"] is None
    assert msg["Date"].datetime.tzinfo is not None

    text, html = parts(got)
    # the plain part stands on its own
    assert "OpenAI · Outage · open" in text
    assert "Elevated error rates on ChatGPT" in text
    assert "> We are investigating elevated error rates for ChatGPT users." in text
    # the playbook as text to read: no Markdown marks (finding 8 of issue 16: raw ### and ** were sent)
    assert "What to do now\n=============" in text and "## " not in text and "**" not in text
    assert "1. Pause the ChatGPT step of the newsletter workflow." in text
    assert "2. Draft with Claude (https://claude.ai/new) instead, using the saved prompts." in text
    assert "https://watcher.example.com/ack/42?sig=abc&exp=1" in text
    assert "https://status.openai.com/incidents/01ABC" in text
    assert "Anthropic: operational" in text and "Google Gemini: degraded" in text
    assert "Affected:" in text and "ChatGPT, API" in text
    assert "Sep 15, 2026, 14:03 UTC" in text

    p = assert_html_safe(html)
    links = {a.get("href"): i for i, (t, a) in enumerate(p.tags) if t == "a"}
    assert "https://watcher.example.com/ack/42?sig=abc&exp=1" in links  # &amp; decoded by the parser
    assert ">Acknowledge</a>" in html
    assert "https://claude.ai/new" in links  # Markdown link converted
    assert "https://status.openai.com/incidents/01ABC" in links
    assert "https://watcher.example.com/incidents/42" in links
    assert "<strong>ChatGPT</strong>" in html and "<ol" in html
    assert "<blockquote" in html and "We are investigating elevated error rates" in html
    assert "Anthropic" in html and "operational" in html and "820 ms" in html
    assert "Sep 15, 2026, 14:03 UTC" in html


def test_implicit_tls_delivery_on_an_smtps_port(smtp_server_factory):
    server = smtp_server_factory("smtps")
    mailer(server).send(make_alert(), [TO], 0)
    [got] = server.messages
    assert got.login == USERNAME and got.tls


def test_unauthenticated_relay_without_tls_still_delivers(smtp_server_factory):
    server = smtp_server_factory("plain")
    m = mailer(server, username=None, password=None, starttls=False, ssl=False)
    m.send(make_alert(), [TO], 0)
    [got] = server.messages
    assert got.login is None and not got.tls


def test_resolved_alert_shows_times_and_duration_and_no_ack_button(smtp_server):
    alert = make_alert(
        state="resolved",
        status="resolved",
        action=AlertAction.RESOLVED,
        resolved_at="2026-09-15T15:15:00Z",
        duration="1h 12m",
    )
    mailer(smtp_server).send(alert, [TO], 3)
    text, html = parts(smtp_server.messages[0])
    assert "Resolved:" in text and "Sep 15, 2026, 15:15 UTC" in text and "1h 12m" in text
    assert "Acknowledge" not in text and ">Acknowledge</a>" not in html
    assert "Sep 15, 2026, 15:15 UTC" in html and "1h 12m" in html


# -- threading ----------------------------------------------------------------------------------


def test_follow_ups_thread_under_a_stable_root_message_id(smtp_server):
    m = mailer(smtp_server)
    refs = [m.send(make_alert(action=a), [TO], seq).ref["message_id"] for seq, a in enumerate(
        [AlertAction.OPENED, AlertAction.UPDATED, AlertAction.ACKNOWLEDGED]
    )]  # fmt: skip
    first, second, third = (r.message for r in smtp_server.messages)

    root = first["Message-ID"]
    assert root == refs[0]
    assert root.startswith("<watcher-incident-42-") and root.endswith("@watcher.example.com>")
    assert first["In-Reply-To"] is None and first["References"] is None
    assert not first["Subject"].startswith("Re:")
    assert len(set(refs)) == 3
    for n, follow in ((1, second), (2, third)):
        assert follow["Message-ID"] == root[:-1].replace("@", f"-{n}@") + ">"
        assert follow["In-Reply-To"] == root
        assert follow["References"] == root
        assert follow["Subject"].startswith("Re: [watcher] OpenAI outage: ")

    # deterministic: a re-send after a crash is the same message to mail clients
    assert m.send(make_alert(), [TO], 0).ref["message_id"] == root
    assert m.send(make_alert(), [TO], 2).ref["message_id"] == third["Message-ID"]


def test_message_ids_differ_per_recipient_and_sender_but_not_per_content():
    def mid(**kw):
        args = dict(sender=SENDER, recipients=[TO], seq=0, domain="watcher.example.com")
        args.update(kw)
        alert = args.pop("alert", make_alert())
        return render_email(alert, **args)["Message-ID"]

    base = mid()
    assert mid(alert=make_alert(title="Another title", state="resolved")) == base
    assert mid(recipients=["bob@marketing.example.com"]) != base
    assert mid(sender="alerts@watcher.example.com") == base  # same address, display name aside
    assert mid(sender="other-install@watcher.example.com") != base
    assert mid(alert=make_alert(incident_id=43)) != base


def test_test_alert_with_a_string_seq_is_a_standalone_message(smtp_server):
    mailer(smtp_server).send(make_alert(action=AlertAction.TEST), [TO], "test-20261123101500")
    msg = smtp_server.messages[0].message
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Message-ID"].endswith("-test-20261123101500@watcher.example.com>")
    assert msg["Subject"].startswith("[watcher test] OpenAI outage: ")


# -- subjects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({}, "[watcher] OpenAI outage: Elevated error rates on ChatGPT (open)"),
        (
            {"action": AlertAction.ACKNOWLEDGED, "acknowledged_by": "Ana"},
            "[watcher] OpenAI outage: Elevated error rates on ChatGPT (acknowledged by Ana)",
        ),
        (
            {"action": AlertAction.RESOLVED, "state": "resolved", "duration": "1h 12m"},
            "[watcher] OpenAI outage: Elevated error rates on ChatGPT (resolved after 1h 12m)",
        ),
        (
            {"kind": "degradation", "action": AlertAction.REMINDER},
            "[watcher] OpenAI degradation: Elevated error rates on ChatGPT (open, not acknowledged yet)",
        ),
        (
            {
                "kind": "maintenance",
                "is_maintenance": True,
                "status": "scheduled",
                "title": "Database upgrade",
                "scheduled_for": "2026-09-20T02:00:00Z",
                "scheduled_until": "2026-09-20T04:00:00Z",
            },
            "[watcher] OpenAI maintenance scheduled: Database upgrade "
            "(Sep 20, 2026, 02:00 UTC → Sep 20, 2026, 04:00 UTC)",
        ),
        (
            {
                "kind": "maintenance",
                "is_maintenance": True,
                "status": "in_progress",
                "title": "Database upgrade",
            },
            "[watcher] OpenAI maintenance in progress: Database upgrade",
        ),
    ],
    ids=["open", "acknowledged", "resolved", "reminder", "maintenance-scheduled", "maintenance-in-progress"],
)
def test_subject_carries_vendor_kind_and_state(smtp_server, changes, subject):
    mailer(smtp_server).send(make_alert(**changes), [TO], 0)
    assert smtp_server.messages[0].message["Subject"] == subject


def test_long_titles_are_cut_to_a_one_line_subject():
    msg = render_email(
        make_alert(title="Ünïcode outage " * 60), sender=SENDER, recipients=[TO], seq=1, domain="x.example"
    )
    subject = msg["Subject"]
    assert len(subject) <= 200
    assert subject.startswith("Re: [watcher] OpenAI outage: Ünïcode outage")
    assert subject.endswith("… (open)")
    assert "\n" not in subject and "\r" not in subject


# -- untrusted text ------------------------------------------------------------------------------

EVIL = '<script>alert(1)</script> <!channel> "><img src=x onerror=alert(2)> &amp;'


def test_vendor_text_never_reaches_the_html_part_unescaped(smtp_server):
    alert = make_alert(
        title=f"Outage {EVIL}",
        latest_update=f"Update {EVIL}",
        event_text=f"changed {EVIL}",
        reason=f"because {EVIL}",
        components=(f"API {EVIL}", "<b>Chat</b>"),
        vendor_name=f"Open{EVIL}",
        acknowledged_by=f"Ana {EVIL}",
        ack_reason=f"on it {EVIL}",
        impact=EVIL,
        status=EVIL,
        started_at=EVIL,
        duration=EVIL,
        alternatives=(Alternative("x", f"Alt {EVIL}", EVIL, EVIL, None),),
        playbook=f"## Plan {EVIL}\n\n<div onclick=alert(3)>raw html</div>\n\n- item {EVIL}\n",
    )
    mailer(smtp_server).send(alert, [TO], 0)
    text, html = parts(smtp_server.messages[0])

    for needle in ("<script", "<!channel>", '"><img', "<img", "<div onclick", "<b>Chat"):
        assert needle not in html, needle
    p = assert_html_safe(html)
    shown = "".join(p.text)
    # …and they are shown as text, not dropped
    assert "<script>alert(1)</script>" in shown and "<!channel>" in shown and '"><img src=x' in shown
    assert "&amp;" in shown  # an entity in vendor text is shown as typed, not decoded
    assert "<div onclick=alert(3)>raw html</div>" in shown
    # the plain part keeps the text as it is (it is never rendered as HTML)
    assert "<script>alert(1)</script>" in text


@pytest.mark.parametrize(
    "bad",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "//evil.example/ack",
        "/relative/ack",
        "https://",
    ],
)
def test_non_http_urls_are_never_linked(smtp_server, bad):
    alert = make_alert(
        url=bad,
        ack_url=bad,
        status_page=bad,
        incident_url=bad,
        playbook=f"Try [this]({bad}) or <{bad}> or [that](https://ok.example/).",
    )
    mailer(smtp_server).send(alert, [TO], 0)
    text, html = parts(smtp_server.messages[0])

    p = assert_html_safe(html)
    hrefs = [a["href"] for t, a in p.tags if t == "a"]
    assert hrefs == ["https://ok.example/"]
    assert ">Acknowledge</a>" not in html
    assert "Acknowledge" not in text and "Links:" not in text


def test_quotes_in_urls_cannot_break_out_of_an_attribute(smtp_server):
    bad = 'https://ok.example/"><script>alert(1)</script>'
    alert = make_alert(url=bad, ack_url=bad, playbook=f"Try [this]({bad}) or <{bad}>.")
    mailer(smtp_server).send(alert, [TO], 0)
    text, html = parts(smtp_server.messages[0])
    assert "<script" not in html
    p = assert_html_safe(html)
    hrefs = [a["href"] for t, a in p.tags if t == "a"]
    # our own links refuse such a URL; Markdown links keep it, percent-encoded
    assert ">Acknowledge</a>" not in html
    assert hrefs and all(h.startswith("https://ok.example/%22") and '"' not in h for h in hrefs[:2])


def test_header_injection_through_the_title_adds_no_header(smtp_server):
    alert = make_alert(title="Down\r\nBcc: evil@attacker.example\r\nX-Evil: 1\n\nbody")
    mailer(smtp_server).send(alert, [TO], 0)
    [got] = smtp_server.messages
    assert got.rcpt_tos == [TO]
    assert got.message["Bcc"] is None and got.message["X-Evil"] is None
    head = got.raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith((b"bcc:", b"x-evil:")) for line in head.split(b"\r\n"))
    assert got.message["Subject"] == (
        "[watcher] OpenAI outage: Down Bcc: evil@attacker.example X-Evil: 1 body (open)"
    )


# -- failures -----------------------------------------------------------------------------------


def test_wrong_password_is_permanent_and_never_quoted(smtp_server):
    m = mailer(smtp_server, password="hunter2-wrong")
    with pytest.raises(TransportError) as err:
        m.send(make_alert(), [TO], 0)
    assert err.value.permanent
    assert "SMTP login refused for user bob" in err.value.message
    assert "WATCHER_EMAIL__PASSWORD" in err.value.message
    assert "hunter2" not in str(err.value) and "hunter2" not in repr(m)
    assert smtp_server.messages == []
    assert smtp_server.auth_attempts  # it did try, over TLS


def test_server_refusing_every_login_is_permanent(smtp_server):
    smtp_server.reject_auth = True
    with pytest.raises(TransportError) as err:
        mailer(smtp_server).check()
    assert err.value.permanent and "535" in err.value.message
    assert PASSWORD not in err.value.message


def test_unknown_recipient_550_is_permanent_and_named(smtp_server):
    smtp_server.reject_rcpt(TO, 550)
    with pytest.raises(TransportError) as err:
        mailer(smtp_server).send(make_alert(), [TO], 0)
    assert err.value.permanent
    assert TO in err.value.message and "550" in err.value.message


def test_recipient_deferred_451_is_transient(smtp_server):
    smtp_server.reject_rcpt(TO, 451)
    with pytest.raises(TransportError) as err:
        mailer(smtp_server).send(make_alert(), [TO], 0)
    assert not err.value.permanent
    assert TO in err.value.message and "451" in err.value.message


def test_partial_recipient_refusal_counts_as_delivered_with_a_warning(smtp_server, caplog):
    smtp_server.reject_rcpt("gone@marketing.example.com", 550)
    with caplog.at_level(logging.WARNING, logger="watcher.alerts.email"):
        delivery = mailer(smtp_server).send(make_alert(), [TO, "gone@marketing.example.com"], 0)
    [got] = smtp_server.messages
    assert got.rcpt_tos == [TO]
    assert delivery.ref["refused"] == ["gone@marketing.example.com"]
    assert "gone@marketing.example.com" in caplog.text


@pytest.mark.parametrize(
    ("reply", "permanent"), [("554 5.7.1 Spam detected", True), ("451 4.3.0 Try later", False)]
)
def test_message_refused_after_data(smtp_server, reply, permanent):
    smtp_server.data_reply = reply
    with pytest.raises(TransportError) as err:
        mailer(smtp_server).send(make_alert(), [TO], 0)
    assert err.value.permanent is permanent
    assert reply.split()[0] in err.value.message and TO in err.value.message


def test_server_down_is_transient():
    port = free_port()
    m = SmtpMailer(
        "127.0.0.1", port, username=None, password=None, starttls=True, ssl=False, timeout=2, sender=SENDER
    )
    with pytest.raises(TransportError) as err:
        m.send(make_alert(), [TO], 0)
    assert not err.value.permanent
    assert err.value.message == f"cannot reach SMTP server 127.0.0.1:{port} (connection refused)"


def test_unknown_host_is_transient():
    m = SmtpMailer(
        "smtp.does-not-exist.invalid", 587, username=None, password=None, starttls=True, ssl=False,
        timeout=2, sender=SENDER,
    )  # fmt: skip
    with pytest.raises(TransportError) as err:
        m.check()
    assert not err.value.permanent
    assert err.value.message.startswith("cannot reach SMTP server smtp.does-not-exist.invalid:587 (")


@pytest.mark.parametrize("stage", ["MAIL", "DATA"])
def test_dropped_connection_is_transient(smtp_server, stage):
    smtp_server.drop_at = stage
    with pytest.raises(TransportError) as err:
        mailer(smtp_server).send(make_alert(), [TO], 0)
    assert not err.value.permanent
    assert err.value.message.startswith(f"cannot reach SMTP server 127.0.0.1:{smtp_server.port} (")
    assert smtp_server.dropped == 1 and smtp_server.messages == []


def test_silent_server_times_out_as_transient(smtp_server):
    smtp_server.stall_at = "connect"
    with pytest.raises(TransportError) as err:
        mailer(smtp_server, timeout=0.5).send(make_alert(), [TO], 0)
    assert not err.value.permanent
    assert "no answer within 0.5s" in err.value.message


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_untrusted_certificate_is_a_transient_tls_error(smtp_server_factory, mode):
    server = smtp_server_factory(mode)
    m = mailer(server, ssl_context=None)  # the system CAs do not know the test CA
    with pytest.raises(TransportError) as err:
        m.send(make_alert(), [TO], 0)
    assert not err.value.permanent
    assert err.value.message.startswith("TLS certificate of 127.0.0.1 not trusted (")
    assert server.auth_attempts == [] and server.messages == []


def test_password_is_never_sent_without_tls(smtp_server_factory):
    server = smtp_server_factory("plain")
    m = mailer(server, starttls=False, ssl=False)
    with pytest.raises(TransportError) as err:
        m.send(make_alert(), [TO], 0)
    assert err.value.permanent
    assert "email.starttls is off: refusing to send the password in clear" in err.value.message
    assert server.auth_attempts == [] and server.messages == []


def test_starttls_required_but_not_offered_is_permanent(smtp_server_factory):
    server = smtp_server_factory("plain")
    with pytest.raises(TransportError) as err:
        mailer(server, username=None, password=None, starttls=True).send(make_alert(), [TO], 0)
    assert err.value.permanent
    assert "does not offer STARTTLS" in err.value.message
    assert server.messages == []


def test_check_logs_in_and_sends_nothing(smtp_server):
    result = mailer(smtp_server).check()
    assert result == f"127.0.0.1:{smtp_server.port} accepted login as bob (STARTTLS)"
    assert smtp_server.auth_attempts and smtp_server.messages == []


# -- the test server itself ----------------------------------------------------------------------


def test_test_server_offers_auth_login_and_plain_only_after_starttls(smtp_server):
    for mechanism in ("LOGIN", "PLAIN"):
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as c:
            c.ehlo()
            assert not c.has_extn("auth")
            assert c.docmd("AUTH", mechanism)[0] == 538  # encryption required
            c.starttls(context=smtp_server.client_context())
            c.ehlo()
            assert c.has_extn("auth")
            c.user, c.password = USERNAME, PASSWORD
            auth = c.auth_login if mechanism == "LOGIN" else c.auth_plain
            assert c.auth(mechanism, auth)[0] == 235
    assert [m for m, _ in smtp_server.auth_attempts] == ["LOGIN", "PLAIN"]


# -- configuration ------------------------------------------------------------------------------


def test_transports_from_settings_builds_a_working_mailer(smtp_server_factory, tmp_path, monkeypatch):
    from watcher.alerts.deliver import Transports
    from watcher.config import load_settings

    server = smtp_server_factory("smtps")
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[email]\nhost = "{server.host}"\nport = {server.port}\nssl = true\n'
        f'username = "{USERNAME}"\nsender = "{SENDER}"\ntimeout = 5\n'
    )
    monkeypatch.setenv("WATCHER_EMAIL__PASSWORD", PASSWORD)
    # how an admin trusts a private CA without code: OpenSSL's own variable
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))

    mailer_ = Transports.from_settings(load_settings(cfg)).mailer

    assert isinstance(mailer_, SmtpMailer)
    assert (mailer_.host, mailer_.port, mailer_.ssl, mailer_.username, mailer_.sender) == (
        server.host,
        server.port,
        True,
        USERNAME,
        SENDER,
    )
    mailer_.send(make_alert(), [TO], 0)
    assert server.messages[0].login == USERNAME


def test_render_is_pure_and_dated_by_the_caller():
    now = datetime(2026, 9, 15, 14, 5, tzinfo=UTC)
    args = dict(sender=SENDER, recipients=[TO], seq=1, domain="watcher.example.com", now=now)
    a, b = render_email(make_alert(), **args), render_email(make_alert(), **args)
    assert a["Date"] == "Tue, 15 Sep 2026 14:05:00 +0000"
    for part_a, part_b in zip(a.iter_parts(), b.iter_parts(), strict=True):
        assert part_a.get_content() == part_b.get_content()
    assert [(k, str(v)) for k, v in a.items()] == [(k, str(v)) for k, v in b.items()]


def test_recipients_are_bare_addresses_and_garbage_is_refused(smtp_server):
    m = mailer(smtp_server)
    m.send(make_alert(), [f"Ana <{TO}>", TO.upper()], 0)
    assert smtp_server.messages[0].rcpt_tos == [TO]
    assert smtp_server.messages[0].message["To"] == TO
    for bad in ["not-an-address", f"{TO}\r\nBcc: evil@x.example", ""]:
        with pytest.raises(TransportError) as err:
            m.send(make_alert(), [bad], 0)
        assert err.value.permanent
    assert len(smtp_server.messages) == 1
