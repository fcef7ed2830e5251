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
  429/5xx/timeouts, a repeated-token guard and event_id de-duplication.
"""

import abc
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.logs.store import validate_log_id
from assets_pkg.logs.writer import BatchNormalizer, EventFormatError, arrow_literal, events_to_batch
from assets_pkg.obs import log_event

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


class LogSourceError(RuntimeError):
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
        self.inbox_dir = Path(inbox_dir)
        self.chunk_size = int(chunk_size)
        self.memory_limit_mb = int(memory_limit_mb)
        self.logger = logger
        self.calls = 0

    def describe(self) -> str:
        return f"local:{self.inbox_dir}"

    def files(self, log_id: str) -> list[Path]:
        folder = self.inbox_dir / validate_log_id(log_id)
        if not folder.is_dir():
            raise LogSourceError(
                f"local log source: no folder {folder} for log {log_id!r} (expected {folder}/*.jsonl[.gz]); "
                "check LOG_IDS or drop the log's JSONL files there"
            )
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(JSONL_SUFFIXES))

    def fetch(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        self.calls += 1
        # Read, filter and normalise in a thread while the consumer writes the previous
        # batches (Arrow and Parquet release the GIL): the two overlap on two cores.
        yield from _read_ahead(self._batches(log_id, start_ms, end_ms), depth=2, name=f"log-source-{log_id}")

    def _batches(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        from assets_pkg.reader import StreamingReader  # the one way to read JSONL

        normalizer = BatchNormalizer()
        try:
            for path in self.files(log_id):
                reader = StreamingReader(path, file_format="jsonl", chunk_size=self.chunk_size,
                                         memory_limit_mb=self.memory_limit_mb,
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
        finally:
            normalizer.close()


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
        max_pages: int = 1_000_000,
        logger=None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise LogSourceError(f"LOG_API_URL={base_url!r} is not an http(s) URL (needed when LOG_SOURCE=http)")
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.page_limit = int(page_limit)
        self.timeout_seconds = float(timeout_seconds)
        self.max_retries = int(max_retries)
        self.backoff_seconds = float(backoff_seconds)
        self.max_backoff_seconds = float(max_backoff_seconds)
        self.max_pages = int(max_pages)
        self.logger = logger
        self.sleep = sleep
        self.requests = 0
        self.calls = 0

    def describe(self) -> str:
        return f"http:{self.base_url}"

    def fetch(self, log_id: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
        validate_log_id(log_id)
        self.calls += 1
        # The API returns events ascending, so a repeated event (same event_id, same timestamp)
        # can only come back while the timestamp has not moved on: remembering the ids of the
        # latest timestamp keeps de-duplication exact with bounded memory.
        seen_ids: set[str] = set()
        last_ts: int | None = None
        seen_tokens: set[str] = set()
        token: str | None = None
        pages = 0
        duplicates = 0
        while True:
            pages += 1
            if pages > self.max_pages:
                raise LogSourceError(f"log API: more than {self.max_pages} pages for {log_id} [{start_ms}, {end_ms})")
            body = self._get_page(log_id, start_ms, end_ms, token)
            events = body.get("events")
            if not isinstance(events, list):
                raise LogSourceError(f"log API: page for {log_id} has no 'events' list")
            keep = []
            for event in events:
                if not isinstance(event, dict):
                    raise LogSourceError(f"log API: page for {log_id} has an event that is not an object")
                stamp = event.get("timestamp")
                if isinstance(stamp, int) and not isinstance(stamp, bool):
                    if not (start_ms <= stamp < end_ms):
                        continue  # outside the requested window: the API promised not to, ignore it
                    if last_ts is not None and stamp < last_ts:
                        raise LogSourceError(
                            f"log API returned events out of order for {log_id} [{start_ms}, {end_ms}): "
                            f"timestamp {stamp} after {last_ts} (page {pages}); the API must answer ascending"
                        )
                    if stamp != last_ts:
                        seen_ids.clear()
                        last_ts = stamp
                eid = event.get("event_id")
                if eid is not None:
                    if eid in seen_ids:
                        duplicates += 1
                        continue
                    seen_ids.add(eid)
                keep.append(event)
            if keep:
                yield events_to_batch(keep)
            next_token = body.get("next_page_token")
            if not next_token:
                break
            if next_token in seen_tokens:
                raise LogSourceError(
                    f"log API returned page token {next_token!r} twice for {log_id} [{start_ms}, {end_ms}): "
                    "the paging never ends; refusing to loop"
                )
            seen_tokens.add(next_token)
            token = next_token
        if duplicates:
            log_event("fetch_duplicates_dropped", self.logger, log_id=log_id, start_ms=start_ms, end_ms=end_ms,
                      duplicates=duplicates)

    def _url(self, log_id: str, start_ms: int, end_ms: int, token: str | None) -> str:
        params = {"start_ms": start_ms, "end_ms": end_ms, "limit": self.page_limit}
        if token:
            params["page_token"] = token
        return f"{self.base_url}/logs/{urllib.parse.quote(log_id, safe='')}/events?{urllib.parse.urlencode(params)}"

    def _get_page(self, log_id: str, start_ms: int, end_ms: int, token: str | None) -> dict:
        url = self._url(log_id, start_ms, end_ms, token)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            retry_after = None
            try:
                request = urllib.request.Request(url, headers=headers, method="GET")
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                    raw = response.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise LogSourceError(f"log API: {self._safe(url)} answered 200 with a body that is not JSON") from None
                if not isinstance(body, dict):
                    raise LogSourceError(f"log API: {self._safe(url)} answered 200 with JSON that is not an object")
                return body
            except urllib.error.HTTPError as exc:
                status = exc.code
                if status == 401:
                    raise LogSourceError(
                        f"log API refused the request (HTTP 401 Unauthorized) at {self._safe(url)}: "
                        "set LOG_API_TOKEN to a valid bearer token"
                    ) from None
                if status == 403:
                    raise LogSourceError(
                        f"log API forbids access (HTTP 403) to log {log_id!r} at {self._safe(url)}: check LOG_API_TOKEN's rights"
                    ) from None
                if status != 429 and status < 500:
                    raise LogSourceError(f"log API answered HTTP {status} for {self._safe(url)}; not retrying") from None
                reason = f"HTTP {status}"
                if status == 429:
                    retry_after = _retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                inner = getattr(exc, "reason", exc)
                kind = "timeout" if isinstance(inner, (socket.timeout, TimeoutError)) else "connection error"
                reason = f"{kind}: {inner}"
            if attempt > self.max_retries:
                log_event("fetch_failed", self.logger, level="error", log_id=log_id, start_ms=start_ms, end_ms=end_ms,
                          attempts=attempt, reason=reason)
                raise LogSourceError(
                    f"log API failed {attempt} time(s) for {self._safe(url)} (last: {reason}); giving up after "
                    f"{self.max_retries} retries"
                )
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(self.max_backoff_seconds, max(delay, retry_after))
            log_event("fetch_retry", self.logger, level="warning", log_id=log_id, start_ms=start_ms, end_ms=end_ms,
                      attempt=attempt, reason=reason, delay_seconds=round(delay, 3))
            self.sleep(delay)

    def _safe(self, url: str) -> str:
        return url  # the token travels in a header, never in the URL


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
