"""The summary build's memory: the last L months of every account (no dagster import).

:class:`KeyIndex` gives each account key a row; :class:`HistoryRing` holds, per history
column, the values and validity of the last L months of every row (plus a few months of
slack so a writer thread can still read a month while later ones are stored);
:class:`HistoryWindow` cuts one month's history arrays out of it and :class:`MonthRows` is
one month's summary rows, its history lists gathered from the ring batch by batch while
they are encoded. Memory depends on the number of accounts and L, not on how many months
are built.
"""

import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

class KeyIndex:
    """Account key -> ring row, rows handed out in first-seen order.

    Integer keys keep a sorted copy of the keys with their rows, so a month's lookup is a
    ``searchsorted`` and new keys are merged in (``pc.index_in`` rebuilds a hash set of
    every key seen so far on each call). Other key types use
    ``index_in``.
    """

    def __init__(self):
        self.keys: pa.Array | None = None  # in row order
        self._sorted: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else len(self.keys)

    def lookup(self, keys: pa.Array) -> np.ndarray:
        """Row of each key; keys seen for the first time get the next rows."""
        if self.keys is not None and keys.type != self.keys.type:
            keys = keys.cast(self.keys.type)
        if pa.types.is_integer(keys.type):  # the same path for every call: they keep different state
            if keys.null_count:
                raise ValueError("account keys must not be null")
            return self._lookup_sorted(keys.to_numpy(zero_copy_only=False))
        if not len(self):
            idx = pa.nulls(len(keys), pa.int32())
        else:
            idx = pc.index_in(keys, value_set=self.keys)
        if idx.null_count:
            self._append(pc.unique(pc.filter(keys, pc.is_null(idx))))
            idx = pc.index_in(keys, value_set=self.keys)
        return idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)

    def _find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None or not len(self._sorted):
            return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
        pos = np.searchsorted(self._sorted, values)
        found = self._sorted[np.minimum(pos, len(self._sorted) - 1)] == values
        return pos, found

    def _lookup_sorted(self, values: np.ndarray) -> np.ndarray:
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        pos, found = self._find(values)
        if not found.all():
            new = np.unique(values[~found])
            first_row = len(self)
            self._append(pa.array(new, type=self.keys.type if self.keys is not None else None))
            new_rows = np.arange(first_row, first_row + len(new), dtype=np.int64)
            if self._sorted is None:
                self._sorted, self._rows = new, new_rows
            else:
                at = np.searchsorted(self._sorted, new)
                self._sorted = np.insert(self._sorted, at, new)
                self._rows = np.insert(self._rows, at, new_rows)
            pos, found = self._find(values)
        return self._rows[pos]

    def _append(self, new_keys: pa.Array) -> None:
        self.keys = new_keys if self.keys is None else pa.concat_arrays([self.keys, new_keys])


class HistoryRing:
    """The last L months of every account, plus ``lag`` months of slack.

    The ring has ``D = L + lag`` month slots; month M lives in slot ``p = (-M) mod D`` and
    again in ``p + D`` (``accounts x 2D`` values + validity per history column), so the
    window ``M, M-1, ..., M-L+1`` of an account is the contiguous slice ``[p, p + L)`` of
    its row, already in order ``[0] = M``: a month's history arrays are a row ``take`` and
    one slice copy, much faster than the row x column gather of an L-column ring, for
    twice the memory.

    The slack lets month M's window be read while months M+1 .. M+lag are being stored
    (they use slots outside it), so a writer thread gathers M's arrays batch by batch as
    it encodes them instead of the main thread materializing whole months (each queued
    month would hold all its history arrays).
    """

    def __init__(self, length: int, dtypes: list, capacity: int = 1024, lag: int = 0):
        self.length = length
        self.depth = length + lag
        self.accounts = KeyIndex()
        self.values = [np.zeros((capacity, 2 * self.depth), dtype=t) for t in dtypes]
        self.valid = [np.zeros((capacity, 2 * self.depth), dtype=bool) for _ in dtypes]

    def _pos(self, month: int) -> int:
        return (-month) % self.depth

    def index(self, keys: pa.Array) -> np.ndarray:
        """Row index of each key, adding keys seen for the first time."""
        idx = self.accounts.lookup(keys)
        self._grow(len(self.accounts))
        return idx

    def _grow(self, need: int) -> None:
        """New, larger arrays (the old ones stay intact for windows still being read)."""
        cap = self.values[0].shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for j in range(len(self.values)):
            for arrays in (self.values, self.valid):
                grown = np.zeros((new_cap, arrays[j].shape[1]), dtype=arrays[j].dtype)
                grown[:cap] = arrays[j]
                arrays[j] = grown

    def clear(self, month: int) -> None:
        p = self._pos(month)
        for valid in self.valid:
            valid[:, p] = False
            valid[:, p + self.depth] = False

    def put(self, month: int, idx: np.ndarray, columns: list[pa.Array]) -> None:
        """Forget month ``month - D`` (same slot) and store this month's values."""
        self.clear(month)
        p = self._pos(month)
        for j, arr in enumerate(columns):
            values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            for slot in (p, p + self.depth):
                self.values[j][idx, slot] = values
                self.valid[j][idx, slot] = valid

    def window(self, month: int, idx: np.ndarray, arrow_types: list[pa.DataType]) -> "HistoryWindow":
        """Month ``month``'s history arrays for the accounts at rows ``idx``, gathered on
        demand; valid while fewer than ``lag`` later months have been stored."""
        return HistoryWindow(self.length, self._pos(month), idx, list(self.values), list(self.valid), arrow_types)


