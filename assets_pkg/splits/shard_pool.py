"""Per-shard work, Parquet shards two at a time, results handed out in shard order.

DuckDB scans a Parquet file one row group per thread, and an input shard is typically one
row group (one file written by one task), so one Parquet shard at a time keeps one core
busy. :class:`ShardPool` runs ``work(cursor, shard)`` for the next Parquet shards on worker
threads, each on its own cursor of the caller's connection (same database: the same
tables, settings and one ``memory_limit``), while the caller consumes the results one by
one. At most ``ahead`` results are computed ahead of the consumer, so memory stays bounded
however many shards there are.

Text shards (csv/tsv, anything gzipped) run on the caller's thread and connection, one at
a time and never alongside a worker: the streaming reader already parses on two threads
and holds its own buffers. Pass 2 also puts text shards with a stage from pass 1 on the
workers (``concurrent``): they are then Arrow IPC read back, not parsed.
"""

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

from assets_pkg.duck import setting, threads_of
from assets_pkg.splits.discovery import Shard


def concurrent_scan(shard: Shard) -> bool:
    """A shard DuckDB scans itself (uncompressed Parquet): it may run on a worker."""
    return shard.format == "parquet" and not shard.compressed


@dataclass(frozen=True)
class ShardFailure:
    """The result of a shard whose work raised: one bad shard fails alone (its partition),
    the others go on. ``error`` names the file."""

    shard: Shard
    error: str

    @property
    def key(self) -> str:
        return self.shard.key

    @classmethod
    def of(cls, shard: Shard, exc: Exception) -> "ShardFailure":
        text = f"{type(exc).__name__}: {exc}"
        return cls(shard, text if shard.name in text else f"{shard.path}: {text}")


def isolated(work: Callable) -> Callable:
    """``work`` whose errors come back as a :class:`ShardFailure` result instead of stopping
    the pool (an interrupt or MemoryError still stops everything)."""
    def run(cursor, shard: Shard):
        try:
            return work(cursor, shard)
        except Exception as exc:
            return ShardFailure.of(shard, exc)

    return run


class ShardPool:
    """``take(shard)`` returns ``work(cursor, shard)``; iterating yields every shard's result
    in order. ``concurrent(shard)`` says which shards may run on a worker (default: the
    uncompressed Parquet ones). The first error is raised by the ``take`` of its shard and
    cancels the work not yet started (work in flight finishes on its own); wrap ``work`` in
    :func:`isolated` to get failures as results and keep going. Close it (or use
    ``with``) to stop the workers early; taking the last shard closes it too."""

    def __init__(self, con, shards: list[Shard], work: Callable, workers: int = 2, ahead: int = 2,
                 concurrent: Callable[[Shard], bool] = concurrent_scan, one_thread_each: bool = False):
        self.con, self.shards, self.work = con, list(shards), work
        self._position = {s.key: i for i, s in enumerate(self.shards)}
        self.on_worker = {s.key for s in self.shards if concurrent(s)}
        side_by_side = threads_of(con) >= 2 and workers >= 2 and len(self.on_worker) > 1
        self.ahead = max(ahead, workers) if side_by_side else 0
        self._futures: dict[str, Future] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splits-shard") if side_by_side else None
        # one_thread_each: while shards run side by side, each statement runs on its own
        # thread only (two statements asking for all of DuckDB's threads each oversubscribe
        # the cores: ~5% slower and ~30 MB more at 10M rows); restored at shutdown
        self._settings = ExitStack()
        if side_by_side and one_thread_each:
            self._settings.enter_context(setting(con, "threads", 1))

    def __iter__(self):
        try:
            for shard in self.shards:
                yield self.take(shard)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def take(self, shard: Shard):
        with self._lock:
            self._taken.add(shard.key)
            future = self._futures.pop(shard.key, None)
            if future is None and self._pool is not None and shard.key in self.on_worker:
                future = self._pool.submit(self._on_cursor, shard)
            if future is not None:  # a worker shard: the next ones start while it runs
                self._top_up(after=shard)
        try:
            result = future.result() if future is not None else self.work(self.con, shard)
        except BaseException:
            self.close()
            raise
        with self._lock:
            if future is None:  # a shard run here, alone: the next ones start only now
                self._top_up(after=shard)
            if len(self._taken) == len(self.shards):
                self._shutdown()
        return result

    def close(self) -> None:
        with self._lock:
            self._shutdown()

    # -- internals (under the lock) ---------------------------------------------------------
    def _on_cursor(self, shard: Shard):
        cursor = self.con.cursor()  # one per shard: closing it frees what its queries held
        try:
            return self.work(cursor, shard)
        finally:
            cursor.close()

    def _top_up(self, after: Shard) -> None:
        """Start the worker shards that follow ``after``, up to ``ahead`` in flight; stop at
        the next shard that runs on the caller (it runs alone)."""
        if self._pool is None:
            return
        for i in range(self._position[after.key] + 1, len(self.shards)):  # stops within a few
            shard = self.shards[i]
            if len(self._futures) >= self.ahead:
                return
            if shard.key in self._taken or shard.key in self._futures:
                continue
            if shard.key not in self.on_worker:
                return
            self._futures[shard.key] = self._pool.submit(self._on_cursor, shard)

    def _shutdown(self) -> None:
        if self._pool is not None:
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._settings.close()
