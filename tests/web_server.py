"""watcher's web app served for tests: uvicorn in a thread, on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import threading
import time

from watcher.web.app import make_server


class WebServer:
    """A Starlette app under uvicorn in a thread; ``url`` and ``port`` once started."""

    def __init__(self, app):
        self.server = make_server(app, "127.0.0.1", 0)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def start(self) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
