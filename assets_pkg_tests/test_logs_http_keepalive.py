"""The HTTP log source reuses one keep-alive connection for a window's pages (issue 20),
and opens a new one after the server closes it, idle or by ``Connection: close``, and
after a failed request."""

import time

from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.sources import HttpLimits, HttpLogSource
from assets_pkg_tests.fake_log_api import Fault, FakeLogApi, make_events

FAR_FUTURE = 10**13
EVENTS = make_events("app", 0, 10_000, 10)  # 1000 events: 10 pages of 100


def source(api, **kw):
    return HttpLogSource(api.url, page_limit=100, backoff_seconds=0.001, max_backoff_seconds=0.01, timeout_seconds=5,
                         limits=HttpLimits.from_settings(), **kw)


def test_a_multi_page_window_uses_one_connection(data_root):
    with FakeLogApi({"app": EVENTS}) as api:
        result = fetch_window("app", 0, 10_000, source(api), now_ms=FAR_FUTURE)
        assert result.rows_processed == 1000
        assert len(api.requests) == 10
        assert api.connections == 1


def test_connection_close_from_the_server_opens_a_new_one_per_page(data_root):
    with FakeLogApi({"app": EVENTS}, close_connections=True) as api:
        result = fetch_window("app", 0, 10_000, source(api), now_ms=FAR_FUTURE)
        assert result.rows_processed == 1000
        assert api.connections == len(api.requests) == 10


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(data_root, caplog):
    with FakeLogApi({"app": EVENTS}, idle_timeout=0.1) as api:
        src = source(api)
        batches = 0
        for batch in src.fetch("app", 0, 10_000):
            batches += 1
            if batches <= 3:
                time.sleep(0.3)  # the consumer is slow: the server drops the idle connection
        assert batches == 10
        assert src.requests == 10  # no request counted as failed and repeated
        assert 4 <= api.connections <= 5  # new connections after the three pauses only
        assert "fetch_retry" not in caplog.text


def test_a_retried_error_reconnects_and_the_window_completes(data_root):
    with FakeLogApi({"app": EVENTS}) as api:
        api.faults = [Fault(503, skip=3)]
        result = fetch_window("app", 0, 10_000, source(api), now_ms=FAR_FUTURE)
        assert result.rows_processed == 1000
        assert len(api.requests) == 11
        assert api.connections == 2
