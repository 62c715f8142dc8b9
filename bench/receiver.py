"""
A webhook receiver for the benchmarks, in its own process: C{python -m bench.receiver}.

It answers every C{POST} with 204 at once and notes, per event, the time from the event's C{at}
(written by the server in the transaction of the fact) to the request's arrival.  C{GET /stats}
returns C{{"events", "requests", "first", "last", "lags"}} (POSIX seconds; lags in seconds).
It prints its port on the first line of stdout.  Signatures are not checked here (the tests do
that with the standardwebhooks library); the HMAC is computed by the server all the same.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_lock = threading.Lock()
_stats: dict[str, Any] = {"events": 0, "requests": 0, "first": None, "last": None, "lags": []}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        now = time.time()
        events = json.loads(body)["data"]["events"]
        lags = [now - datetime.fromisoformat(e["at"]).timestamp() for e in events]
        with _lock:
            _stats["events"] += len(events)
            _stats["requests"] += 1
            _stats["first"] = _stats["first"] or now
            _stats["last"] = now
            _stats["lags"].extend(lags)
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        with _lock:
            text = json.dumps(_stats).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
