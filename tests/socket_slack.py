"""Slack's side of Socket Mode for tests: ``apps.connections.open`` over HTTP plus a WebSocket server.

slack-sdk's built-in Socket Mode client uses plain sockets off port 443, so a ws://
URL on 127.0.0.1 works. The stand-in sends hello, then the envelopes it was given,
and records every acknowledgement the client sends back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websockets


class SlackSocket:
    """Slack's side of Socket Mode on 127.0.0.1: ``apps.connections.open`` plus a WebSocket.

    Sends hello, then the given envelopes, and records every acknowledgement (the whole
    message: ``envelope_id`` and any ``payload``).
    """

    def __init__(self, envelopes: list[dict]):
        self.envelopes = envelopes
        self.acks: list[dict] = []
        self.auth: list[str] = []
        """The Authorization header of each apps.connections.open call (the app-level token)."""
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
            for env in self.envelopes:
                await ws.send(json.dumps(env))
            try:
                async for msg in ws:
                    if isinstance(msg, str) and msg.startswith("{"):
                        data = json.loads(msg)
                        if data.get("envelope_id"):
                            self.acks.append(data)
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


def run_bridge(make_bridge, done, *, timeout: float = 10.0):
    """Run a Socket Mode bridge on a loop of its own until ``done()`` holds (or ``timeout``), then close it.

    ``make_bridge(loop)`` builds the bridge on that running loop (the engine's writes happen there);
    returns the closed bridge, for its counters.
    """

    async def go():
        bridge = make_bridge(asyncio.get_running_loop())
        await asyncio.to_thread(bridge.start)
        try:
            for _ in range(int(timeout / 0.05)):
                if done():
                    break
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(bridge.close)
        return bridge

    return asyncio.run(go())
