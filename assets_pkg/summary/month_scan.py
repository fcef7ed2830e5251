"""One read of each month file for every per-month summary check (no dagster import).

The checks are independent evidence: they read the month files back from disk and decode
them on their own, never the builder's ring. Decoding the history lists is most of their
cost, so :class:`MonthScanner` decodes each file once, one row group at a time (bounded
memory), and derives from it what ``validate`` reports:

- unique_account_month: rows whose month column is not the file's month; (account, month)
  pairs held twice in a file
- history_length: rows with a NULL array or one not of ``history_length`` elements
- history_matches_source: ``[0]`` against the row's current value (the months where they
  differ); per-month digests of the scalar columns (DuckDB ``hash``, comparable with the
  digests of the source winners)
- history_consistency: per row a hash of ``hist[1:]`` and of ``hist[:-1]`` (values and
  NULL positions); for an account's consecutive months m-1, m the two must be equal. A row
  whose array has the wrong length never agrees with its neighbour.

:class:`MonthPipeline` feeds a scanner from a background thread while the build writes
later months: months may be handed over in any order (the build's writers finish out of
order) and are scanned in month order.
"""

import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg import layout
from assets_pkg.duck import quote_ident
from assets_pkg.storage import local_scratch
from assets_pkg.storage.arrow import fetch, parquet_file
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.months import month_index, month_str

LIMIT = 20  # offending keys kept per check (the count says the rest)
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class ListFacts:
    """What one scan of the month files found, over every month reported on."""

    months_checked: int = 0
    unique_bad: list = field(default_factory=list)  # "key@month", first 20
    unique_count: int = 0
    length_bad: list = field(default_factory=list)
    length_count: int = 0
    first_months: set = field(default_factory=set)  # months with a [0] unlike the current value
    inconsistent: list = field(default_factory=list)
    inconsistent_count: int = 0
    pairs_checked: int = 0
    digests: dict = field(default_factory=dict)  # month column value -> (rows, sum of row hashes)
    # check name -> {file month: offending rows}: each month's own result (a month is a partition)
    by_month: dict = field(default_factory=dict)

    def count(self, check: str, month: str, n: int) -> None:
        months = self.by_month.setdefault(check, {})
        months[month] = months.get(month, 0) + n


def _add(found: list, labels) -> None:
    found.extend(labels[: max(0, LIMIT - len(found))])


class _RowHash:
    """Polynomial hashes (mod 2**64) of each fixed-length array row: ``F = sum x[k] r**k``
    over the whole row, from which both slices follow without a second pass,
    ``hash(x[0:L-1]) = F - x[L-1] r**(L-1)`` and ``hash(x[1:L]) = (F - x[0]) / r`` (r odd,
    so invertible). Values enter bit for bit, a NULL as a fixed pattern no value of a
    4-byte type has and that is a NaN payload nothing writes for 8-byte types. Equal
    slices give equal hashes; unequal ones collide with probability about L / 2**64."""

    def __init__(self, length: int, seed: int):
        self.r = int(np.random.default_rng([20_250_101, seed]).integers(1, 2**62)) * 2 + 1
        self.r_inv = np.uint64(pow(self.r, -1, 2**64))
        self.w = np.array([pow(self.r, k, 2**64) for k in range(length)], dtype=np.uint64)
        self.last = self.w[-1]

    def __call__(self, flat: pa.Array, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first values as bits, hash of [1:L], hash of [0:L-1]) of ``flat``: the values of
        full-length lists, row after row."""
        x = _bits(flat).reshape(-1, length)
        with np.errstate(over="ignore"):
            full = (x * self.w).sum(axis=1, dtype=np.uint64)
            first = x[:, 0].astype(np.uint64)
            head = (full - first) * self.r_inv
            tail = full - x[:, length - 1].astype(np.uint64) * self.last
        return first, head, tail


_NULL_BITS = np.uint64(0x7FF4_0000_D00D_F00D)  # above 2**32; a NaN payload nothing writes


def _bits(values: pa.Array) -> np.ndarray:
    """Fixed-width values as unsigned integers, bit for bit (zero copy where there is no
    NULL), a NULL as ``_NULL_BITS``."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    width = values.type.bit_width // 8
    data = np.frombuffer(values.buffers()[1], dtype=_BITS[width])[values.offset: values.offset + len(values)]
    if values.null_count:
        bitmap = np.frombuffer(values.buffers()[0], dtype=np.uint8)
        valid = np.unpackbits(bitmap, bitorder="little")[values.offset: values.offset + len(values)].view(bool)
        return np.where(valid, data, _NULL_BITS)
    return data