class HistoryWindow:
    """The history arrays of one month, cut from the ring's arrays (captured at creation)."""

    _scratch = threading.local()  # per writer thread: buffers reused batch after batch

    def __init__(self, length: int, pos: int, idx: np.ndarray, values: list, valid: list, types: list):
        self.length, self.pos, self.idx = length, pos, idx
        self.values, self.valid, self.types = values, valid, types

    def _array(self, name: str | None, shape: tuple, dtype) -> np.ndarray:
        """A buffer of ``shape``: fresh, or this thread's reusable one called ``name``
        (fresh pages for every batch cost the kernel more time zeroing than the copy)."""
        if name is None:
            return np.empty(shape, dtype=dtype)
        pool = self._scratch.__dict__
        size = int(np.prod(shape))
        buf = pool.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = pool[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def _take(self, ring: np.ndarray, rows: np.ndarray, reuse: str | None) -> np.ndarray:
        """``ring[rows, pos:pos + L]``, flattened: whole rows are taken (a memcpy each),
        then the window is cut out. Faster than ``ring[np.ix_(rows, cols)]`` and than a
        take of fixed-size records over the strided window (numpy copies the whole ring to
        make it contiguous first, on every call)."""
        wide = self._array(reuse and reuse + "_rows", (len(rows), ring.shape[1]), ring.dtype)
        np.take(ring, rows, axis=0, out=wide, mode="clip")  # "raise" would copy through a temp
        out = self._array(reuse, (len(rows), self.length), ring.dtype)
        out[:] = wide[:, self.pos:self.pos + self.length]
        return out.reshape(-1)

    def lists(self, j: int, start: int, stop: int, reuse: bool = False) -> pa.ListArray:
        """Rows ``start:stop`` of history column ``j``. With ``reuse`` the values live in a
        per-thread buffer that the next call on this thread overwrites."""
        rows = self.idx[start:stop]
        n = len(rows)
        vals = self._take(self.values[j], rows, f"values{j}" if reuse else None)
        bitmap = np.packbits(self._take(self.valid[j], rows, f"valid{j}" if reuse else None), bitorder="little")
        flat = pa.Array.from_buffers(
            self.types[j], n * self.length, [pa.py_buffer(bitmap), pa.py_buffer(vals)], null_count=-1
        )
        offsets = pa.array(np.arange(0, (n + 1) * self.length, self.length, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, flat)


class MonthRows:
    """One month's summary rows: the scalar columns, and the history lists gathered from
    the ring batch by batch (``batches``) or all at once (``to_table``)."""

    def __init__(self, schema: pa.Schema, scalars: list[pa.Array], window: HistoryWindow | None):
        self.schema, self.scalars, self.window = schema, scalars, window
        self.num_rows = len(scalars[0]) if scalars else 0

    def _batch(self, start: int, stop: int, reuse: bool) -> pa.RecordBatch:
        arrays = [a.slice(start, stop - start) for a in self.scalars]
        arrays += [self.window.lists(j, start, stop, reuse) for j in range(len(self.window.types))]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def batches(self, rows: int):
        """Record batches of at most ``rows`` rows; each is valid until the next one is made
        on the same thread (write it, don't keep it)."""
        for start in range(0, self.num_rows, rows):
            yield self._batch(start, min(start + rows, self.num_rows), reuse=True)

    def to_table(self) -> pa.Table:
        if not self.num_rows:
            return self.schema.empty_table()
        return pa.Table.from_batches([self._batch(0, self.num_rows, reuse=False)], schema=self.schema)
