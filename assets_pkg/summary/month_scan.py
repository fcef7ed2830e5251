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

Memory does not grow with the accounts of a month: the per-row hashes go to a local scratch
file as they are computed (about 30 bytes a row), and two months whose keys ascend, as the
build writes them, are paired by a merge of those files one batch at a time. Only a file
whose keys do not ascend (not the build's) is paired and searched for duplicates whole.

:class:`MonthPipeline` feeds a scanner from a background thread while the build writes
later months: months may be handed over in any order (the build's writers finish out of
order) and are scanned in month order.
"""

import tempfile
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

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


@dataclass
class _MonthHashes:
    """One scanned month's rows as (key, head hash, tail hash, bad) in file order, in a
    local scratch file; ``ascending``: its keys strictly ascend (no NULL, no repeat)."""

    month_index: int
    path: Path
    ascending: bool

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.path)) as f:
            yield from ipc.open_stream(f)

    def whole(self) -> "_Columns":
        with pa.OSFile(str(self.path)) as f:
            table = ipc.open_stream(f).read_all()
        return _columns(pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema))


class MonthScanner:
    """Scan month files in month order; :attr:`facts` accumulates what they hold."""

    def __init__(self, cfg: SummarySettings, con, batch_rows: int = 65_536):
        self.cfg, self.con, self.batch_rows = cfg, con, batch_rows
        self.L = int(cfg.history_length)
        self.facts = ListFacts()
        self._hashes = [_RowHash(self.L, seed=j) for j in range(len(cfg.history_columns))]
        self._prev: _MonthHashes | None = None
        self._folder = Path(tempfile.mkdtemp(dir=local_scratch("summary-checks"), prefix="hashes-"))
        self._names = 0
        # the folder goes with the scanner (or the process's scratch sweep after a kill)
        weakref.finalize(self, layout.remove_tree, self._folder)

    def add(self, month: str, path: Path | None, report: bool = True, rows=None) -> None:
        """Scan ``month``'s file (None: the month has no file). ``report=False``: a
        neighbour month read only for the pair with the next month; its rows may come from
        ``rows`` instead of a file (an object with ``schema`` and ``to_batches(n)`` giving
        them in key order, e.g. the fan-out's merge of a month's bucket files)."""
        mi = month_index(month)
        if path is None and rows is None:
            self._keep(None)
            return
        if rows is not None and report:
            raise ValueError("a month scanned from rows is a neighbour only (its digest reads its file)")
        hashes = self._scan(month, path, report, rows)
        if report:
            if self._prev is not None and self._prev.month_index == mi - 1:
                self._pairs(month, self._prev, hashes)
            self.facts.months_checked += 1
        self._keep(hashes)

    def _keep(self, hashes: "_MonthHashes | None") -> None:
        if self._prev is not None:
            self._prev.path.unlink(missing_ok=True)
        self._prev = hashes

    # -- one file ------------------------------------------------------------------------
    def _scan(self, month: str, path: Path | None, report: bool, rows=None) -> _MonthHashes:
        cfg = self.cfg
        first_differs = False
        columns = [cfg.key_column, cfg.month_column, *cfg.history_columns,
                   *(cfg.history_name(c) for c in cfg.history_columns)]
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
        self._names += 1
        hashes = _MonthHashes(month_index(month), self._folder / f"{self._names}.arrow", ascending=True)
        schema = pa.schema([("key", key_type), ("head", pa.uint64()), ("tail", pa.uint64()), ("bad", pa.bool_())])
        wrong_month, length_bad, last_key = _Labels(), _Labels(), None
        with ipc.new_stream(str(hashes.path), schema) as spill:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                keys = batch.column(0)
                bad, head, tail, differs = self._row_hashes(batch, check_first=report and not first_differs)
                first_differs = first_differs or differs
                spill.write_batch(pa.record_batch([keys, pa.array(head), pa.array(tail), pa.array(bad)], schema=schema))
                hashes.ascending = hashes.ascending and _ascending(keys, last_key)
                last_key = keys[batch.num_rows - 1]
                if report:
                    wrong_month.add_wrong_months(month, keys, batch.column(1))
                    length_bad.add_first(keys, bad)
        if report:
            self._unique(month, path, wrong_month, hashes.ascending)
            self._length(month, length_bad)
            if first_differs:
                self.facts.first_months.add(month)
            self._digest(path)
        return hashes

    def _row_hashes(self, batch: pa.RecordBatch, check_first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Per row of ``batch``: wrong length (bad), hash of ``hist[1:]`` (head) and of
        ``hist[:-1]`` (tail) over every history column; and, when ``check_first``, whether
        some ``[0]`` differs from the row's current value."""
        cfg, L = self.cfg, self.L
        hist = [cfg.history_name(c) for c in cfg.history_columns]
        n = batch.num_rows
        bad = np.zeros(n, dtype=bool)
        for h in hist:
            bad |= pc.fill_null(pc.list_value_length(batch.column(h)), -1).to_numpy(zero_copy_only=False) != L
        head = np.zeros(n, dtype=np.uint64)
        tail = np.zeros(n, dtype=np.uint64)
        good = ~bad
        first_differs = False
        for j, (c, h) in enumerate(zip(cfg.history_columns, hist)):
            lists = batch.column(h)
            if bad.any():
                lists = lists.filter(pa.array(good))
            first, h_head, h_tail = self._hashes[j](pc.list_flatten(lists), L)
            # one hash per row over every column (each column its own r)
            with np.errstate(over="ignore"):
                head[good] += h_head
                tail[good] += h_tail
            if check_first and not first_differs:
                current = batch.column(c).filter(pa.array(good)) if bad.any() else batch.column(c)
                first_differs = bool((_bits(current).astype(np.uint64) != first).any())
                if not first_differs and bad.any():  # [0] of the arrays of the wrong length
                    first_differs = self._first_differs_slow(batch, c, h, bad)
        return bad, head, tail, first_differs

    @staticmethod
    def _first_differs_slow(batch, c: str, h: str, bad: np.ndarray) -> bool:
        rows = np.nonzero(bad)[0]
        lists = batch.column(h).take(pa.array(rows)).to_pylist()
        values = batch.column(c).take(pa.array(rows)).to_pylist()
        return any((lst[0] if lst else None) != v for lst, v in zip(lists, values))

    def _unique(self, month: str, path: Path, wrong_month: "_Labels", ascending: bool) -> None:
        labels = wrong_month.sorted()
        count = wrong_month.count
        # the build writes keys in ascending order: then no key repeats; otherwise count them
        if not ascending:
            cfg = self.cfg
            table = parquet_file(path).read(columns=[cfg.key_column, cfg.month_column])
            counts = pa.table({"k": table.column(0), "m": table.column(1)}).group_by(["m", "k"]).aggregate(
                [([], "count_all")])
            dup = counts.filter(pc.greater(counts["count_all"], 1)).sort_by([("m", "ascending"), ("k", "ascending")])
            count += dup.num_rows
            labels += [f"{k}@{m}" for k, m in zip(dup["k"].to_pylist()[:LIMIT], dup["m"].to_pylist()[:LIMIT])]
        self.facts.unique_count += count
        self.facts.count("unique_account_month", month, count)
        _add(self.facts.unique_bad, labels)

    def _length(self, month: str, length_bad: "_Labels") -> None:
        if length_bad.count:
            self.facts.length_count += length_bad.count
            self.facts.count("history_length", month, length_bad.count)
            _add(self.facts.length_bad, [f"{k}@{month}" for k in sorted(length_bad.keys)])

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
    def _pairs(self, month: str, prev: _MonthHashes, cur: _MonthHashes) -> None:
        self.facts.pairs_checked += 1
        if prev.ascending and cur.ascending:
            windows = _merged_windows(prev.batches(), cur.batches())
        else:  # not the build's order: pair the months whole
            windows = [(prev.whole(), cur.whole())]
        labels, count = [], 0
        for (prev_keys, _, prev_tails, prev_bad), (keys, heads, _, bad) in windows:
            idx = pc.fill_null(pc.index_in(keys, value_set=prev_keys), -1).to_numpy(zero_copy_only=False)
            rows = np.nonzero(idx >= 0)[0]
            p = idx[rows]
            differs = (heads[rows] != prev_tails[p]) | bad[rows] | prev_bad[p]
            if differs.any():
                offending = rows[differs]
                count += len(offending)
                labels = sorted(labels + keys.take(pa.array(offending)).to_pylist())[:LIMIT]
        if count:
            self.facts.inconsistent_count += count
            self.facts.count("history_consistency", month, count)
            _add(self.facts.inconsistent, [f"{k}@{month}" for k in labels])


_Columns = tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]  # key, head, tail, bad