class MonthScanner:
    """Scan month files in month order; :attr:`facts` accumulates what they hold."""

    def __init__(self, cfg: SummarySettings, con, batch_rows: int = 65_536):
        self.cfg, self.con, self.batch_rows = cfg, con, batch_rows
        self.L = int(cfg.history_length)
        self.facts = ListFacts()
        self._hashes = [_RowHash(self.L, seed=j) for j in range(len(cfg.history_columns))]
        self._prev: tuple[int, pa.Array, np.ndarray, np.ndarray] | None = None  # (month idx, keys, tail hashes, bad)

    def add(self, month: str, path: Path | None, report: bool = True, rows=None) -> None:
        """Scan ``month``'s file (None: the month has no file). ``report=False``: a
        neighbour month read only for the pair with the next month; its rows may come from
        ``rows`` instead of a file (an object with ``schema`` and ``to_batches(n)`` giving
        them in key order, e.g. the fan-out's merge of a month's bucket files)."""
        mi = month_index(month)
        if path is None and rows is None:
            self._prev = None
            return
        if rows is not None and report:
            raise ValueError("a month scanned from rows is a neighbour only (its digest reads its file)")
        keys, heads, tails, bad = self._scan(month, path, report, rows)
        if report:
            self._pairs(mi, month, keys, heads, bad)
            self.facts.months_checked += 1
        self._prev = (mi, keys, tails, bad)

    # -- one file ------------------------------------------------------------------------
    def _scan(self, month: str, path: Path | None, report: bool, rows=None):
        cfg, L = self.cfg, self.L
        hist = [cfg.history_name(c) for c in cfg.history_columns]
        key_parts, month_parts, heads, tails, bads = [], [], [], [], []
        first_differs = False
        columns = [cfg.key_column, cfg.month_column, *cfg.history_columns, *hist]
        if rows is None:
            # a local or an object-store path (the cluster's s3:// root); no pre-buffering:
            # it holds every selected column chunk of the file at once (120 MB more for a
            # month of 1M accounts) where one row group at a time is what the scan needs
            f = parquet_file(path, pre_buffer=False)
            key_type = f.schema_arrow.field(0).type
            # one thread: the scan runs beside the build, which has the other core
            batches = f.iter_batches(batch_size=self.batch_rows, columns=columns, use_threads=False)
        else:
            key_type = rows.schema.field(0).type
            batches = (b.select(columns) for b in rows.to_batches(self.batch_rows))
        for batch in batches:
            n = batch.num_rows
            key_parts.append(batch.column(0))
            month_parts.append(batch.column(1))
            bad = np.zeros(n, dtype=bool)
            lens = []
            for h in hist:
                lengths = pc.fill_null(pc.list_value_length(batch.column(h)), -1).to_numpy(zero_copy_only=False)
                lens.append(lengths)
                bad |= lengths != L
            head = np.zeros(n, dtype=np.uint64)
            tail = np.zeros(n, dtype=np.uint64)
            good = ~bad
            for j, (c, h) in enumerate(zip(cfg.history_columns, hist)):
                lists = batch.column(h)
                if bad.any():
                    lists = lists.filter(pa.array(good))
                first, h_head, h_tail = self._hashes[j](pc.list_flatten(lists), L)
                # one hash per row over every column (each column its own r)
                with np.errstate(over="ignore"):
                    head[good] += h_head
                    tail[good] += h_tail
                if report and not first_differs:
                    current = batch.column(c).filter(pa.array(good)) if bad.any() else batch.column(c)
                    first_differs = bool((_bits(current).astype(np.uint64) != first).any())
                    if not first_differs and bad.any():  # [0] of the arrays of the wrong length
                        first_differs = self._first_differs_slow(batch, c, h, bad)
            heads.append(head)
            tails.append(tail)
            bads.append(bad)
        keys = pa.chunked_array(key_parts, type=key_type).combine_chunks()
        bad = np.concatenate(bads) if bads else np.zeros(0, dtype=bool)
        if report:
            months = pa.chunked_array(month_parts, type=pa.string()).combine_chunks()
            self._unique(month, keys, months)
            self._length(month, keys, bad)
            if first_differs:
                self.facts.first_months.add(month)
            self._digest(path)
        concat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)  # noqa: E731
        return keys, concat(heads), concat(tails), bad

    @staticmethod
    def _first_differs_slow(batch, c: str, h: str, bad: np.ndarray) -> bool:
        rows = np.nonzero(bad)[0]
        lists = batch.column(h).take(pa.array(rows)).to_pylist()
        values = batch.column(c).take(pa.array(rows)).to_pylist()
        return any((lst[0] if lst else None) != v for lst, v in zip(lists, values))

    def _unique(self, month: str, keys: pa.Array, months: pa.Array) -> None:
        wrong = pc.fill_null(pc.not_equal(months, month), True)
        labels = []
        if pc.any(wrong).as_py():
            idx = np.nonzero(wrong.to_numpy(zero_copy_only=False))[0]
            pairs = sorted(zip(months.take(pa.array(idx)).to_pylist(), keys.take(pa.array(idx)).to_pylist()),
                           key=lambda p: (p[0] or "", p[1]))
            labels += [f"{k}@{m}" for m, k in pairs]
        # the build writes keys in ascending order: then no key repeats; otherwise count them
        if len(keys) > 1 and not pc.all(pc.greater(keys[1:], keys[:-1])).as_py():
            counts = pa.table({"k": keys, "m": months}).group_by(["m", "k"]).aggregate([([], "count_all")])
            dup = counts.filter(pc.greater(counts["count_all"], 1)).sort_by([("m", "ascending"), ("k", "ascending")])
            labels += [f"{k}@{m}" for k, m in zip(dup["k"].to_pylist(), dup["m"].to_pylist())]
        self.facts.unique_count += len(labels)
        self.facts.count("unique_account_month", month, len(labels))
        _add(self.facts.unique_bad, labels)

    def _length(self, month: str, keys: pa.Array, bad: np.ndarray) -> None:
        if bad.any():
            idx = np.nonzero(bad)[0]
            self.facts.length_count += len(idx)
            self.facts.count("history_length", month, len(idx))
            _add(self.facts.length_bad, [f"{k}@{month}" for k in sorted(keys.take(pa.array(idx[:LIMIT])).to_pylist())])

    def _digest(self, path: Path) -> None:
        cfg = self.cfg
        k, m, t = quote_ident(cfg.key_column), quote_ident(cfg.month_column), quote_ident(cfg.timestamp_column)
        terms = ", ".join([k, t, *(quote_ident(c) for c in cfg.all_value_columns)])
        for mo, n, s in self.con.execute(
            f"SELECT {m}, count(*), sum(hash({terms})) FROM read_parquet(?) GROUP BY 1", [str(path)]
        ).fetchall():
            rows, total = self.facts.digests.get(mo, (0, 0))
            self.facts.digests[mo] = (rows + n, total + s)

    # -- consecutive months -----------------------------------------------------------------
    def _pairs(self, mi: int, month: str, keys: pa.Array, heads: np.ndarray, bad: np.ndarray) -> None:
        if self._prev is None or self._prev[0] != mi - 1:
            return
        _, prev_keys, prev_tails, prev_bad = self._prev
        self.facts.pairs_checked += 1
        idx = pc.fill_null(pc.index_in(keys, value_set=prev_keys), -1).to_numpy(zero_copy_only=False)
        rows = np.nonzero(idx >= 0)[0]
        p = idx[rows]
        differs = (heads[rows] != prev_tails[p]) | bad[rows] | prev_bad[p]
        if differs.any():
            offending = rows[differs]
            self.facts.inconsistent_count += len(offending)
            self.facts.count("history_consistency", month, len(offending))
            labels = sorted(keys.take(pa.array(offending)).to_pylist())[:LIMIT]
            _add(self.facts.inconsistent, [f"{k}@{month}" for k in labels])


