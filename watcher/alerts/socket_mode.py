"""Slack Socket Mode: button clicks for a watcher that has no public URL.

With an app-level token (``xapp-…``, scope ``connections:write``) watcher opens
an outbound WebSocket to Slack and receives the same ``block_actions`` payloads
the HTTP endpoint would get; no request URL, no signing secret, nothing to
expose. slack-sdk's built-in client (no extra dependency) owns the connection and
reconnects by itself.

Threading: the client calls our listener on its own worker threads, while the
store and the alert engine belong to the daemon's event loop. The listener
therefore only acknowledges the envelope (Slack wants that within 3 s) and
hands the payload to the loop with ``call_soon_threadsafe``.

Slash commands (``slash_commands`` envelopes, the same fields as the HTTP form
body) run on the loop too, through the same :class:`SlashCommands` as the web
app. The listener waits for its answer (at most the commands' budget, under
Slack's 3 s) and acknowledges the envelope with it as the response payload when
the envelope ``accepts_response_payload``; otherwise it acknowledges empty and
posts the answer to the command's ``response_url``. Work that takes longer
answers "working on it" and finishes through ``response_url``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

from watcher.alerts.actions import clicker_id, handle_block_actions, refusal_text, wants_permission
from watcher.alerts.commands import CommandRequest, Reply, SlashCommands

log = logging.getLogger("watcher.alerts.socket_mode")
_sdk_log = logging.getLogger("watcher.alerts.socket_mode.sdk")
_sdk_log.setLevel(logging.WARNING)  # the sdk logs every frame at DEBUG/INFO


class SocketModeBridge:
    def __init__(
        self,
        engine,
        loop: asyncio.AbstractEventLoop,
        app_token: str,
        *,
        base_url: str = "https://slack.com/api/",
        bot_token: str | None = None,
        commands: SlashCommands | None = None,
    ):
        from slack_sdk import WebClient
        from slack_sdk.socket_mode import SocketModeClient

        self.engine = engine
        self.loop = loop
        self.handled = 0
        self.commands_answered = 0
        self.commands = commands or SlashCommands(engine, base_url=base_url, bot_token=bot_token)
        self.client = SocketModeClient(
            app_token=app_token,
            web_client=WebClient(token=bot_token, base_url=base_url, retry_handlers=[]),
            logger=_sdk_log,
            auto_reconnect_enabled=True,
        )
        self.client.socket_mode_request_listeners.append(self._on_request)

    def __repr__(self) -> str:  # never the tokens
        return "SocketModeBridge()"

    def start(self) -> None:
        """Connect; a failure is logged and retried by the client, never fatal to the daemon."""
        try:
            self.client.connect()
        except Exception as e:
            log.error("Slack Socket Mode could not connect (%s): buttons will not work until it does", e)
        else:
            log.info("Slack Socket Mode connected: button clicks arrive over the WebSocket")

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a half-open socket may fail; we are stopping anyway
            log.debug("Socket Mode close failed", exc_info=True)

    def _on_request(self, client, req) -> None:
        from slack_sdk.socket_mode.response import SocketModeResponse

        if req.type == "slash_commands":
            self._on_command(client, req)
            return
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        if req.type != "interactive":
            return
        payload: dict[str, Any] = req.payload if isinstance(req.payload, dict) else {}
        may_mute = None
        if wants_permission(payload):  # Mute 1h: the admin rule of /watcher mute, checked on this thread
            may_mute = self.commands.permissions.check(clicker_id(payload))
            if not may_mute[0]:
                log.warning("Slack Socket Mode: %s may not mute vendors: Mute 1h refused", clicker_id(payload))
                url = payload.get("response_url") if isinstance(payload.get("response_url"), str) else None
                self.commands.post_response(url, Reply(refusal_text(may_mute, self.engine.settings.alerts.locale)))
        self.loop.call_soon_threadsafe(self._apply, payload, may_mute)

    def _apply(self, payload: dict[str, Any], may_mute: tuple[bool, str] | None = None) -> None:
        try:
            self.handled += len(handle_block_actions(self.engine, payload, may_mute=may_mute))
        except Exception:  # one odd payload must not end the listener
            log.exception("Slack Socket Mode: could not apply an action")

    def _on_command(self, client, req) -> None:
        """Answer a slash command within Slack's limit (runs on a Socket Mode worker thread)."""
        from slack_sdk.socket_mode.response import SocketModeResponse

        payload: dict[str, Any] = req.payload if isinstance(req.payload, dict) else {}
        command = CommandRequest.from_payload(payload)
        future = asyncio.run_coroutine_threadsafe(self.commands.answer(command), self.loop)
        try:
            reply: Reply | None = future.result(timeout=self.commands.budget + 0.5)
        except concurrent.futures.TimeoutError:  # the loop is busy: answer later, from wherever it ends
            reply = None
            future.add_done_callback(lambda f: self._late(f, command))
        except Exception:
            log.exception("Slack Socket Mode: a slash command failed")
            reply = Reply("Something went wrong running that command; the details are in watcher's log.")
        if req.accepts_response_payload:
            shown = reply or Reply("⏳ Working on it: the answer follows here.", interim=True)
            client.send_socket_mode_response(
                SocketModeResponse(envelope_id=req.envelope_id, payload=shown.payload())
            )
        else:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            if reply is not None and not reply.interim:  # an interim answer's result is posted when ready
                self.commands.post_response(command.response_url, reply)
        self.commands_answered += 1

    def _late(self, future: concurrent.futures.Future, command: CommandRequest) -> None:
        """The answer came after the envelope was acknowledged: post it, off the loop thread."""
        if future.cancelled() or future.exception() is not None:
            return
        reply = future.result()
        if not reply.interim:  # an interim one means answer() posts the result itself
            threading.Thread(
                target=self.commands.post_response, args=(command.response_url, reply), daemon=True
            ).start()
