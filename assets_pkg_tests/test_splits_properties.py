"""Property test: every split invariant holds on random shards (both policies, any seed)."""

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets_pkg.demo.splits import SETTINGS, write_shard
from assets_pkg.duck import connect
from assets_pkg.splits import invariants
from assets_pkg.splits.hashing import side_of
from assets_pkg.splits.params import make_params
from assets_pkg.splits.outputs import file_rows
from assets_pkg.splits.pipeline import consolidated_file, manifest_file, read_json, run_all

SPLIT = dt.date(2024, 1, 1)
row = st.tuples(
    st.one_of(st.none(), st.sampled_from([f"c{i}" for i in range(12)])),  # customer (None: dropped)
    st.integers(-60, 60),  # day offset from the split date
    st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),  # label (None: dropped)
)
shard = st.lists(row, min_size=0, max_size=25)
inputs = st.dictionaries(st.integers(1, 200), st.tuples(shard, st.sampled_from(["parquet", "csv", "tsv"])),
                         min_size=1, max_size=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=inputs, policy=st.sampled_from(["exclude_train", "exclude_known"]),
       seed=st.integers(0, 10_000), ratio=st.sampled_from([0.3, 0.5, 0.9]))
def test_invariants_on_random_data(inputs, policy, seed, ratio):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inbox = root / "inbox" / "transactions"
        inbox.mkdir(parents=True)
        expected = Counter()  # (customer, split) -> rows, computed independently of the code
        total = 0
        for number, (records, fmt) in inputs.items():
            table = pa.table({
                "customer_id": pa.array([r[0] for r in records], pa.string()),
                "date": pa.array([(SPLIT + dt.timedelta(days=r[1])).isoformat() for r in records], pa.string()),
                "label": pa.array([r[2] for r in records], pa.string()),
            })
            write_shard(table, inbox / f"part-{number:05d}.{fmt}")
            total += len(records)
        known = {r[0] for records, _ in inputs.values() for r in records
                 if r[0] is not None and r[2] is not None and r[1] < 0}
        for records, _ in inputs.values():
            for c, offset, label in records:
                if c is None or label is None:
                    continue
                side = side_of(seed, ratio, c) if c in known else None
                if offset < 0:
                    expected[(c, side)] += 1
                elif not (side == "train" or (policy == "exclude_known" and side is not None)):
                    expected[(c, "oot")] += 1
        params = make_params(**SETTINGS, oot_policy=policy, random_seed=seed, train_ratio=ratio)
        import os
        old = os.environ.get("ASSETS_PKG_DATA_DIR")
        os.environ["ASSETS_PKG_DATA_DIR"] = str(root)
        try:
            run_all(inbox, root / "warehouse", root / "exports", params)
            got = Counter()
            for split in ("train", "val", "oot"):
                for f in (root / "warehouse" / "splits" / split).glob("part-*.parquet"):
                    number = int(f.stem.split("-")[1])
                    assert number in inputs  # 1:1 shard mapping
                    for c in pq.read_table(f, columns=["customer_id"]).column("customer_id").to_pylist():
                        got[(c, split)] += 1
            assert got == expected
            wh = root / "warehouse"
            manifest = read_json(manifest_file(wh))
            assert manifest["rows"]["rows_in"] == total
            outcomes = invariants.global_outcomes(connect(), wh, inbox, params)
            assert all(o.passed for o in outcomes), [o.line() for o in outcomes]
            for split in ("train", "val", "oot"):
                path = consolidated_file(root / "exports", split, "parquet")
                n = file_rows(path) if path.exists() else 0
                assert n == sum(v for (c, s), v in expected.items() if s == split)
        finally:
            if old is None:
                os.environ.pop("ASSETS_PKG_DATA_DIR", None)
            else:
                os.environ["ASSETS_PKG_DATA_DIR"] = old


_con = None


def _text_con():
    global _con
    if _con is None:
        _con = connect(threads=1)
    return _con


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(alphabet=" \t\nab%_\u00a0\u2003\u3000é", max_size=6)), max_size=30))
def test_text_key_sql_equals_trim_cast_nullif(values):
    """The cheap customer/label text (a LIKE test before trimming) is exactly
    NULLIF(TRIM(CAST(x AS VARCHAR)), '') for any text: spaces, other blanks, LIKE wildcards."""
    from assets_pkg.splits.rows import text_key_sql

    con = _text_con()
    con.from_arrow(pa.table({"x": pa.array(values, pa.string())})).create_view("__texts", replace=True)
    got = con.execute(
        f"SELECT {text_key_sql('x')} IS NOT DISTINCT FROM NULLIF(TRIM(CAST(x AS VARCHAR)), ''), "
        f"{text_key_sql('x')} FROM __texts"
    ).fetchall()
    assert all(same for same, _ in got), [(v, g) for v, (same, g) in zip(values, got) if not same]
    # and for a typed (non-text) column
    assert con.execute(f"SELECT {text_key_sql('42::BIGINT')}, {text_key_sql('NULL::DOUBLE')}").fetchall() == [("42", None)]
