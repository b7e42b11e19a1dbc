"""A real HTTP server on 127.0.0.1 standing in for vendors' status pages.

Tests set what each path answers (body, status, headers, delay) and may change it
between polls, the way a status page changes during an incident. The server
honours ETag/If-None-Match like Atlassian Statuspage does, and counts requests.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = True
    gzip: bool = False
    delay: float = 0.0
    """Seconds before answering (a hanging server)."""
    drip: float = 0.0
    """Seconds between each byte of the body (a slowloris server)."""


class VendorServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.conditional_hits: Counter[str] = Counter()
        self.request_headers: dict[str, dict[str, str]] = {}
        """The headers of the last request to each path."""
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with outer._lock:
                    route = outer.routes.get(path)
                    outer.hits[path] += 1
                    outer.request_headers[path] = dict(self.headers)
                if route is None:
                    return self._send(404, b"<html>not found</html>", "text/html")
                if route.delay:
                    time.sleep(route.delay)
                body = route.body
                headers = dict(route.headers)
                if route.etag and route.status == 200:
                    tag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    if self.headers.get("If-None-Match") == tag:
                        with outer._lock:
                            outer.conditional_hits[path] += 1
                        return self._send(304, b"", None, headers)
                if route.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self._send(route.status, body, route.content_type, headers, route.drip)

            def _send(self, status, body, ctype, headers=None, drip=0.0):
                try:
                    self.send_response(status)
                    if ctype:
                        self.send_header("Content-Type", ctype)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if drip:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def set(self, path: str, body: bytes | str, **kw) -> None:
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self.routes[path] = Route(body=body, **kw)

    def start(self) -> VendorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
