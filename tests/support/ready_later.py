"""An HTTP server on 127.0.0.1 that becomes ready late, for health-wait tests (in-process, a thread)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ReadyLaterServer:
    """``/health`` answers 503 for the first ``not_ready`` calls, then 200; ``/v1/models`` lists ``model``;
    ``/version`` answers like vLLM. With ``api_key`` set, ``/v1/*`` needs ``Authorization: Bearer <key>``."""

    def __init__(self, not_ready: int = 3, model: str = "m", api_key: str | None = None) -> None:
        self.not_ready, self.model, self.api_key = not_ready, model, api_key
        self.health_calls = 0
        self.auth_headers: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/health":
                    owner.health_calls += 1
                    self._send(503 if owner.health_calls <= owner.not_ready else 200, {})
                elif self.path == "/version":
                    self._send(200, {"version": "0.32.0"})
                elif self.path == "/v1/models":
                    auth = self.headers.get("Authorization")
                    owner.auth_headers.append(auth)
                    if owner.api_key and auth != f"Bearer {owner.api_key}":
                        self._send(401, {"error": "unauthorized"})
                        return
                    entry = {"id": owner.model, "object": "model", "max_model_len": 4096, "root": "/models/x"}
                    self._send(200, {"object": "list", "data": [entry]})
                else:
                    self._send(404, {})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReadyLaterServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
