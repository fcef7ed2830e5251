"""A misbehaving HTTP log API on 127.0.0.1 (issue 14): every fetch ends, with a clear error
naming the log, the window and the page, releases the log's lock and caches nothing."""

import fcntl
import json
import os
import time

import pytest

from assets_pkg.logs.cli import main as logs_main
from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.resources import LogSourceResource
from assets_pkg.logs.sources import (
    FetchLimitError,
    HttpLimits,
    HttpLogSource,
    LogSourceError,
    MalformedResponseError,
)
from assets_pkg.logs.store import LOCK_NAME, SegmentStore
from assets_pkg.settings import SettingError
from assets_pkg_tests.fake_log_api import Fault, FakeLogApi, make_events

FAR_FUTURE = 10**13
EVENTS = make_events("app", 0, 100_000, 10)  # 10_000 events


@pytest.fixture
def api():
    with FakeLogApi({"app": EVENTS, "web": make_events("web", 0, 100_000, 100)}) as server:
        yield server


def source(api, limits=None, **kw):
    kw.setdefault("page_limit", 100)  # 10 pages for the default window
    kw.setdefault("backoff_seconds", 0.001)
    kw.setdefault("max_backoff_seconds", 0.05)
    kw.setdefault("timeout_seconds", 5)
    return HttpLogSource(api.url, limits=HttpLimits.from_settings(**(limits or {})), **kw)


def fetch(api, start=0, end=10_000, src=None, log_id="app"):
    return fetch_window(log_id, start, end, src or source(api), now_ms=FAR_FUTURE)


def page(events, token=None) -> str:
    return json.dumps({"events": events, "next_page_token": token})