def _columns(batch: pa.RecordBatch) -> _Columns:
    return (batch.column(0), *(batch.column(i).to_numpy(zero_copy_only=False) for i in (1, 2, 3)))


def _slice(cols: _Columns, start: int, stop: int | None = None) -> _Columns:
    keys, *rest = cols
    stop = len(keys) if stop is None else stop
    return (keys.slice(start, stop - start), *(a[start:stop] for a in rest))


def _merged_windows(prev: Iterator[pa.RecordBatch], cur: Iterator[pa.RecordBatch]) -> Iterator[tuple[_Columns, _Columns]]:
    """Two months' hash batches, keys strictly ascending in each, cut into aligned key
    windows: every key of a window's current rows that the previous month has is among that
    window's previous rows. Each window ends at the smaller of the two held batches' last
    keys, so that batch is used up and neither side holds more than one batch."""
    held: list[_Columns | None] = [None, None]
    sources = [prev, cur]
    while True:
        for side in (0, 1):
            while held[side] is None or len(held[side][0]) == 0:
                batch = next(sources[side], None)
                if batch is None:
                    held[side] = None
                    break
                held[side] = _columns(batch)
        if held[0] is None or held[1] is None:
            return  # the current rows left have no previous month to pair with (or none are left)
        end = min(held[0][0][-1], held[1][0][-1], key=lambda k: k.as_py())
        cuts = [int(pc.sum(pc.less_equal(h[0], end)).as_py() or 0) for h in held]
        yield _slice(held[0], 0, cuts[0]), _slice(held[1], 0, cuts[1])
        held = [_slice(h, c) for h, c in zip(held, cuts)]