def scan_months(cfg: SummarySettings, con, month_files: dict[str, Path],
                previous: dict[str, Path] | None = None) -> ListFacts:
    """Scan ``month_files`` in month order; ``previous`` adds neighbour files read for the
    pairs but not reported on their own."""
    scanner = MonthScanner(cfg, con)
    allf = {**(previous or {}), **month_files}
    for mo in sorted(allf):  # pairs only where the previous file is the month before
        scanner.add(mo, allf[mo], report=mo in month_files)
    return scanner.facts


class MonthPipeline:
    """A :class:`MonthScanner` in one background thread: :meth:`ready` hands over a month
    (from any thread, in any order); the months ``start..end`` are scanned in month order as
    soon as each and all before it are there; :meth:`finish` waits and returns the facts.
    ``previous``: the neighbour file of the month before ``start`` (or None).
    ``discard_scanned``: the files handed over are local copies made for the scan alone
    (an object-store root): each is deleted once scanned, so local disk holds the months
    written and not yet scanned, not every month of the run."""

    def __init__(self, cfg: SummarySettings, con, start: str, end: str, previous: Path | None = None,
                 discard_scanned: bool = False):
        self.scanner = MonthScanner(cfg, con.cursor())  # a cursor per thread (DuckDB)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary-check")
        self._lock = threading.Lock()
        self._ready: dict[int, Path | None] = {}
        self._next, self._end = month_index(start), month_index(end)
        self._futures: list[Future] = []
        self._closed = False
        self._discard = discard_scanned
        if previous is not None:
            self._futures.append(self._pool.submit(self._add, month_str(self._next - 1), previous, False))

    def _add(self, month: str, path: Path | None, report: bool = True) -> None:
        try:
            self.scanner.add(month, path, report)
        finally:
            if self._discard and path is not None:
                path.unlink(missing_ok=True)

    def ready(self, month: str, path: Path | None) -> None:
        with self._lock:
            self._ready[month_index(month)] = path
            self._futures.append(self._pool.submit(self._drain))

    def _drain(self) -> None:
        while True:
            with self._lock:
                if self._next not in self._ready or self._next > self._end:
                    return
                mi = self._next
                path = self._ready.pop(mi)
                self._next += 1
            self._add(month_str(mi), path)

    def finish(self) -> ListFacts:
        for fut in list(self._futures):
            fut.result()
        self.close()
        if self._next <= self._end:
            raise RuntimeError(f"summary checks: month {month_str(self._next)} was never handed over")
        return self.scanner.facts

    def close(self) -> None:
        """Stop (idempotent): a build that failed leaves its queued months unscanned."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not self._closed:
            self._closed = True
            self.scanner.con.close()


@contextmanager
def scan_copies(remote: bool) -> Iterator[Path | None]:
    """A local folder for copies of the object-store month files the checks scan (the build
    keeps a hard link to each upload's temp there, the month before is downloaded), removed
    when the block ends; None on a local root, where the files are scanned in place."""
    if not remote:
        yield None
        return
    folder = Path(tempfile.mkdtemp(dir=local_scratch("summary-checks")))
    try:
        yield folder
    finally:
        layout.remove_tree(folder)


def scan_path(path: Path, copies: Path | None) -> Path:
    """The file to scan for the month file ``path``: itself, or a download into ``copies``."""
    return path if copies is None else fetch({path.name: path}, copies)[path.name]
