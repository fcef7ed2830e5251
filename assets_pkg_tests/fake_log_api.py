"""A real HTTP server speaking the log API of DESIGN.md 4.4, for the tests.

``GET /logs/{log_id}/events?start_ms=S&end_ms=E&limit=N[&page_token=T]`` answers
``{"events": [...], "next_page_token": ...}`` from in-memory events. It binds 127.0.0.1 on a
free port, records every request (log_id, start, end, token) and can inject faults: queued
responses (status, headers, delay, a body that drips or is cut short, another content type,
no Content-Length; for one log only, after some requests, or for good) served instead of
normal answers, empty pages that still carry a token, a token that repeats forever, empty
pages with ever-new tokens, and a required bearer token. It speaks HTTP/1.1 with keep-alive
(every answer has a Content-Length unless a fault removes it, which closes the connection);
``connections`` counts the connections accepted, ``close_connections`` makes every
answer say ``Connection: close`` (one connection per request, as HTTP/1.0 servers do) and
``idle_timeout`` closes a connection left idle that long (as servers do between requests).
"""

import bisect
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    status: int = 500
    headers: dict | None = None
    delay_seconds: float = 0.0  # sleep before answering (timeouts)
    body: str = '{"error": "injected"}'
    drip_seconds: float = 0.0  # pause before each byte of the body (a body that never ends in time)
    truncate_to: int | None = None  # send this many body bytes, then close (Content-Length says all)
    content_type: str = "application/json"
    send_length: bool = True  # False: no Content-Length, the closed connection ends the body
    log_id: str | None = None  # only requests for this log
    skip: int = 0  # let this many matching requests through first
    repeat: bool = False  # serve it to every matching request, not once

    def matches(self, log_id) -> bool:
        if self.log_id is not None and self.log_id != log_id:
            return False
        if self.skip:
            self.skip -= 1
            return False
        return True


class FakeLogApi:
    def __init__(self, events: dict[str, list[dict]] | None = None, token: str | None = None,
                 empty_pages: bool = False, repeat_token: bool = False, max_limit: int = 1000,
                 keep_order: bool = False, endless_tokens: bool = False, close_connections: bool = False,
                 idle_timeout: float | None = None):
        self._events: dict[str, list[dict]] = {}
        self._stamps: dict[str, list[int]] = {}
        self.keep_order = keep_order  # serve events in the given order (to test a misbehaving API)
        for log_id, items in (events or {}).items():
            self.set_events(log_id, items)
        self.token = token
        self.empty_pages = empty_pages
        self.repeat_token = repeat_token
        self.endless_tokens = endless_tokens  # empty pages, each with a new token, forever
        self.max_limit = max_limit
        self.close_connections = close_connections
        self.connections = 0
        self.idle_timeout = idle_timeout  # close a connection that waits this long for a request
        self.faults: list[Fault] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set_events(self, log_id: str, items: list[dict]) -> None:
        ordered = list(items) if getattr(self, "keep_order", False) else sorted(items, key=lambda e: e["timestamp"])
        self._events[log_id] = ordered
        self._stamps[log_id] = [e["timestamp"] for e in ordered]

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeLogApi":
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a connection serves requests until either side closes

            timeout = self.idle_timeout
            # headers and body go out in two writes: with Nagle on, each keep-alive answer waits
            # for the client's delayed ACK (40 ms), as no real server lets it
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with api._lock:
                    api.connections += 1

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                api._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- request accounting -----------------------------------------------------------------
    def ranges_requested(self, log_id: str | None = None) -> list[tuple[int, int]]:
        """Distinct (start, end) fetched: one per fetch, whatever the number of pages."""
        out = []
        for r in self.requests:
            if (log_id is None or r["log_id"] == log_id) and r["page_token"] is None and r["status"] == 200:
                out.append((r["start_ms"], r["end_ms"]))
        return out

    # -- serving -------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlparse(handler.path)
        query = urllib.parse.parse_qs(parsed.query)
        parts = parsed.path.strip("/").split("/")
        record = {"path": parsed.path, "log_id": None, "start_ms": None, "end_ms": None, "page_token": None,
                  "status": None, "authorization": handler.headers.get("Authorization")}
        with self._lock:
            self.requests.append(record)
        if len(parts) != 3 or parts[0] != "logs" or parts[2] != "events":
            return self._send(handler, record, 404, {"error": "not found"})
        record["log_id"] = urllib.parse.unquote(parts[1])
        fault = self._take_fault(record["log_id"])
        try:
            start = int(query["start_ms"][0])
            end = int(query["end_ms"][0])
            limit = int(query.get("limit", ["100"])[0])
        except (KeyError, ValueError):
            return self._send(handler, record, 400, {"error": "start_ms, end_ms, limit must be integers"})
        token = query.get("page_token", [None])[0]
        record.update(start_ms=start, end_ms=end, page_token=token)
        if fault is not None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            return self._send(handler, record, fault.status, fault.body, fault.headers, fault)
        if self.token is not None and handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(handler, record, 401, {"error": "unauthorized"})
        if self.repeat_token:
            return self._send(handler, record, 200, {"events": [], "next_page_token": "again"})
        if self.endless_tokens:
            return self._send(handler, record, 200, {"events": [], "next_page_token": f"n{len(self.requests)}"})
        limit = max(1, min(limit, self.max_limit))
        stamps = self._stamps.get(record["log_id"], [])
        events = self._events.get(record["log_id"], [])
        if self.keep_order:
            events = [e for e in events if start <= e["timestamp"] < end]
            lo, hi = 0, len(events)
        else:
            lo = bisect.bisect_left(stamps, start)
            hi = bisect.bisect_left(stamps, end)
        offset = lo
        if token:
            kind, value = token[0], int(token[1:])
            if kind == "e":  # the empty page before offset `value`
                offset = value
            else:
                offset = value
                if self.empty_pages and kind == "o":
                    return self._send(handler, record, 200, {"events": [], "next_page_token": f"e{offset}"})
        page = events[offset:min(hi, offset + limit)]
        nxt = offset + len(page)
        next_token = f"o{nxt}" if nxt < hi else None
        return self._send(handler, record, 200, {"events": page, "next_page_token": next_token})

    def _take_fault(self, log_id) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.matches(log_id):
                    return fault if fault.repeat else self.faults.pop(i)
        return None

    def _send(self, handler, record, status, body, headers=None, fault: Fault | None = None):
        record["status"] = status
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        fault = fault or Fault()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", fault.content_type)
            if fault.send_length:
                handler.send_header("Content-Length", str(len(data)))
            if self.close_connections or not fault.send_length or fault.truncate_to is not None:
                # without a (true) length only the closed connection ends the body
                handler.send_header("Connection", "close")
                handler.close_connection = True
            for key, value in (headers or {}).items():
                handler.send_header(key, str(value))
            handler.end_headers()
            if fault.truncate_to is not None:
                data = data[:fault.truncate_to]
            if fault.drip_seconds:
                for i in range(len(data)):
                    time.sleep(fault.drip_seconds)
                    handler.wfile.write(data[i:i + 1])
                    handler.wfile.flush()
            else:
                handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


def make_events(log_id: str, start_ms: int, end_ms: int, step_ms: int, levels=("INFO", "WARN", "ERROR", "DEBUG")):
    """Deterministic events every ``step_ms`` in ``[start_ms, end_ms)``."""
    out = []
    for i, ts in enumerate(range(start_ms, end_ms, step_ms)):
        out.append({"timestamp": ts, "event_id": f"{log_id}-{ts}", "level": levels[i % len(levels)],
                    "message": f"event {i}", "host": f"h{i % 3}"})
    return out
