"""A real SMTP server on 127.0.0.1 for tests: aiosmtpd in a thread, TLS from a throw-away trustme CA.

Modes: ``"plain"`` (no TLS at all), ``"starttls"`` (STARTTLS offered; AUTH only
after it, as real submission servers do), ``"smtps"`` (implicit TLS from the
first byte, port-465 style; AUTH offered at once since the link is encrypted).
AUTH LOGIN and PLAIN accept ``username``/``password``.

Every accepted message is kept in :attr:`SmtpServer.messages` as a
:class:`Received` (envelope + parsed :class:`email.message.EmailMessage`).

Knobs to make it fail, settable while it runs:

- :meth:`SmtpServer.reject_rcpt` — answer ``RCPT TO`` with 550 (permanent) or 451
  (transient), for one address or all;
- ``reject_auth = True`` — 535 to any login, even a right one;
- ``data_reply = "554 …"`` — refuse the message after ``DATA``;
- ``drop_at = "connect" | "EHLO" | "STARTTLS" | "AUTH" | "MAIL" | "RCPT" | "DATA"`` —
  close the TCP connection without a word when that command arrives;
- ``stall_at`` — same names: never answer (for client timeouts).

The fixtures ``smtp_server`` (a STARTTLS server with a login) and
``smtp_server_factory`` (any mode, via :class:`ServerPool`) live in
``tests/conftest.py``; or use ``with SmtpServer(...) as server:`` directly. The client trusts the CA through
:meth:`SmtpServer.client_context` or the PEM file at :attr:`SmtpServer.ca_file`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

Mode = Literal["plain", "starttls", "smtps"]
HOST = "127.0.0.1"
USERNAME = "bob"
PASSWORD = "s3cret-Pa55"


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    login: str | None
    """The user it logged in as, None if it did not."""
    tls: bool


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.server._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.server.data_reply:
            return self.server.data_reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self.server._lock:
            self.server.messages.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=msg,  # type: ignore[arg-type]
                    raw=raw,
                    login=login,
                    tls=bool(server._tls_protocol is not None or self.server.mode == "smtps"),
                )
            )
        return "250 2.0.0 Message accepted for delivery"


class _SMTP(SMTP):
    """aiosmtpd's SMTP with the failure knobs and implicit-TLS awareness."""

    def __init__(self, handler: _Handler, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.knobs = handler.server

    def connection_made(self, transport):
        if self.knobs.mode == "smtps" and transport.get_extra_info("ssl_object") is not None:
            # aiosmtpd only counts STARTTLS as TLS; a 465-style link is encrypted from the start
            self._auth_require_tls = False
        super().connection_made(transport)

    async def _break(self, command: str) -> None:
        if self.knobs.drop_at == command:
            self.knobs.dropped += 1
            assert self.transport is not None
            self.transport.abort()
            await asyncio.Event().wait()  # cancelled by connection_lost
        if self.knobs.stall_at == command:
            await asyncio.sleep(3600)  # cancelled when the client gives up or the server stops

    async def _handle_client(self) -> None:
        await self._break("connect")
        await super()._handle_client()

    async def smtp_EHLO(self, hostname: str):  # noqa: N802
        await self._break("EHLO")
        await super().smtp_EHLO(hostname)

    async def smtp_STARTTLS(self, arg: str):  # noqa: N802
        await self._break("STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str):  # noqa: N802
        await self._break("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):  # noqa: N802
        await self._break("MAIL")
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):  # noqa: N802
        await self._break("RCPT")
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str):  # noqa: N802
        await self._break("DATA")
        await super().smtp_DATA(arg)


class _Controller(Controller):
    """Controller that accepts port 0 (the OS picks a free port) and builds :class:`_SMTP`."""

    def factory(self):
        return _SMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """See the module docstring."""

    def __init__(
        self,
        mode: Mode = "starttls",
        *,
        username: str | None = USERNAME,
        password: str | None = PASSWORD,
        auth_required: bool = False,
        require_starttls: bool = False,
        ca: trustme.CA | None = None,
    ):
        self.mode: Mode = mode
        self.username = username
        self.password = password
        self.ca = ca or trustme.CA()
        self._cert = self.ca.issue_cert(HOST, "localhost")
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[str, str]] = []
        """(mechanism, login) of every AUTH, right or wrong."""
        self._lock = threading.Lock()
        self._rcpt: dict[str | None, str] = {}
        self.reject_auth = False
        self.data_reply: str | None = None
        self.drop_at: str | None = None
        self.stall_at: str | None = None
        self.dropped = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-ca-")
        self.ca_file = Path(self._tmp.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

        kwargs: dict[str, Any] = {
            "hostname": HOST,
            "port": 0,
            "server_hostname": "mx.test",
            "auth_required": auth_required,
            "auth_require_tls": True,
            "authenticator": self._authenticate,
            "require_starttls": require_starttls,
            "timeout": 30,
        }
        if mode == "starttls":
            kwargs["tls_context"] = self.server_context()
        elif mode == "smtps":
            kwargs["ssl_context"] = self.server_context()
        self._controller = _Controller(_Handler(self), **kwargs)

    # -- TLS ----------------------------------------------------------------------------------

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A default (verifying) client context that also trusts this server's CA."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        try:
            self._controller.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- knobs --------------------------------------------------------------------------------

    def reject_rcpt(self, address: str | None = None, code: int = 550, text: str | None = None) -> None:
        """Refuse ``RCPT TO:<address>`` (every address when None) with ``code``: 550 permanent, 451 transient."""
        default = "5.1.1 Recipient address rejected: no such user" if code >= 500 else "4.7.1 Try again later"
        self._rcpt[address.lower() if address else None] = f"{code} {text or default}"

    def _rcpt_reply(self, address: str) -> str | None:
        return self._rcpt.get(address.lower(), self._rcpt.get(None))

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        self.auth_attempts.append((mechanism, login))
        ok = (
            not self.reject_auth
            and self.username is not None
            and login == self.username
            and password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    # -- reading what arrived -----------------------------------------------------------------

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """The messages once at least ``count`` have arrived (they normally have when ``send`` returns)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")


class ServerPool:
    """``with ServerPool() as make: make("smtps")`` — servers started on demand, all stopped on exit."""

    def __init__(self) -> None:
        self.servers: list[SmtpServer] = []

    def __call__(self, mode: Mode = "starttls", **kwargs: Any) -> SmtpServer:
        server = SmtpServer(mode, **kwargs).start()
        self.servers.append(server)
        return server

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers:
            server.stop()