def _ascending(keys: pa.Array, before) -> bool:
    """``keys`` strictly ascend, have no NULL and start above ``before`` (the previous
    batch's last key, or None)."""
    if keys.null_count:
        return False
    if before is not None and not pc.greater(keys[0], before).as_py():
        return False
    return len(keys) < 2 or pc.all(pc.greater(keys[1:], keys[:-1])).as_py()


class _Labels:
    """Offending keys met batch by batch: their count and the first :data:`LIMIT` labels."""

    def __init__(self):
        self.count, self.keys = 0, []

    def add_first(self, keys: pa.Array, bad: np.ndarray) -> None:
        """Rows flagged in ``bad`` (the first LIMIT keys in file order are kept)."""
        idx = np.nonzero(bad)[0]
        self.count += len(idx)
        if len(self.keys) < LIMIT and len(idx):
            self.keys += keys.take(pa.array(idx[: LIMIT - len(self.keys)])).to_pylist()

    def add_wrong_months(self, month: str, keys: pa.Array, months: pa.Array) -> None:
        """Rows whose month column is not ``month`` (the LIMIT smallest (month, key) kept)."""
        wrong = pc.fill_null(pc.not_equal(months, month), True)
        if not pc.any(wrong).as_py():
            return
        idx = pa.array(np.nonzero(wrong.to_numpy(zero_copy_only=False))[0])
        self.count += len(idx)
        pairs = zip(months.take(idx).to_pylist(), keys.take(idx).to_pylist())
        self.keys = sorted([*self.keys, *pairs], key=lambda p: (p[0] or "", p[1]))[:LIMIT]

    def sorted(self) -> list[str]:
        return [f"{k}@{m}" for m, k in self.keys]


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
