"""Log sources: where events come from when the cache does not have them.

Every source implements ``fetch(log_id, start_ms, end_ms)`` yielding ``pyarrow.RecordBatch``
in :data:`assets_pkg.logs.store.PART_SCHEMA`, only events in ``[start_ms, end_ms)``.

- :class:`LocalLogSource` reads ``<inbox>/<log_id>/*.jsonl[.gz]`` through the project's
  streaming reader (files in name order; events of each batch ascending; the reader runs with
  a 64 MB budget and 50k-row chunks so a cold fetch stays under 300 MB). A line the reader
  rejects fails the fetch: caching a range without some of its events would be silent loss.
  Reading, filtering and normalising run in a worker thread at most two batches ahead of
  the consumer, so parsing overlaps with the Parquet writes; the hot path is Arrow kernels
  only (no per-row Python, and no Python values turned into Arrow ones, which would make
  pyarrow import pandas).
- :class:`HttpLogSource` speaks the API of DESIGN.md 4.4 with paging, retries with backoff on
  429/5xx/timeouts/truncated bodies, event_id de-duplication, and bounds that make every
  fetch end (:class:`HttpLimits`: a deadline per request covering connect and the whole body,
  a deadline per window, a page limit, a limit of pages without progress, a response size
  cap). A malformed answer is a :class:`MalformedResponseError` naming log, window and page.
"""

import abc
import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.logs.store import LogsError, validate_log_id
from assets_pkg.logs.writer import BatchNormalizer, EventFormatError, arrow_literal, events_to_batch
from assets_pkg.obs import log_event
from assets_pkg.settings import SettingError, env_float, env_int
from assets_pkg.storage import as_path, is_remote, local_scratch

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


class LogSourceError(LogsError):
    """The source failed (after retries where they apply); the message says why."""


