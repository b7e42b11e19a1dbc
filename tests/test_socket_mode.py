"""Slack Socket Mode: a button click arriving over a real WebSocket acknowledges the incident.

Stand-ins on 127.0.0.1: an HTTP server answering ``apps.connections.open`` with
a ws:// URL (slack-sdk's built-in client uses plain sockets off port 443), and a
`websockets` server that plays Slack: hello, then one interactive envelope, and
records the client's acknowledgement of that envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets
from alerting import AlertHarness

from watcher.alerts.socket_mode import SocketModeBridge

APP_TOKEN = "xapp-1-test"


class SlackSocket:
    def __init__(self, payload: dict):
        self.payload = payload
        self.acks: list[str] = []
        self.auth: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)
        outer = self

        class Api(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.auth.append(self.headers.get("Authorization", ""))
                ok = self.path.endswith("/apps.connections.open")
                body = {"ok": True, "url": f"ws://127.0.0.1:{outer.ws_port}/link"} if ok else {"ok": False}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.api_url = f"http://127.0.0.1:{self.api.server_address[1]}/api/"

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def handler(ws):
            await ws.send(json.dumps({"type": "hello", "num_connections": 1}))
            await ws.send(
                json.dumps(
                    {
                        "envelope_id": "env-1",
                        "type": "interactive",
                        "accepts_response_payload": False,
                        "payload": self.payload,
                    }
                )
            )
            try:
                async for msg in ws:
                    if isinstance(msg, str) and msg.startswith("{"):
                        env = json.loads(msg).get("envelope_id")
                        if env:
                            self.acks.append(env)
            except websockets.ConnectionClosed:
                pass

        async def main():
            self.server = await websockets.serve(handler, "127.0.0.1", 0)
            self.ws_port = self.server.sockets[0].getsockname()[1]
            self.ready.set()
            await asyncio.Future()

        with contextlib.suppress(RuntimeError):
            self.loop.run_until_complete(main())

    def close(self):
        self.api.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def harness(vendor_server, tmp_path):
    h = AlertHarness(vendor_server, tmp_path)
    yield h
    h.close()


def test_a_click_over_socket_mode_acknowledges_and_is_acked_to_slack(harness):
    harness.outage()
    harness.poll()
    [inc] = harness.store.open_incidents("anthropic")
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana"},
        "actions": [{"action_id": "ack", "value": str(inc.id), "type": "button"}],
    }
    slack = SlackSocket(payload)

    async def run():
        bridge = SocketModeBridge(harness.engine, asyncio.get_running_loop(), APP_TOKEN, base_url=slack.api_url)
        await asyncio.to_thread(bridge.start)
        try:
            for _ in range(200):
                if harness.store.ack(inc.id) is not None and slack.acks:
                    break
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(bridge.close)
        return bridge.handled

    try:
        handled = asyncio.run(run())
    finally:
        slack.close()
    ack = harness.store.ack(inc.id)
    assert ack is not None and (ack.by, ack.via) == ("ana", "slack")
    assert slack.acks == ["env-1"], "every envelope is acknowledged to Slack"
    assert handled == 1
    assert slack.auth and slack.auth[0] == f"Bearer {APP_TOKEN}"


def test_an_unknown_vendor_in_a_mute_click_is_refused(harness):
    from watcher.alerts.actions import handle_block_actions

    lines = handle_block_actions(
        harness.engine,
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "actions": [{"action_id": "mute_1h", "value": "<!channel>"}],
        },
    )
    assert lines and "refused" in lines[0]
    assert harness.store.active_mutes(harness.clock()) == []