def assert_nothing_cached_and_unlocked(data_root, log_id="app"):
    store = SegmentStore(data_root / "cache" / "logs")
    assert store.segments(log_id) == []
    fd = os.open(store.log_dir(log_id) / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the failed fetch still held it
    finally:
        os.close(fd)


def test_slow_drip_body_hits_the_whole_request_deadline(data_root, api):
    # each byte comes within the 5 s per-read timeout, so only a whole-request deadline ends it
    api.faults = [Fault(200, body=page(EVENTS[:100]), drip_seconds=0.02, repeat=True)]
    started = time.monotonic()
    with pytest.raises(LogSourceError, match=r"window \[0, 10000\) page 1.*timeout: no complete answer within 0.3 s"):
        fetch(api, src=source(api, limits={"request_timeout_s": 0.3}, max_retries=1))
    assert time.monotonic() - started < 3
    assert len(api.requests) == 2
    assert_nothing_cached_and_unlocked(data_root)


def test_window_deadline_ends_retries_and_paging(data_root, api):
    api.faults = [Fault(503, repeat=True)]
    started = time.monotonic()
    with pytest.raises(FetchLimitError, match=r"log 'app' window \[0, 10000\) page 1: the window's deadline "
                                              r"LOG_API_WINDOW_DEADLINE_S=0.5 s.*HTTP 503"):
        fetch(api, src=source(api, limits={"window_deadline_s": 0.5}, max_retries=10_000, backoff_seconds=0.05))
    assert time.monotonic() - started < 2
    assert_nothing_cached_and_unlocked(data_root)

    api.faults = []
    api.endless_tokens = True  # a source that pages fast forever: the window deadline ends it too
    with pytest.raises(FetchLimitError, match=r"page \d+: the window's deadline"):
        fetch(api, src=source(api, limits={"window_deadline_s": 0.5, "max_empty_pages": 10**9}))
    assert time.monotonic() - started < 4


def test_empty_pages_with_ever_new_tokens_are_no_progress(data_root, api):
    api.endless_tokens = True
    with pytest.raises(FetchLimitError, match=r"page 50: 50 pages in a row without a new event.*"
                                              r"LOG_API_MAX_EMPTY_PAGES=50"):
        fetch(api, src=source(api, limits={"max_empty_pages": 50}))
    assert len(api.requests) == 50
    assert_nothing_cached_and_unlocked(data_root)


def test_limits_come_from_env_and_the_resource(data_root, api, monkeypatch):
    monkeypatch.setenv("LOG_API_MAX_PAGES", "3")
    monkeypatch.setenv("LOG_API_REQUEST_TIMEOUT_S", "7.5")
    src = LogSourceResource(source="http", api_url=api.url, page_limit=100, max_empty_pages=9).build()
    assert src.limits == HttpLimits(7.5, 3600.0, 3, 9, 64 * 2**20)
    with pytest.raises(FetchLimitError, match=r"page 4: more than LOG_API_MAX_PAGES=3 pages"):
        fetch(api, src=src)
    assert len(api.requests) == 3
    monkeypatch.setenv("LOG_API_MAX_RESPONSE_BYTES", "0")
    with pytest.raises(SettingError, match="LOG_API_MAX_RESPONSE_BYTES=0 must be greater than 0"):
        LogSourceResource(source="http", api_url=api.url).build()


def test_truncated_body_is_retried_like_a_5xx(data_root, api):
    api.faults = [Fault(200, body=page(EVENTS[:100], "o100"), truncate_to=50)]
    result = fetch(api)
    assert result.summary["row_count"] == 1000
    assert [r["page_token"] for r in api.requests[:2]] == [None, None]  # page 1 twice
    assert len(api.requests) == 11  # 10 pages + the retry
    api.faults = [Fault(200, body=page(EVENTS[:100]), truncate_to=50, repeat=True)]
    with pytest.raises(LogSourceError, match=r"page 1 at .*truncated body.*giving up after 2 retries"):
        fetch(api, 20_000, 30_000, src=source(api, max_retries=2))
    assert len(SegmentStore(data_root / "cache" / "logs").segments("app")) == 1  # only the first window


@pytest.mark.parametrize("body, message", [
    (page([], {"cursor": 5}), r"page 2: next_page_token is a dict \(\{\"cursor\": 5\}\), not a string or null"),
    (page([], 7), r"page 2: next_page_token is a int"),
    (page([{"timestamp": 10.5, "event_id": "x1"}]), r"page 2: event 'x1' has timestamp 10.5 \(float\)"),
    (page([{"event_id": "x2", "message": "no time"}]), r"page 2: event 'x2' has no 'timestamp'"),
    (page([{"timestamp": True, "event_id": "x3"}]), r"page 2: event 'x3' has timestamp True"),
    (page(["not an object"]), r"page 2: an event is not a JSON object"),
    (json.dumps({"next_page_token": None}), r"page 2: the page has no 'events' list"),
    ("[1, 2]", r"page 2: .* JSON that is not an object"),
    ("{not json", r"page 2: .* body that is not JSON"),
])
def test_malformed_pages_are_clear_errors(data_root, api, body, message):
    api.faults = [Fault(200, body=body, skip=1)]
    with pytest.raises(MalformedResponseError, match=r"log 'app' window \[0, 10000\) " + message):
        fetch(api)
    assert_nothing_cached_and_unlocked(data_root)


def test_wrong_content_type_is_refused(data_root, api):
    api.faults = [Fault(200, body="<html>login</html>", content_type="text/html; charset=utf-8")]
    with pytest.raises(MalformedResponseError, match=r"page 1: .*Content-Type 'text/html; charset=utf-8', not JSON"):
        fetch(api)
    assert len(api.requests) == 1  # not retried: it would answer the same


@pytest.mark.parametrize("send_length, size", [(True, "bytes announced"), (False, "more than 20000 bytes read")])
def test_huge_page_is_refused_without_reading_it_all(data_root, api, send_length, size):
    big = page(make_events("app", 0, 10_000, 1))  # about 1 MB
    api.faults = [Fault(200, body=big, send_length=send_length)]
    with pytest.raises(FetchLimitError, match=rf"page 1: the response is larger than "
                                              rf"LOG_API_MAX_RESPONSE_BYTES=20000 \(.*{size}\)"):
        fetch(api, src=source(api, limits={"max_response_bytes": 20_000}))
    assert_nothing_cached_and_unlocked(data_root)


def test_events_repeated_across_a_page_boundary_are_dropped(data_root, api):
    events = make_events("app", 0, 1000, 10)  # 100 events, pages of 10
    # page 2 starts with the last three events of page 1 again
    api.faults = [Fault(200, body=page(events[:10], "o10")), Fault(200, body=page(events[7:17], "o17"))]
    result = fetch(api, 0, 1000, src=source(api, page_limit=10))
    assert result.summary["row_count"] == 100
    # an older event that is not a repeat is still out of order
    api.faults = [Fault(200, body=page(events[20:30], "o30")), Fault(200, body=page([dict(events[25], event_id="new")]))]
    with pytest.raises(LogSourceError, match=r"out of order for log 'web' window \[0, 1000\) page 2"):
        fetch(api, 0, 1000, src=source(api, page_limit=10), log_id="web")


def test_cli_prints_one_line_and_exits_2(data_root, api, monkeypatch, capsys):
    monkeypatch.setenv("LOG_SOURCE", "http")
    monkeypatch.setenv("LOG_API_URL", api.url)
    api.faults = [Fault(200, body=page([{"timestamp": 1.5, "event_id": "f"}]))]
    assert logs_main(["fetch", "--log-id", "app", "--start", "0", "--end", "10000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: log API: log 'app' window [0, 10000) page 1")
    assert "Traceback" not in err
