"""Email alerts, transport only: :class:`SmtpMailer` sends a rendered message over SMTP.

Rendering is :mod:`watcher.alerts.email_render` (pure); this module opens one
connection per message, with TLS and login as configured, and turns every
failure into a :class:`TransportError` with words an admin can act on:
permanent when a retry cannot help (login refused, recipient unknown,
configuration contradictions), transient otherwise. The password never appears
in a message or a log line. :meth:`SmtpMailer.send_message` is the one public way
to send any message (an alert, the weekly report) through it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl as ssl_lib
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from watcher.alerts.email_render import render_email, render_html, render_subject, render_text
from watcher.alerts.email_text import (
    HEADER_UNSAFE,
    clean_text,
    header_value,
    safe_url,
    sender_domain,
)
from watcher.alerts.model import Alert, Delivery, TransportError

__all__ = [
    "SmtpMailer",
    "clean_text",
    "header_value",
    "render_email",
    "render_html",
    "render_subject",
    "render_text",
    "safe_url",
    "sender_domain",
]
"""The renderers are re-exported: callers that send email import them from here, as before the split."""

log = logging.getLogger("watcher.alerts.email")


# -- sending -----------------------------------------------------------------------------------


_STAGES = {
    "connect": "while connecting",
    "ehlo": "at EHLO",
    "starttls": "at STARTTLS",
    "login": "while logging in",
    "send": "while sending the message",
}

_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")


def _server_text(resp: bytes | str | None, limit: int = 200) -> str:
    if isinstance(resp, bytes):
        resp = resp.decode("utf-8", "replace")
    return header_value(resp or "", limit)


class SmtpMailer:
    """Sends alerts through one SMTP server (submission port 587 with STARTTLS, or 465 with implicit TLS).

    One connection per message: alerts are rare, and a fresh connection means
    no half-dead session to detect. ``timeout`` bounds the connect and each
    SMTP command. Credentials are sent only over TLS. ``ssl_context`` is for
    tests (trust a private CA); the default verifies the server against the
    system's CA bundle and checks its host name.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        starttls: bool,
        ssl: bool,
        timeout: float,
        sender: str,
        ssl_context: ssl_lib.SSLContext | None = None,
    ):
        self.host = host
        self.port = int(port)
        self.username = username or None
        self._password = password or None
        self.starttls = bool(starttls)
        self.ssl = bool(ssl)
        self.timeout = float(timeout)
        self.sender = sender
        self.ssl_context = ssl_context if ssl_context is not None else ssl_lib.create_default_context()

    def __repr__(self) -> str:  # never the password
        mode = "ssl" if self.ssl else ("starttls" if self.starttls else "plain")
        return f"SmtpMailer({self.host}:{self.port}, {mode}, user={self.username!r}, sender={self.sender!r})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def envelope_sender(self) -> str:
        return parseaddr(header_value(self.sender))[1]

    # -- public ---------------------------------------------------------------------------

    def send(self, alert: Alert, recipients: list[str], seq: int | str) -> Delivery:
        """Render an alert for ``recipients`` and send it; ``seq`` is 0 for the first message about this
        incident to these recipients (see :func:`~watcher.alerts.email_render.message_id`)."""
        to = self.recipients(recipients)
        msg = render_email(
            alert, sender=self.sender, recipients=to, seq=seq, domain=sender_domain(self.sender)
        )
        return self.send_message(msg, to)

    def send_message(self, msg: EmailMessage, recipients: list[str]) -> Delivery:
        """Send one finished message (an alert, the weekly report) over one fresh connection.

        Returns ``Delivery(ref={"message_id": "<…>"})`` (plus ``"refused"`` when the
        server took the message for some recipients only: that counts as delivered
        and is logged as a warning). Raises :class:`TransportError`.
        """
        to = self.recipients(recipients)
        mid = str(msg["Message-ID"])
        smtp = self._open()
        try:
            refused = smtp.send_message(msg, from_addr=self.envelope_sender, to_addrs=to)
        except Exception as err:
            smtp.close()
            raise self._error(err, "send", to) from None
        self._quit(smtp)
        ref: dict[str, Any] = {"message_id": mid}
        if refused:
            shown = ", ".join(f"{r} ({c} {_server_text(t, 100)})" for r, (c, t) in refused.items())
            log.warning(
                "SMTP server %s accepted message %s for some recipients only; refused: %s",
                self.where,
                mid,
                self._scrub(shown),
            )
            ref["refused"] = sorted(refused)
        log.info("email %s sent to %s via %s", mid, ", ".join(to), self.where)
        return Delivery(ref=ref)

    def check(self) -> str:
        """Connect, EHLO, STARTTLS and log in, then QUIT: what ``watcher check`` shows. Raises TransportError."""
        smtp = self._open()
        tls = "TLS" if self.ssl else ("STARTTLS" if self.starttls else "no TLS")
        self._quit(smtp)
        if self.username:
            return f"{self.where} accepted login as {self.username} ({tls})"
        return f"{self.where} answered ({tls}, no login configured)"

    # -- internals --------------------------------------------------------------------------

    def _preflight(self) -> None:
        if not self.host:
            raise TransportError("email.host is not set", permanent=True)
        addr = self.envelope_sender
        if not _ADDRESS.fullmatch(addr or "") or HEADER_UNSAFE.search(self.sender or ""):
            raise TransportError(
                f"email.sender {header_value(self.sender, 100)!r} is not an email address", permanent=True
            )
        if self.username:
            if HEADER_UNSAFE.search(self.username):
                raise TransportError("email.username contains control characters", permanent=True)
            if not (self.ssl or self.starttls):
                raise TransportError(
                    "email.starttls is off: refusing to send the password in clear "
                    "(turn email.starttls on, or email.ssl for port 465)",
                    permanent=True,
                )
            if not self._password:
                raise TransportError(
                    f"email.username is {self.username!r} but no password is set: "
                    "set WATCHER_EMAIL__PASSWORD or email.password_file",
                    permanent=True,
                )

    def recipients(self, recipients: list[str]) -> list[str]:
        """Bare addresses ("Ana <ana@x>" → "ana@x"), deduplicated; anything else is a permanent error."""
        out: list[str] = []
        for given in recipients or []:
            text = str(given)
            addr = parseaddr(text)[1] if not HEADER_UNSAFE.search(text) else ""
            if not _ADDRESS.fullmatch(addr):
                raise TransportError(
                    f"{header_value(text, 100)!r} is not an email address: check the route's emails",
                    permanent=True,
                )
            if addr.lower() not in (o.lower() for o in out):
                out.append(addr)
        if not out:
            raise TransportError("no email recipient given", permanent=True)
        return out

    def _open(self) -> smtplib.SMTP:
        """A connected (TLS where configured), greeted and logged-in session, or TransportError."""
        self._preflight()
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            if self.ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            stage = "ehlo"
            smtp.ehlo()
            if self.starttls and not self.ssl:
                stage = "starttls"
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username:
                stage = "login"
                smtp.login(self.username, self._password or "")
            return smtp
        except Exception as err:
            if smtp is not None:
                smtp.close()
            raise self._error(err, stage, []) from None

    def _quit(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):  # the work is done; a rude goodbye does not matter
            smtp.close()

    def _scrub(self, text: str) -> str:
        if self._password and self._password in text:
            text = text.replace(self._password, "***")
        return text

    def _reach(self, why: str) -> TransportError:
        return TransportError(f"cannot reach SMTP server {self.where} ({why})")

    def _error(self, err: BaseException, stage: str, recipients: list[str]) -> TransportError:
        te = self._map(err, stage, recipients)
        te.message = self._scrub(te.message)
        te.args = (te.message,)
        return te

    def _map(self, err: BaseException, stage: str, recipients: list[str]) -> TransportError:  # noqa: C901
        where, user = self.where, self.username
        during = _STAGES.get(stage, stage)
        hint = ""
        if stage == "connect" and self.port == 465 and not self.ssl:
            hint = ": port 465 expects email.ssl = true"
        elif stage == "connect" and self.port == 587 and self.ssl:
            hint = ": port 587 expects email.ssl = false with email.starttls = true"
        who = ", ".join(recipients) or "the recipients"
        if isinstance(err, TransportError):
            return err
        if isinstance(err, smtplib.SMTPAuthenticationError):
            text = f"{err.smtp_code} {_server_text(err.smtp_error)}"
            if 400 <= err.smtp_code < 500:
                return TransportError(
                    f"SMTP login for user {user} failed for now at {where} ({text}); will retry"
                )
            return TransportError(
                f"SMTP login refused for user {user}: check email.username / WATCHER_EMAIL__PASSWORD ({text})",
                permanent=True,
            )
        if isinstance(err, smtplib.SMTPNotSupportedError):
            if stage == "starttls":
                return TransportError(
                    f"SMTP server {where} does not offer STARTTLS: for implicit TLS (port 465) set "
                    "email.ssl = true; to send unencrypted on a trusted network set email.starttls = false "
                    "and no email.username",
                    permanent=True,
                )
            if stage == "login":
                return TransportError(
                    f"SMTP server {where} does not offer login (AUTH) on this connection: "
                    "unset email.username if it needs none, or check email.port / email.starttls",
                    permanent=True,
                )
            return TransportError(f"SMTP server {where} does not support {stage}: {err}", permanent=True)
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            parts = [f"{r} ({c} {_server_text(t, 120)})" for r, (c, t) in err.recipients.items()]
            transient = any(400 <= c < 500 for c, _ in err.recipients.values())
            if transient:
                return TransportError(
                    f"SMTP server {where} deferred recipient(s) {', '.join(parts)}; will retry"
                )
            return TransportError(
                f"SMTP server {where} refused recipient(s) {', '.join(parts)}: check the address in the route",
                permanent=True,
            )
        if isinstance(err, smtplib.SMTPSenderRefused):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            low = text.lower()
            if code >= 500 and "starttls" in low:
                return TransportError(
                    f"SMTP server {where} requires STARTTLS ({code} {text}): set email.starttls = true",
                    permanent=True,
                )
            if code >= 500 and ("auth" in low or code == 530):
                return TransportError(
                    f"SMTP server {where} requires a login ({code} {text}): "
                    "set email.username and WATCHER_EMAIL__PASSWORD",
                    permanent=True,
                )
            if code >= 500:
                return TransportError(
                    f"SMTP server {where} refused the sender {err.sender} ({code} {text}): "
                    "set email.sender to an address this account may send as",
                    permanent=True,
                )
            return TransportError(
                f"SMTP server {where} deferred the sender {err.sender} ({code} {text}); will retry"
            )
        if isinstance(err, smtplib.SMTPDataError):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            if code >= 500:
                return TransportError(
                    f"SMTP server {where} rejected the message to {who} ({code} {text})", permanent=True
                )
            return TransportError(
                f"SMTP server {where} deferred the message to {who} ({code} {text}); will retry"
            )
        if isinstance(err, smtplib.SMTPConnectError):
            return self._reach(f"greeting refused: {err.smtp_code} {_server_text(err.smtp_error)}")
        if isinstance(err, smtplib.SMTPServerDisconnected):
            cause = err.__cause__ or err.__context__  # smtplib wraps read errors, timeouts included
            if isinstance(cause, TimeoutError):
                return self._reach(f"no answer within {self.timeout:g}s {during}{hint}")
            if isinstance(cause, OSError) and cause.strerror:
                return self._reach(f"{cause.strerror.lower()} {during}")
            return self._reach(f"connection closed by the server {during}")
        if isinstance(err, smtplib.SMTPResponseException):
            code, text = err.smtp_code, _server_text(err.smtp_error)
            return TransportError(
                f"SMTP server {where} answered {code} {text} {during}", permanent=code >= 500
            )
        if isinstance(err, ssl_lib.SSLCertVerificationError):
            why = err.verify_message or err.reason or "verification failed"
            return TransportError(
                f"TLS certificate of {self.host} not trusted ({why}): fix the server's certificate "
                "or make its CA trusted on this machine"
            )
        if isinstance(err, ssl_lib.SSLError):
            why = err.reason or err.__class__.__name__
            return TransportError(
                f"TLS with SMTP server {where} failed ({why}): check email.ssl (port 465) / "
                "email.starttls (port 587) match the port"
            )
        if isinstance(err, socket.gaierror):
            return self._reach("host name not found")
        if isinstance(err, ConnectionRefusedError):
            return self._reach("connection refused")
        if isinstance(err, TimeoutError):
            return self._reach(f"no answer within {self.timeout:g}s {during}{hint}")
        if isinstance(err, OSError):
            return self._reach(err.strerror or err.__class__.__name__)
        if isinstance(err, smtplib.SMTPException):
            return TransportError(f"SMTP error with {where} {during}: {_server_text(str(err))}")
        if isinstance(err, UnicodeError):
            return TransportError(
                f"the SMTP server {where} cannot take a non-ASCII address ({err.__class__.__name__})",
                permanent=True,
            )
        raise err
