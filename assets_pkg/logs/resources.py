"""The ``log_source`` resource: where missing log ranges are fetched from (LOG_SOURCE)."""

from typing import Optional

import dagster as dg
from pydantic import Field

from assets_pkg import layout
from assets_pkg.logs.sources import HttpLimits, HttpLogSource, LocalLogSource, LogSource, LogSourceError
from assets_pkg.settings import SettingError, env_str

SOURCES = ("local", "http")


class LogSourceResource(dg.ConfigurableResource):
    """Chooses and configures the log source. Unset fields fall back to the environment at
    run time: ``LOG_SOURCE`` (local|http, default local), ``LOG_API_URL``, ``LOG_API_TOKEN`` and
    the HTTP limits ``LOG_API_REQUEST_TIMEOUT_S``, ``LOG_API_WINDOW_DEADLINE_S``,
    ``LOG_API_MAX_PAGES``, ``LOG_API_MAX_EMPTY_PAGES``, ``LOG_API_MAX_RESPONSE_BYTES``.
    """

    source: Optional[str] = Field(default=None, description="local | http (default: env LOG_SOURCE, else local).")
    api_url: Optional[str] = Field(default=None, description="Base URL of the log API (default: env LOG_API_URL).")
    api_token: Optional[str] = Field(default=None, description="Bearer token of the log API (default: env LOG_API_TOKEN).")
    inbox_dir: Optional[str] = Field(
        default=None, description="Folder of <log_id>/*.jsonl[.gz] for the local source (default: <data>/inbox/logs)."
    )
    page_limit: int = Field(default=10_000, description="Events per API page (the API's `limit`).")
    timeout_seconds: float = Field(default=30.0, description="HTTP timeout of one socket operation (connect, one read).")
    max_retries: int = Field(default=5, description="Retries on 429 / 5xx / timeouts before failing.")
    backoff_seconds: float = Field(default=0.5, description="First retry delay; doubles each retry (Retry-After wins).")
    max_backoff_seconds: float = Field(default=30.0, description="Upper bound of one retry delay.")
    request_timeout_seconds: Optional[float] = Field(
        default=None, description="Whole-request deadline: connect, headers and the full body (default: env "
        "LOG_API_REQUEST_TIMEOUT_S, else 120).")
    window_deadline_seconds: Optional[float] = Field(
        default=None, description="Deadline of one window's fetch: every page, retry and backoff (default: env "
        "LOG_API_WINDOW_DEADLINE_S, else 3600).")
    max_pages: Optional[int] = Field(
        default=None, description="Pages per window before the fetch fails (default: env LOG_API_MAX_PAGES, else 1000000).")
    max_empty_pages: Optional[int] = Field(
        default=None, description="Pages in a row without a new event, while a token is still given, before the fetch "
        "fails as paging without progress (default: env LOG_API_MAX_EMPTY_PAGES, else 1000).")
    max_response_bytes: Optional[int] = Field(
        default=None, description="Largest response body accepted (default: env LOG_API_MAX_RESPONSE_BYTES, else 64 MiB).")

    def resolved_source(self) -> str:
        kind = (self.source or env_str("LOG_SOURCE", "local")).lower()
        if kind not in SOURCES:
            raise SettingError(f"LOG_SOURCE={kind!r} is not one of {', '.join(SOURCES)}")
        return kind

    def build(self, logger=None) -> LogSource:
        kind = self.resolved_source()
        if kind == "local":
            inbox = self.inbox_dir or str(layout.inbox_dir("logs"))
            return LocalLogSource(inbox, logger=logger)
        url = self.api_url or env_str("LOG_API_URL", "")
        if not url:
            raise LogSourceError("LOG_SOURCE=http needs LOG_API_URL (or the resource's api_url)")
        token = self.api_token or env_str("LOG_API_TOKEN", "") or None
        return HttpLogSource(
            url,
            token=token,
            page_limit=self.page_limit,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            limits=HttpLimits.from_settings(self.request_timeout_seconds, self.window_deadline_seconds, self.max_pages,
                                            self.max_empty_pages, self.max_response_bytes),
            logger=logger,
        )