class LogSource(abc.ABC):
    """Where events come from: ``fetch`` yields normalized batches in [start_ms, end_ms)."""

    name = "abstract"

    @abc.abstractmethod
    def fetch(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        """Batches of the fixed part schema, ascending by timestamp, de-duplicated."""

    def describe(self) -> str:
        return self.name


# --- local JSONL ---------------------------------------------------------------------------


class LocalLogSource(LogSource):
    name = "local"

    def __init__(self, inbox_dir: Path | str, chunk_size: int = 50_000, memory_limit_mb: int = 64, logger=None):
        self.inbox_dir = as_path(inbox_dir)
        self.chunk_size = int(chunk_size)
        self.memory_limit_mb = int(memory_limit_mb)
        self.logger = logger
        self.calls = 0

    def describe(self) -> str:
        return f"local:{self.inbox_dir}"

    def files(self, log_id: str) -> list[Path]:
        folder = self.inbox_dir / validate_log_id(log_id)
        if is_remote(folder):
            folder.fs.invalidate_cache(folder.path)  # files published since this process last listed
        if not folder.is_dir():
            raise LogSourceError(
                f"local log source: no folder {folder} for log {log_id!r} (expected {folder}/*.jsonl[.gz]); "
                "check LOG_IDS or drop the log's JSONL files there"
            )
        return sorted((p for p in folder.iterdir() if p.name.endswith(JSONL_SUFFIXES) and p.is_file()),
                      key=lambda p: p.name)

    def fetch(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        self.calls += 1
        # Read, filter and normalise in a thread while the consumer writes the previous
        # batches (Arrow and Parquet release the GIL): the two overlap on two cores.
        yield from _read_ahead(self._batches(log_id, start_ms, end_ms), depth=2, name=f"log-source-{log_id}")

    def _batches(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        normalizer = BatchNormalizer()
        try:
            for path in self.files(log_id):
                with _local_copy(path) as local:
                    yield from self._file_batches(log_id, path, local, normalizer, start_ms, end_ms)
        finally:
            normalizer.close()

    def _file_batches(self, log_id: str, path: Path, local: Path, normalizer: BatchNormalizer, start_ms: int,
                      end_ms: int) -> Iterator[pa.RecordBatch]:
        from assets_pkg.reader import StreamingReader  # the one way to read JSONL

        # log events as they were written: messages keep their whitespace
        reader = StreamingReader(local, file_format="jsonl", chunk_size=self.chunk_size,
                                 memory_limit_mb=self.memory_limit_mb, strip_whitespace=False,
                                 column_types={"timestamp": pa.int64()})
        for chunk in reader:
            batch = chunk.batch
            if batch.num_rows == 0:
                continue
            batch = _filter_raw(batch, start_ms, end_ms, path)
            if batch.num_rows == 0:
                continue
            out = normalizer.normalize(batch, source=str(path))
            ts = out.column("timestamp")
            if len(ts) > 1 and not _ascending(ts):
                out = out.take(pc.sort_indices(ts))
            yield out
        rejects = reader.rejects
        if rejects is not None and rejects.num_rows:
            # A rejected line is an event the cache would silently lack: fail, publish nothing.
            first = rejects.slice(0, 1).to_pylist()[0]
            log_event("log_source_rejects", self.logger, level="error", log_id=log_id, file=str(path),
                      rejects=rejects.num_rows, first_line=first.get("line"), error_type=first.get("error_type"))
            raise LogSourceError(
                f"{path}: {rejects.num_rows} line(s) could not be read as events (first: line "
                f"{first.get('line')}, {first.get('error_type')}: {str(first.get('error'))[:200]}); "
                "fix or remove those lines, nothing of this range was cached"
            )


@contextlib.contextmanager
def _local_copy(path: Path) -> Iterator[Path]:
    """``path`` itself on local disk; an inbox file in an object store copied to this
    process's scratch for the read (the streaming reader reads local files), removed after."""
    if not is_remote(path):
        yield path
        return
    local = local_scratch("log_source") / f"{threading.get_ident()}-{path.name}"
    try:
        path.fs.get_file(path.path, str(local))
        yield local
    finally:
        local.unlink(missing_ok=True)


_DONE = object()


def _read_ahead(batches: Iterator, depth: int, name: str) -> Iterator:
    """Yield what ``batches`` yields, produced in a worker thread at most ``depth`` ahead.

    An exception in the worker is raised here, at the point of the stream where it
    happened. Closing this generator early stops the worker after its current item."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_DONE, exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item, error = items.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()
        batches.close()  # the worker has stopped: finish the generator (closes the reader) here


def _filter_raw(batch: pa.RecordBatch, start_ms: int, end_ms: int, path: Path) -> pa.RecordBatch:
    if "timestamp" not in batch.schema.names:
        raise EventFormatError(f"{path}: events have no 'timestamp' field (columns: {', '.join(batch.schema.names)})")
    ts = batch.column("timestamp")
    if not pa.types.is_integer(ts.type):
        try:
            ts = pc.cast(ts, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise EventFormatError(f"{path}: 'timestamp' must be integer milliseconds ({ts.type}): {exc}") from None
        batch = batch.set_column(batch.schema.get_field_index("timestamp"), "timestamp", ts)
    if not ts.null_count and len(ts):
        bounds = pc.min_max(ts)
        if bounds["min"].as_py() >= start_ms and bounds["max"].as_py() < end_ms:
            return batch  # the whole batch is in the window (the usual case): no copy
    mask = pc.and_(pc.greater_equal(ts, arrow_literal(int(start_ms))), pc.less(ts, arrow_literal(int(end_ms))))
    return batch.filter(mask)


def _ascending(ts: pa.Array) -> bool:
    return bool(pc.all(pc.greater_equal(ts[1:], ts[:-1])).as_py())


# --- HTTP API ------------------------------------------------------------------------------


DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_WINDOW_DEADLINE_S = 3600.0
DEFAULT_MAX_PAGES = 1_000_000
DEFAULT_MAX_EMPTY_PAGES = 1000
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
_READ_CHUNK = 256 * 1024


class MalformedResponseError(LogSourceError):
    """The API answered something that is not the documented page (names log, window, page)."""


class FetchLimitError(LogSourceError):
    """A deadline, the page or size limit, or a source paging without progress ended a fetch."""


@dataclass(frozen=True)
class HttpLimits:
    """Bounds that make every HTTP fetch end (each a setting, see README)."""

    request_timeout_s: float  # one request: connect, headers and the whole body
    window_deadline_s: float  # one window: every page, retry and backoff
    max_pages: int
    max_empty_pages: int  # consecutive pages that add no event while a token is still given
    max_response_bytes: int  # one response's body

    @classmethod
    def from_settings(cls, request_timeout_s: float | None = None, window_deadline_s: float | None = None,
                      max_pages: int | None = None, max_empty_pages: int | None = None,
                      max_response_bytes: int | None = None) -> "HttpLimits":
        """Each value given, else its env var, else the default; all must be > 0."""
        values = {
            "LOG_API_REQUEST_TIMEOUT_S": request_timeout_s if request_timeout_s is not None
            else env_float("LOG_API_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S),
            "LOG_API_WINDOW_DEADLINE_S": window_deadline_s if window_deadline_s is not None
            else env_float("LOG_API_WINDOW_DEADLINE_S", DEFAULT_WINDOW_DEADLINE_S),
            "LOG_API_MAX_PAGES": max_pages if max_pages is not None else env_int("LOG_API_MAX_PAGES", DEFAULT_MAX_PAGES),
            "LOG_API_MAX_EMPTY_PAGES": max_empty_pages if max_empty_pages is not None
            else env_int("LOG_API_MAX_EMPTY_PAGES", DEFAULT_MAX_EMPTY_PAGES),
            "LOG_API_MAX_RESPONSE_BYTES": max_response_bytes if max_response_bytes is not None
            else env_int("LOG_API_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES),
        }
        for name, value in values.items():
            if not value > 0:
                raise SettingError(f"{name}={value} must be greater than 0")
        return cls(*values.values())


@dataclass(frozen=True)
class _Where:
    """What an error names: the log, the window and the page."""

    log_id: str
    start_ms: int
    end_ms: int
    page: int

    def __str__(self) -> str:
        return f"log {self.log_id!r} window [{self.start_ms}, {self.end_ms}) page {self.page}"


class _Retry(Exception):
    """A failed request worth repeating (429, 5xx, timeout, connection error, truncated body)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class HttpLogSource(LogSource):
    name = "http"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        page_limit: int = 10_000,
        timeout_seconds: float = 30.0,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        limits: HttpLimits | None = None,
        logger=None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise LogSourceError(f"LOG_API_URL={base_url!r} is not an http(s) URL (needed when LOG_SOURCE=http)")
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.page_limit = int(page_limit)
        self.timeout_seconds = float(timeout_seconds)  # one socket operation (connect, one read)
        self.max_retries = int(max_retries)
        self.backoff_seconds = float(backoff_seconds)
        self.max_backoff_seconds = float(max_backoff_seconds)
        self.limits = limits or HttpLimits.from_settings()
        self.logger = logger
        self.sleep = sleep
        self.requests = 0
        self.calls = 0

    def describe(self) -> str:
        return f"http:{self.base_url}"

    def fetch(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        validate_log_id(log_id)
        self.calls += 1
        # The deadline covers the consumer's time between pages too: it bounds how long the
        # log's lock is held.
        deadline = time.monotonic() + self.limits.window_deadline_s
        session = _Session()  # one keep-alive connection for the window's pages
        try:
            yield from self._pages(log_id, start_ms, end_ms, deadline, session)
        finally:
            session.close()

    def _pages(self, log_id: str, start_ms: int, end_ms: int, deadline: float,
               session: "_Session") -> Iterator[pa.RecordBatch]:
        limits = self.limits
        dedupe = _Dedupe(start_ms, end_ms)
        seen_tokens: set[str] = set()
        token: str | None = None
        page = 0
        idle = 0
        while True:
            page += 1
            where = _Where(log_id, start_ms, end_ms, page)
            if page > limits.max_pages:
                raise FetchLimitError(
                    f"log API: {where}: more than LOG_API_MAX_PAGES={limits.max_pages} pages; raise the setting "
                    "or fetch a shorter window"
                )
            body = self._get_page(where, token, deadline, session)
            keep = dedupe.page(_page_events(body, where), where)
            if keep:
                idle = 0
                yield events_to_batch(keep)
            else:
                idle += 1
            next_token = _next_token(body, where)
            if next_token is None:
                break
            if idle >= limits.max_empty_pages:
                raise FetchLimitError(
                    f"log API: {where}: {idle} pages in a row without a new event while it keeps giving page "
                    f"tokens (last {next_token[:80]!r}): the paging makes no progress; refusing to loop "
                    f"(LOG_API_MAX_EMPTY_PAGES={limits.max_empty_pages})"
                )
            if next_token in seen_tokens:
                raise MalformedResponseError(
                    f"log API returned page token {next_token!r} twice for {where}: the paging never ends; "
                    "refusing to loop"
                )
            seen_tokens.add(next_token)
            token = next_token
        if dedupe.dropped:
            log_event("fetch_duplicates_dropped", self.logger, log_id=log_id, start_ms=start_ms, end_ms=end_ms,
                      duplicates=dedupe.dropped)

    def _url(self, log_id: str, start_ms: int, end_ms: int, token: str | None) -> str:
        params = {"start_ms": start_ms, "end_ms": end_ms, "limit": self.page_limit}
        if token:
            params["page_token"] = token
        return f"{self.base_url}/logs/{urllib.parse.quote(log_id, safe='')}/events?{urllib.parse.urlencode(params)}"

    def _get_page(self, where: _Where, token: str | None, deadline: float, session: "_Session") -> dict:
        url = self._url(where.log_id, where.start_ms, where.end_ms, token)
        attempt = 0
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._deadline_error(where, attempt - 1, "")
            self.requests += 1
            try:
                return self._request(url, where, min(self.limits.request_timeout_s, left), session)
            except _Retry as retry:
                reason, retry_after = retry.reason, retry.retry_after
            if attempt > self.max_retries:
                log_event("fetch_failed", self.logger, level="error", log_id=where.log_id, start_ms=where.start_ms,
                          end_ms=where.end_ms, page=where.page, attempts=attempt, reason=reason)
                raise LogSourceError(
                    f"log API failed {attempt} time(s) for {where} at {url} (last: {reason}); giving up after "
                    f"{self.max_retries} retries"
                )
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(self.max_backoff_seconds, max(delay, retry_after))
            if time.monotonic() + delay >= deadline:
                raise self._deadline_error(where, attempt, f" (last: {reason})")
            log_event("fetch_retry", self.logger, level="warning", log_id=where.log_id, start_ms=where.start_ms,
                      end_ms=where.end_ms, page=where.page, attempt=attempt, reason=reason,
                      delay_seconds=round(delay, 3))
            self.sleep(delay)

    def _deadline_error(self, where: _Where, attempts: int, last: str) -> FetchLimitError:
        log_event("fetch_failed", self.logger, level="error", log_id=where.log_id, start_ms=where.start_ms,
                  end_ms=where.end_ms, page=where.page, attempts=attempts, reason="window deadline")
        return FetchLimitError(
            f"log API: {where}: the window's deadline LOG_API_WINDOW_DEADLINE_S={self.limits.window_deadline_s:g} s "
            f"passed after {attempts} attempt(s) at this page{last}; nothing of this window was cached"
        )

    def _request(self, url: str, where: _Where, budget: float, session: "_Session") -> dict:
        """One GET, all of it (connect, headers, body) within ``budget`` seconds.

        On the window's open connection when there is one; a connection the server closed
        while idle (it answers nothing) is replaced once, at once, within the same budget:
        that is not a failed request. After any failure the connection is dropped."""
        stop = time.monotonic() + budget
        parts = urllib.parse.urlsplit(url)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            while True:
                reused = session.conn is not None
                if not reused:
                    session.open(parts, min(self.timeout_seconds, budget))
                conn = session.conn
                try:
                    # Kept: http.client drops conn.sock once a response says it closes the connection,
                    # and every read below gets the time left of the request, not a fresh timeout.
                    sock = conn.sock
                    sock.settimeout(_time_left(stop, self.timeout_seconds))
                    conn.request("GET", f"{parts.path}?{parts.query}", headers=headers)
                    response = conn.getresponse()
                except _STALE if reused else ():
                    session.close()  # the idle connection was closed by the server: a new one
                    continue
                break
            self._check_status(response, url, where)
            raw = self._read_body(response, sock, stop, where)
            if response.will_close:  # the server said Connection: close (or spoke HTTP/1.0)
                session.close()
        except (socket.timeout, TimeoutError):
            session.close()
            raise _Retry(f"timeout: no complete answer within {budget:.3g} s (LOG_API_REQUEST_TIMEOUT_S; "
                         f"{self.timeout_seconds:g} s per read)") from None
        except http.client.IncompleteRead as exc:
            session.close()
            raise _Retry(f"truncated body: {len(exc.partial)} bytes, {exc.expected} more announced") from None
        except (http.client.HTTPException, OSError) as exc:
            session.close()
            raise _Retry(f"connection error: {exc!r}") from None
        except BaseException:  # a retry status, a refusal, a limit: the answer may be unread
            session.close()
            raise
        try:
            body = json.loads(raw)
        except ValueError:
            raise MalformedResponseError(f"log API: {where}: {url} answered 200 with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise MalformedResponseError(f"log API: {where}: {url} answered 200 with JSON that is not an object")
        return body

    def _check_status(self, response, url: str, where: _Where) -> None:
        status = response.status
        if 200 <= status < 300:
            ctype = response.getheader("Content-Type")
            if ctype and "json" not in ctype.lower():
                raise MalformedResponseError(
                    f"log API: {where}: {url} answered {status} with Content-Type {ctype!r}, not JSON (a proxy or "
                    "login page?); check LOG_API_URL"
                )
            return
        if 300 <= status < 400:
            raise LogSourceError(f"log API redirects (HTTP {status}) {url} to {response.getheader('Location')!r}: "
                                 "set LOG_API_URL to the final address")
        if status == 401:
            raise LogSourceError(
                f"log API refused the request (HTTP 401 Unauthorized) at {url}: set LOG_API_TOKEN to a valid bearer token"
            )
        if status == 403:
            raise LogSourceError(f"log API forbids access (HTTP 403) to log {where.log_id!r} at {url}: "
                                 "check LOG_API_TOKEN's rights")
        if status != 429 and status < 500:
            raise LogSourceError(f"log API answered HTTP {status} for {url} ({where}); not retrying")
        raise _Retry(f"HTTP {status}", _retry_after_seconds(response.getheader("Retry-After")) if status == 429 else None)

    def _read_body(self, response, sock, stop: float, where: _Where) -> bytearray:
        """The body, read a chunk at a time within the request's time and the size cap."""
        cap = self.limits.max_response_bytes
        announced = response.getheader("Content-Length")
        if announced and announced.strip().isdigit() and int(announced) > cap:
            raise self._too_large(where, f"{int(announced)} bytes announced")
        body = bytearray()
        # read1 never ends a body whose Content-Length is read to the end (it reads 0 bytes and
        # leaves the response open), so a known length stops the loop itself.
        while response.length is None or response.length > 0:
            sock.settimeout(_time_left(stop, self.timeout_seconds))
            chunk = response.read1(_READ_CHUNK)  # one recv: a dripping body cannot stretch a read
            if not chunk:
                break
            body += chunk
            if len(body) > cap:
                raise self._too_large(where, f"more than {cap} bytes read")
        if response.length:  # the connection closed before Content-Length bytes came
            raise http.client.IncompleteRead(bytes(body), response.length)
        response.close()  # all of it read: the connection is free for the next request
        return body

    def _too_large(self, where: _Where, size: str) -> FetchLimitError:
        return FetchLimitError(
            f"log API: {where}: the response is larger than LOG_API_MAX_RESPONSE_BYTES="
            f"{self.limits.max_response_bytes} ({size}); lower the source's page_limit or raise the setting"
        )


# What a keep-alive connection the server closed while idle raises on its next request.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Session:
    """The connection a window's pages share (HTTP/1.1 keep-alive); ``connects`` counts opens."""

    def __init__(self):
        self.conn: http.client.HTTPConnection | None = None
        self.connects = 0

    def open(self, parts: urllib.parse.SplitResult, timeout: float) -> None:
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = connection(parts.hostname, parts.port, timeout=timeout)
        self.conn = conn  # set first: a failed connect is closed like any other failure
        self.connects += 1
        conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _time_left(stop: float, per_read: float) -> float:
    left = stop - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline passed")
    return min(per_read, left)


def _page_events(body: dict, where: _Where) -> list[dict]:
    """The page's events, each an object with integer millisecond timestamp."""
    events = body.get("events")
    if not isinstance(events, list):
        raise MalformedResponseError(f"log API: {where}: the page has no 'events' list")
    for event in events:
        if not isinstance(event, dict):
            raise MalformedResponseError(f"log API: {where}: an event is not a JSON object ({str(event)[:80]})")
        stamp = event.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            what = "has no 'timestamp'" if stamp is None else f"has timestamp {stamp!r} ({type(stamp).__name__})"
            raise MalformedResponseError(
                f"log API: {where}: event {event.get('event_id')!r} {what}; the API must give integer milliseconds"
            )
    return events


def _next_token(body: dict, where: _Where) -> str | None:
    token = body.get("next_page_token")
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise MalformedResponseError(
            f"log API: {where}: next_page_token is a {type(token).__name__} ({json.dumps(token, default=str)[:80]}), "
            "not a string or null"
        )
    return token


class _Dedupe:
    """Drops events whose event_id was already kept.

    The API answers ascending, so a repeat can only come back at the latest timestamp or,
    across a page boundary, from the page before (a server that re-sends the end of one
    page at the start of the next): remembering the ids of the latest timestamp and of the
    previous page keeps de-duplication exact with memory bounded by about two pages. An
    earlier timestamp that is not such a repeat is out of order: the fetch fails."""

    def __init__(self, start_ms: int, end_ms: int):
        self.start_ms, self.end_ms = start_ms, end_ms
        self.last_ts: int | None = None
        self.at_last_ts: set = set()
        self.previous: set = set()
        self.dropped = 0

    def page(self, events: list[dict], where: _Where) -> list[dict]:
        keep = []
        current: set = set()
        for event in events:
            stamp = event["timestamp"]
            if not self.start_ms <= stamp < self.end_ms:
                continue  # outside the requested window: the API promised not to, ignore it
            eid = event.get("event_id")
            key = eid if eid is None or isinstance(eid, str) else json.dumps(eid, sort_keys=True, default=str)
            if key is not None and (key in self.at_last_ts or key in self.previous or key in current):
                self.dropped += 1
                continue
            if self.last_ts is not None and stamp < self.last_ts:
                raise LogSourceError(
                    f"log API returned events out of order for {where}: timestamp {stamp} after {self.last_ts}; "
                    "the API must answer ascending"
                )
            if stamp != self.last_ts:
                self.at_last_ts = set()
                self.last_ts = stamp
            if key is not None:
                self.at_last_ts.add(key)
                current.add(key)
            keep.append(event)
        if current:
            self.previous = current
        return keep


def _retry_after_seconds(value) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
