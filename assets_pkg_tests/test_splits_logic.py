"""Pure split logic: discovery, settings, hashing, pass 1/2 over real files, bad inputs."""

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.demo.splits import SETTINGS, make_rows, write_shard
from assets_pkg.duck import connect
from assets_pkg.settings import SettingError
from assets_pkg.splits import invariants
from assets_pkg.splits.discovery import classify, discover, parse_shard_name
from assets_pkg.splits.hashing import hash_fraction, side_of
from assets_pkg.splits.outputs import file_rows
from assets_pkg.splits.params import make_params, params_from_env
from assets_pkg.splits.pipeline import (
    consolidated_file,
    manifest_file,
    read_json,
    run_all,
    shard_file,
)
from assets_pkg.splits.shard_io import ShardError


# -- helpers ---------------------------------------------------------------------------------
def rows(records) -> pa.Table:
    """records: (customer, date, label) tuples -> a shard table."""
    return pa.table(
        {
            "customer_id": [r[0] for r in records],
            "date": [r[1] for r in records],
            "amount": [float(i) for i in range(len(records))],
            "label": [r[2] for r in records],
        }
    )


def run(root: Path, params=None, exports=True):
    params = params or make_params(**SETTINGS)
    return run_all(root / "inbox" / "transactions", root / "warehouse", root / "exports" if exports else None, params)


def read_split(root: Path, split: str) -> pa.Table | None:
    files = sorted((root / "warehouse" / "splits" / split).glob("part-*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def customers(root: Path, split: str) -> set:
    t = read_split(root, split)
    return set() if t is None else set(t.column("customer_id").to_pylist())


@pytest.fixture
def inbox(data_root) -> Path:
    folder = data_root / "inbox" / "transactions"
    folder.mkdir(parents=True)
    return folder


# -- discovery -------------------------------------------------------------------------------
def test_shard_number_extraction():
    assert parse_shard_name("part-00042.csv.gz") == (42, "csv", True)
    assert parse_shard_name("part-00001.snappy.parquet") == (1, "parquet", False)
    assert parse_shard_name("part-7.tsv") == (7, "tsv", False)
    assert parse_shard_name("part-00003.parquet.gz") == (3, "parquet", True)
    for bad in ("invalid.csv", "part.csv", "part-.csv", "part-0001.json", "part-00001.csv.bz2", "xpart-00001.csv"):
        assert isinstance(parse_shard_name(bad), str), bad
    assert "5 digits" in parse_shard_name("part-123456.csv")


def test_discovery_refuses_bad_and_duplicate_names_but_keeps_the_rest(tmp_path):
    for name in ("part-00001.csv", "part-1.parquet", "part-00002.tsv", "invalid.csv", "part.csv", ".hidden.csv"):
        (tmp_path / name).write_text("x\n")
    found = discover(tmp_path)
    assert [s.key for s in found.shards] == ["00002"]
    messages = [str(p) for p in found.problems]
    assert any("invalid.csv" in m for m in messages)
    assert any(m.startswith("part.csv") for m in messages)
    duplicate = [m for m in messages if "shard number 00001" in m]
    assert len(duplicate) == 1 and "part-00001.csv" in duplicate[0] and "part-1.parquet" in duplicate[0]
    assert not any(".hidden" in m for m in messages)


def test_classify_keys_are_five_digits():
    shards, problems = classify([Path("part-99.csv"), Path("part-00100.parquet")])
    assert [s.key for s in shards] == ["00099", "00100"] and not problems


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "var,value,needle",
    [
        ("SPLIT_DATE", "2024-13-45", "SPLIT_DATE"),
        ("SPLIT_DATE", "yesterday", "SPLIT_DATE"),
        ("TRAIN_RATIO", "0", "TRAIN_RATIO"),
        ("TRAIN_RATIO", "1", "TRAIN_RATIO"),
        ("TRAIN_RATIO", "1.5", "TRAIN_RATIO"),
        ("TRAIN_RATIO", "abc", "TRAIN_RATIO"),
        ("OUTPUT_FORMAT", "xlsx", "OUTPUT_FORMAT"),
        ("MAIN_TASK_INDEX", "3", "MAIN_TASK_INDEX"),
        ("MAX_WORKERS", "0", "MAX_WORKERS"),
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingError, match=needle):
        params_from_env()


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("SPLIT_DATE", "2023-06-01")
    monkeypatch.setenv("TRAIN_RATIO", "0.8")
    monkeypatch.setenv("TARGETS", "label,other")
    monkeypatch.setenv("MAIN_TASK_INDEX", "1")
    monkeypatch.setenv("OUTPUT_FORMAT", "CSV")
    p = params_from_env()
    assert (p.split_date, p.train_ratio, p.main_target, p.output_format) == ("2023-06-01", 0.8, "other", "csv")


# -- hashing ---------------------------------------------------------------------------------
def test_hash_is_md5_of_seed_and_customer():
    # md5("42:abc") = 7461d5e05f06c326..., first 8 bytes big endian / 2**64
    assert hash_fraction(42, "abc") == 0x7461D5E05F06C326 / 2**64
    assert side_of(42, 0.9, "abc") == "train"


def test_sql_hash_agrees_with_reference(data_root, inbox):
    ids = [f"C{i}" for i in range(300)] + ["ümlaut", "a b", "x'y"]
    write_shard(rows([(c, "2023-05-01", "0") for c in ids]), inbox / "part-00001.parquet")
    run(data_root, exports=False)
    alloc = pq.read_table(data_root / "warehouse" / "splits" / "customer_allocation.parquet").to_pylist()
    assert len(alloc) == len(ids)
    for row in alloc:
        assert row["side"] == side_of(42, 0.9, row["customer"]), row


# -- pass 1 + 2 ------------------------------------------------------------------------------
def test_one_to_one_mapping_and_consolidated_counts(data_root, inbox):
    numbers = [1, 5, 10, 42, 99]
    fmts = ["parquet", "csv", "tsv", "csv.gz", "parquet"]
    for number, fmt in zip(numbers, fmts):
        write_shard(make_rows(300, seed=number, n_customers=60), inbox / f"part-{number:05d}.{fmt}")
    summary = run(data_root)
    assert summary["shards"] == 5
    for split in ("train", "val", "oot"):
        names = sorted(p.name for p in (data_root / "warehouse" / "splits" / split).iterdir())
        assert set(names) <= {f"part-{n:05d}.parquet" for n in numbers}
        shard_rows = sum(file_rows(data_root / "warehouse" / "splits" / split / n) for n in names)
        assert file_rows(consolidated_file(data_root / "exports", split, "parquet")) == shard_rows
    assert {p.name for p in (data_root / "warehouse" / "splits" / "train").iterdir()} == {
        f"part-{n:05d}.parquet" for n in numbers
    }
    manifest = read_json(manifest_file(data_root / "warehouse"))
    total = manifest["rows"]
    assert total["rows_in"] == 1500
    assert total["rows_in"] == sum(total[k] for k in total if k != "rows_in")
    # __DOT__ columns come out with a dot, the label coded through the global map
    train = read_split(data_root, "train")
    assert "merchant.category" in train.column_names
    assert set(train.column("label").to_pylist()) <= {0, 1, 2}
    assert manifest["labels"]["map"] == {"chargeback": 0, "fraud": 1, "legit": 2}
    outcomes = invariants.global_outcomes(connect(), data_root / "warehouse", inbox, make_params(**SETTINGS))
    assert all(o.passed for o in outcomes), [o.line() for o in outcomes]


def _leaky_inbox(inbox: Path) -> list[str]:
    """Customers with rows on both sides of the split date, and post-only customers."""
    records = []
    ids = [f"K{i}" for i in range(40)]
    for c in ids:
        records += [(c, "2023-03-01", "0"), (c, "2024-03-01", "1")]
    records += [(f"N{i}", "2024-02-01", "1") for i in range(10)]
    write_shard(rows(records), inbox / "part-00003.parquet")
    return ids


@pytest.mark.parametrize("policy", ["exclude_train", "exclude_known"])
def test_no_leakage_under_both_policies(data_root, inbox, policy):
    ids = _leaky_inbox(inbox)
    params = make_params(**SETTINGS, oot_policy=policy)
    run(data_root, params)
    train, val, oot = (customers(data_root, s) for s in ("train", "val", "oot"))
    assert train and val and oot
    assert not train & oot and not train & val
    new = {f"N{i}" for i in range(10)}
    if policy == "exclude_known":
        assert oot == new
    else:
        assert oot == new | {c for c in ids if side_of(42, 0.9, c) == "val"}
    outcome = invariants.no_customer_leakage(connect(), data_root / "warehouse", params)
    assert outcome.passed


def test_leakage_check_fails_and_names_the_customer(data_root, inbox):
    _leaky_inbox(inbox)
    run(data_root)
    train = read_split(data_root, "train")
    leaked = train.slice(0, 1)
    path = data_root / "warehouse" / "splits" / "oot" / "part-00007.parquet"
    pq.write_table(leaked.select(read_split(data_root, "oot").column_names), path)
    outcome = invariants.no_customer_leakage(connect(), data_root / "warehouse", make_params(**SETTINGS))
    assert not outcome.passed
    assert outcome.metadata["offending_train_oot"] == [leaked.column("customer_id")[0].as_py()]
    mapping = invariants.shard_mapping(data_root / "warehouse", inbox, read_json(manifest_file(data_root / "warehouse")))
    assert not mapping.passed and "oot/part-00007.parquet" in mapping.metadata["orphans"]
    accounting = invariants.row_accounting(data_root / "warehouse", read_json(manifest_file(data_root / "warehouse")))
    assert not accounting.passed


def test_empty_split_writes_no_file_and_deletes_the_old_one(data_root, inbox):
    # shard 2: only post-split rows of customers that shard 1 makes known
    known = [c for c in (f"K{i}" for i in range(50)) if side_of(42, 0.9, c) == "train"][:5]
    write_shard(rows([(c, "2023-01-01", "0") for c in known]), inbox / "part-00001.parquet")
    write_shard(rows([(c, "2024-05-01", "1") for c in known] + [("NEW", "2023-01-05", "1")]),
                inbox / "part-00002.parquet")
    run(data_root)
    wh = data_root / "warehouse"
    assert not shard_file(wh, "oot", "00002").exists()  # all post rows belong to train customers
    assert not shard_file(wh, "val", "00001").exists()
    assert shard_file(wh, "train", "00001").exists()
    new_side = side_of(42, 0.9, "NEW")
    assert shard_file(wh, new_side, "00002").exists()
    # shard 2 now has only post rows of train customers: its old pre-split file must go
    write_shard(rows([(c, "2024-05-01", "1") for c in known]), inbox / "part-00002.parquet")
    run(data_root)
    for split in ("train", "val", "oot"):
        assert not shard_file(wh, split, "00002").exists()
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_determinism_same_inputs_identical_outputs(tmp_path, monkeypatch):
    outputs = []
    for attempt in ("a", "b"):
        root = tmp_path / attempt
        monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(root))
        inbox = root / "inbox" / "transactions"
        for number, fmt in ((1, "parquet"), (4, "csv"), (9, "tsv")):
            write_shard(make_rows(500, seed=number, n_customers=80), inbox / f"part-{number:05d}.{fmt}")
        run(root)
        # (shard_profile records input mtimes, so only the split outputs are compared)
        files = sorted(f for s in ("train", "val", "oot") for f in (root / "warehouse" / "splits" / s).glob("part-*"))
        files += sorted((root / "exports" / "splits").rglob("*.parquet"))
        outputs.append({str(f.relative_to(root)): f.read_bytes() for f in files})
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) > 10
    assert outputs[0] == outputs[1]



def test_outputs_keep_the_input_row_order_when_duckdb_reads_a_shard_on_two_threads(data_root, inbox):
    """A shard of several row groups is scanned by two DuckDB threads; DuckDB's partitioned
    COPY would then write rows in whatever order the threads deliver them (a different
    file on every run). Each split shard, and the consolidated files, keep the input order."""
    import numpy as np

    table = make_rows(40_000, seed=7, n_customers=300)
    path = inbox / "part-00007.parquet"
    pq.write_table(table, path, row_group_size=4_000)
    assert pq.ParquetFile(path).metadata.num_row_groups == 10
    write_shard(make_rows(3_000, seed=8, n_customers=300, start_id=100_000), inbox / "part-00008.parquet")
    run_all(inbox, data_root / "warehouse", data_root / "exports", make_params(**SETTINGS), con=connect(threads=2))
    for split in ("train", "val", "oot"):
        for name in ("part-00007.parquet", "part-00008.parquet"):
            ids = pq.read_table(data_root / "warehouse" / "splits" / split / name).column("transaction_id").to_numpy()
            assert len(ids) and (np.diff(ids) > 0).all(), (split, name)
        merged = pq.read_table(consolidated_file(data_root / "exports", split, "parquet")).column("transaction_id")
        assert (np.diff(merged.to_numpy()) > 0).all(), split

def test_stability_adding_a_shard_moves_no_customer(data_root, inbox):
    write_shard(make_rows(400, seed=1, n_customers=100), inbox / "part-00001.parquet")
    run(data_root)
    before = {r["customer"]: r["side"] for r in pq.read_table(data_root / "warehouse/splits/customer_allocation.parquet").to_pylist()}
    write_shard(make_rows(400, seed=2, n_customers=200), inbox / "part-00002.parquet")
    run(data_root)
    after = {r["customer"]: r["side"] for r in pq.read_table(data_root / "warehouse/splits/customer_allocation.parquet").to_pylist()}
    assert len(after) > len(before)
    assert all(after[c] == side for c, side in before.items())


def test_global_label_map_is_shared_by_all_shards(data_root, inbox):
    write_shard(rows([("A", "2023-01-01", "zeta")]), inbox / "part-00001.parquet")
    write_shard(rows([("B", "2023-01-01", "alpha"), ("C", "2023-01-02", "zeta")]), inbox / "part-00002.csv")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["labels"] == {"mode": "map", "type": "INTEGER", "map": {"alpha": 0, "zeta": 1}}
    codes = {}
    for split in ("train", "val"):
        t = read_split(data_root, split)
        if t is not None:
            codes.update(dict(zip(t.column("customer_id").to_pylist(), t.column("label").to_pylist())))
    assert codes == {"A": 1, "B": 0, "C": 1}


def test_numeric_labels_stay_numbers_and_missing_labels_are_dropped(data_root, inbox):
    write_shard(rows([("A", "2023-01-01", "1"), ("B", "2023-01-01", "0"), ("C", "2023-01-01", None),
                      ("D", "2023-01-01", " ")]), inbox / "part-00001.csv")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["labels"]["mode"] == "numeric"
    assert manifest["rows"]["dropped_label"] == 2
    kept = pa.concat_tables([t for t in (read_split(data_root, "train"), read_split(data_root, "val")) if t is not None])
    assert sorted(kept.column("label").to_pylist()) == [0, 1]


def test_one_target_is_the_label_as_it_is(data_root, inbox):
    table = rows([("A", "2023-01-01", "x"), ("B", "2023-01-01", "y")]).append_column("risk", pa.array(["hi", "lo"]))
    write_shard(table, inbox / "part-00001.parquet")
    run(data_root, make_params(**{**SETTINGS, "targets": "risk", "label_field": "main_label"}))
    kept = pa.concat_tables([t for t in (read_split(data_root, "train"), read_split(data_root, "val")) if t is not None])
    got = dict(zip(kept.column("customer_id").to_pylist(), kept.column("main_label").to_pylist()))
    assert got == {"A": 0, "B": 1}  # "hi" < "lo" in the global label map
    assert "label" in kept.column_names  # the other columns are carried unchanged


def abuse_rows() -> pa.Table:
    """The original's example: is_abuse = max(is_abusive_dnr, is_abusive_pda, is_abusive_rr)."""
    return pa.table({
        "customer_id": ["A", "B", "C", "D", "E"],
        "date": ["2023-01-01"] * 5,
        "is_abuse": [0, 0, 1, 0, 1],
        "is_abusive_dnr": [1, 0, 0, 0, None],
        "is_abusive_pda": [0, 0, 0, None, None],
        "is_abusive_rr": [0, 0, 1, None, None],
    })


ABUSE = "is_abuse,is_abusive_dnr,is_abusive_pda,is_abusive_rr"


def test_main_task_label_is_the_maximum_of_the_other_targets(data_root, inbox):
    write_shard(abuse_rows(), inbox / "part-00001.parquet")
    summary = run(data_root, make_params(**{**SETTINGS, "label_field": "", "targets": ABUSE, "main_task_index": 0}))
    kept = pa.concat_tables([t for t in (read_split(data_root, "train"), read_split(data_root, "val")) if t is not None])
    got = dict(zip(kept.column("customer_id").to_pylist(), kept.column("is_abuse").to_pylist()))
    # A: dnr=1 turns is_abuse 0 -> 1; B, C unchanged; D: greatest() skips NULLs (0);
    # E: every other target NULL -> no label -> dropped, as a row without a label
    assert got == {"A": 1, "B": 0, "C": 1, "D": 0}
    manifest = summary["manifest"]
    assert manifest["label_changed"] == 2  # A (0 -> 1) and E (1 -> NULL)
    assert manifest["rows"]["dropped_label"] == 1
    assert manifest["main_label_from"] == ["is_abusive_dnr", "is_abusive_pda", "is_abusive_rr"]
    assert read_json(manifest_file(data_root / "warehouse"))["label_changed"] == 2


def test_a_missing_target_column_is_named(data_root, inbox):
    write_shard(abuse_rows().drop_columns(["is_abusive_pda"]), inbox / "part-00001.parquet")
    with pytest.raises(ShardError, match=r"part-00001\.parquet.*'is_abusive_pda' \(TARGETS\) is missing"):
        run(data_root, make_params(**{**SETTINGS, "label_field": "", "targets": ABUSE}))


def test_unlabelled_shards_split_with_label_field_unset(data_root, inbox, monkeypatch):
    table = rows([("A", "2023-01-01", None), ("B", "2023-02-01", None), ("A", "2024-03-01", None),
                  ("C", "2024-03-01", None)]).drop_columns(["label"])
    write_shard(table, inbox / "part-00001.csv")
    write_shard(table, inbox / "part-00002.parquet")
    monkeypatch.delenv("LABEL_FIELD")
    params = params_from_env()
    assert not params.labelled
    summary = run(data_root, params)
    manifest = summary["manifest"]
    assert manifest["rows"]["dropped_label"] == 0
    assert manifest["rows"]["rows_in"] == 8
    split_rows = sum(manifest["rows"][k] for k in ("train", "val", "oot"))
    assert split_rows + manifest["rows"]["dropped_policy"] == 8
    assert "label_rate" not in manifest and "label_rate" not in read_json(manifest_file(data_root / "warehouse"))
    for split in ("train", "val", "oot"):
        table = read_split(data_root, split)
        assert table is None or "label" not in table.column_names


@pytest.mark.parametrize("var", ["DATE_COLUMN", "GROUP_ID_COLUMN", "SPLIT_DATE"])
def test_required_settings_unset_name_the_variable(monkeypatch, var):
    monkeypatch.delenv(var)
    with pytest.raises(SettingError, match=f"{var}='' is not set; it is required"):
        params_from_env()
    monkeypatch.setenv(var, "  ")
    with pytest.raises(SettingError, match=f"{var}=.* is not set; it is required"):
        params_from_env()


# -- bad inputs ------------------------------------------------------------------------------
def test_missing_customer_column_names_file_and_column(data_root, inbox):
    write_shard(pa.table({"client": ["a"], "date": ["2023-01-01"], "label": ["0"]}), inbox / "part-00001.csv")
    with pytest.raises(ShardError, match=r"part-00001\.csv.*'customer_id'.*GROUP_ID_COLUMN"):
        run(data_root)


def test_missing_date_column_names_file_and_column(data_root, inbox):
    write_shard(pa.table({"customer_id": ["a"], "day": ["2023-01-01"], "label": ["0"]}), inbox / "part-00004.parquet")
    with pytest.raises(ShardError, match=r"part-00004\.parquet.*'date'.*DATE_COLUMN"):
        run(data_root)


def test_unparseable_dates_below_threshold_are_dropped_and_counted(data_root, inbox):
    records = [(f"C{i}", "2023-02-01", "0") for i in range(99)] + [("X", "not a date", "0")]
    write_shard(rows(records), inbox / "part-00001.csv")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["rows"]["dropped_bad_date"] == 1
    assert invariants.row_accounting(data_root / "warehouse", manifest).passed


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_unparseable_dates_above_threshold_fail_naming_the_column(data_root, inbox, fmt):
    records = [(f"C{i}", "2023-02-01", "0") for i in range(10)] + [("X", "31/31/2023", "0")] * 5
    write_shard(rows(records), inbox / f"part-00002.{fmt}")
    with pytest.raises(ShardError, match=rf"part-00002\.{fmt}.*'date'.*error_threshold.*e\.g\. '31/31/2023'"):
        run(data_root)


def test_null_customer_ids_are_dropped_and_counted(data_root, inbox):
    write_shard(rows([(None, "2023-01-01", "0"), ("", "2023-01-01", "0"), ("A", "2023-01-01", "0")]),
                inbox / "part-00001.parquet")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["rows"]["dropped_null_customer"] == 2
    assert manifest["rows"]["rows_in"] == 3


def test_empty_and_header_only_shards(data_root, inbox):
    (inbox / "part-00001.csv").write_bytes(b"")
    (inbox / "part-00002.csv").write_text("customer_id,date,amount,label\n")
    write_shard(rows([("A", "2023-01-01", "0")]), inbox / "part-00003.parquet")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["shards"]["00001"]["rows_in"] == 0
    assert manifest["shards"]["00002"]["rows_in"] == 0
    for split in ("train", "val", "oot"):
        assert not any((data_root / "warehouse" / "splits" / split).glob("part-0000[12].*"))
    assert invariants.row_accounting(data_root / "warehouse", manifest).passed


def test_truncated_gzip_shard_fails_naming_the_file(data_root, inbox):
    data = gzip.compress(("customer_id,date,label\n" + "A,2023-01-01,0\n" * 20000).encode())
    (inbox / "part-00005.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=r"part-00005\.csv\.gz"):
        run(data_root)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_label_never_seen_in_pass_1_fails_pass_2(data_root, inbox, fmt):
    from assets_pkg.splits.discovery import discover as disc
    from assets_pkg.splits.pipeline import split_and_write, write_allocation, write_profile

    write_shard(rows([("A", "2023-01-01", "x"), ("B", "2023-01-01", "y")]), inbox / "part-00001.parquet")
    con, params, wh = connect(), make_params(**SETTINGS, output_format=fmt), data_root / "warehouse"
    shard = disc(inbox).shards[0]
    write_profile(con, shard, params, wh)
    _, manifest = write_allocation(con, [shard_file(wh, "shard_profile", "00001")], params, wh)
    write_shard(rows([("A", "2023-01-01", "x"), ("B", "2023-01-01", "NEW")]), inbox / "part-00001.parquet")
    with pytest.raises(ShardError, match=r"part-00001\.parquet.*never seen in pass 1.*NEW"):
        split_and_write(con, [shard], params, wh, manifest)


def test_header_less_csv_with_signature(data_root, inbox):
    (inbox / "_signature.txt").write_text("customer_id\ndate\nmerchant__DOT__name\nlabel\n")
    (inbox / "part-00001.csv").write_text("A,2023-01-01,shop,0\nB,2024-02-01,cafe,1\n")
    with gzip.open(inbox / "part-00002.csv.gz", "wt") as fh:
        fh.write("C,2023-01-03,bar,1\n")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["rows"]["rows_in"] == 3
    kept = [t for t in (read_split(data_root, s) for s in ("train", "val", "oot")) if t is not None]
    assert all("merchant.name" in t.column_names for t in kept)
    assert sum(t.num_rows for t in kept) + manifest["rows"]["dropped_policy"] == 3


def test_csv_output_format(data_root, inbox):
    write_shard(make_rows(200, seed=3, n_customers=40), inbox / "part-00003.parquet")
    run(data_root, make_params(**SETTINGS, output_format="csv"))
    wh = data_root / "warehouse"
    assert shard_file(wh, "train", "00003", "csv").exists()
    assert not shard_file(wh, "train", "00003", "parquet").exists()
    total = sum(file_rows(p) for p in (wh / "splits").glob("*/part-*.csv") if "shard_profile" not in str(p))
    assert file_rows(consolidated_file(data_root / "exports", "train", "csv")) + file_rows(
        consolidated_file(data_root / "exports", "val", "csv")) + file_rows(
        consolidated_file(data_root / "exports", "oot", "csv")) == total
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_malformed_lines_are_rejected_counted_and_kept(data_root, inbox):
    lines = ["customer_id,date,label"] + [f"C{i},2023-02-01,0" for i in range(60)] + ["X,2023-02-01,0,extra,fields"]
    (inbox / "part-00006.csv").write_text("\n".join(lines) + "\n")
    run(data_root)
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["rows"]["rejected_lines"] == 1
    assert manifest["rows"]["rows_in"] == 61
    rejects = pq.read_table(data_root / "warehouse/splits/_rejects/part-00006.parquet").to_pylist()
    assert len(rejects) == 1 and "extra" in rejects[0]["raw"]
    assert invariants.row_accounting(data_root / "warehouse", manifest).passed


def test_profile_all_two_parquet_shards_at_once_equals_one_at_a_time(data_root, inbox):
    from assets_pkg.splits.pipeline import profile_all

    for number, fmt in ((1, "parquet"), (2, "parquet"), (3, "parquet"), (4, "csv")):
        write_shard(make_rows(300, seed=number, n_customers=50), inbox / f"part-{number:05d}.{fmt}")
    found = discover(inbox)
    params = make_params(**SETTINGS)
    tables = {}
    for threads in (1, 2):
        wh = data_root / f"wh{threads}"
        profile_all(connect(threads=threads), found.shards, params, wh, found.signature)
        tables[threads] = {s.key: sorted(map(str, pq.read_table(shard_file(wh, "shard_profile", s.key)).to_pylist()))
                           for s in found.shards}
    assert tables[1] == tables[2] and len(tables[2]) == 4



def test_pass_2_two_parquet_shards_at_once_writes_the_same_files_as_one_at_a_time(data_root, inbox):
    """Pass 2 splits Parquet shards two at a time on their own cursors: the files (byte for
    byte), the state sidecars and the results' order are those of one shard at a time."""
    for number, fmt in ((1, "parquet"), (2, "parquet"), (5, "parquet"), (7, "csv")):
        write_shard(make_rows(400, seed=number, n_customers=60), inbox / f"part-{number:05d}.{fmt}")
    outputs, orders = {}, {}
    for threads in (1, 2):
        wh = data_root / f"wh{threads}"
        summary = run_all(inbox, wh, None, make_params(**SETTINGS), con=connect(threads=threads))
        orders[threads] = [r.key for r in summary["results"]]
        outputs[threads] = {str(p.relative_to(wh)): p.read_bytes()
                            for p in sorted((wh / "splits").rglob("part-*"))
                            if p.parent.name in ("train", "val", "oot", "_shard_state")}
    assert orders[1] == orders[2] == ["00001", "00002", "00005", "00007"]
    assert outputs[1].keys() == outputs[2].keys() and len(outputs[2]) >= 12
    assert outputs[1] == outputs[2]


def test_pass_2_concurrent_shard_failure_names_the_file_and_keeps_earlier_outputs(data_root, inbox):
    """A shard that changed after pass 1 fails pass 2 on its worker with its own name; the
    shards split before stay complete and nothing half-written is left behind."""
    from assets_pkg.splits.pipeline import profile_all, split_and_write, write_allocation

    for number in (1, 2, 3):
        write_shard(make_rows(400, seed=number, n_customers=60), inbox / f"part-{number:05d}.parquet")
    found = discover(inbox)
    wh = data_root / "warehouse"
    params = make_params(**SETTINGS)
    con = connect(threads=2)
    profile_all(con, found.shards, params, wh, found.signature)
    paths = [shard_file(wh, "shard_profile", s.key) for s in found.shards]
    allocation, manifest = write_allocation(con, paths, params, wh)
    changed = make_rows(400, seed=3, n_customers=60).to_pylist()
    changed[0]["label"] = "never-seen"
    write_shard(pa.Table.from_pylist(changed), inbox / "part-00003.parquet")
    with pytest.raises(ShardError, match=r"part-00003\.parquet.*label value never seen"):
        split_and_write(con, found.shards, params, wh, manifest, found.signature, customers=allocation.customers)
    for key in ("00001", "00002"):
        assert read_json(wh / "splits" / "_shard_state" / f"part-{key}.json")["counts"]["train"] > 0
    assert not (wh / "splits" / "_shard_state" / "part-00003.json").exists()
    assert not list((wh / "splits").rglob("part-00003.parquet")) or all(
        p.parent.name == "shard_profile" for p in (wh / "splits").rglob("part-00003.parquet"))
    assert not [p for p in (wh / "splits").rglob("*") if p.name.startswith(".")]
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchall()[0][0] == ""


# -- compact profile ------------------------------------------------------------------------
def test_profile_has_one_row_per_customer_with_pre_and_post_rows(data_root, inbox):
    from assets_pkg.splits.profile import PROFILE_SCHEMA, profile_shard, profile_stats

    records = [
        ("A", "2023-05-01", "x"), ("A", "2023-06-01", "y"), ("A", "2024-02-01", "x"),  # A: 2 pre, 1 post
        (" B ", "2024-03-01", "x"), ("B", "2024-04-01", "x"),  # B (trimmed): 0 pre, 2 post
        ("C", "2023-01-01", None),  # no label: dropped, C not profiled
        (None, "2023-01-01", "x"), ("  ", "2023-01-01", "x"),  # no customer
        ("D", "not a date", "x"),  # bad date: 1 of 10 rows, under error_threshold=0.2
        ("E", "2023-01-02", "y"),
    ]
    write_shard(rows(records), inbox / "part-00007.parquet")
    shard = discover(inbox).shards[0]
    profile = profile_shard(connect(), shard, make_params(**SETTINGS, error_threshold=0.2))
    assert profile.schema == PROFILE_SCHEMA
    body = profile.to_pylist()
    per_customer = {r["customer"]: (r["pre"], r["post"]) for r in body if r["kind"] == "customer"}
    assert per_customer == {"A": (2, 1), "B": (0, 2), "E": (1, 0)}
    per_label = {r["label"]: (r["pre"], r["post"]) for r in body if r["kind"] == "label"}
    assert per_label == {"x": (1, 3), "y": (2, 0)}
    stats = profile_stats(profile)
    assert (stats["rows_in"], stats["dropped_null_customer"], stats["dropped_bad_date"], stats["dropped_label"]) == (10, 2, 1, 1)
    assert sum(pre + post for pre, post in per_customer.values()) + 2 + 1 + 1 == stats["rows_in"]
    # every stat once, every row of one shard
    kinds = [r["kind"] for r in body if r["kind"].startswith("stat:")]
    assert len(kinds) == len(set(kinds)) and {r["shard"] for r in body} == {"00007"}


def test_allocation_expectations_from_the_compact_profile(data_root, inbox):
    """Rows per split predicted from per-customer pre/post counts equal what pass 2 writes,
    under both policies, with a customer known only through another shard."""
    # K is known through shard 2 only; its post rows sit in shard 1
    write_shard(rows([("K", "2024-02-01", "x"), ("K", "2024-03-01", "x"), ("N", "2024-02-01", "y"),
                      ("M", "2023-03-01", "x"), ("M", "2024-05-01", "y")]), inbox / "part-00001.parquet")
    write_shard(rows([("K", "2023-01-01", "x")]), inbox / "part-00002.csv")
    for policy in ("exclude_train", "exclude_known"):
        params = make_params(**SETTINGS, oot_policy=policy, train_ratio=0.5, random_seed=7)
        summary = run(data_root, params)
        manifest = summary["manifest"]
        wh = data_root / "warehouse"
        side = {c: side_of(7, 0.5, c) for c in ("K", "M")}
        excluded = {c for c in ("K", "M") if policy == "exclude_known" or side[c] == "train"}
        expected_oot = 1 + sum(n for c, n in (("K", 2), ("M", 1)) if c not in excluded)  # N is unknown
        entry = manifest["shards"]["00001"]
        assert entry["rows"]["oot"] == expected_oot
        assert entry["rows"]["dropped_policy"] == 3 - (expected_oot - 1)
        assert entry["rows"][side["M"]] >= 1
        assert manifest["customers"]["known"] == 2
        assert manifest["customers"]["oot"] == 1 + sum(1 for c in ("K", "M") if c not in excluded)
        assert invariants.row_accounting(wh, manifest).passed


def test_allocation_refuses_a_profile_in_the_old_layout(data_root):
    from assets_pkg.splits.allocation import build_allocation

    old = data_root / "old.parquet"
    pq.write_table(pa.table({"shard": ["00001"], "source": ["part-00001.csv"], "kind": ["pre"], "customer": ["A"],
                             "label": [None], "n": [1]}), old)
    with pytest.raises(ValueError, match=r"older layout.*re-materialize splits/shard_profile"):
        build_allocation(connect(), [old], make_params(**SETTINGS))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_pass_2_builds_its_joins_on_the_allocation_and_restores_the_setting(data_root, inbox, fmt):
    """A streamed (text) shard has no row count: DuckDB would build the join's hash table
    on the shard. Pass 2 turns the side flip off for its statement only."""
    from assets_pkg.splits.pass2 import _run_pass2

    write_shard(make_rows(500, seed=1, n_customers=50), inbox / f"part-00001.{fmt}")
    shard = discover(inbox).shards[0]
    con = connect()
    con.execute("SET disabled_optimizers = 'top_n'")
    con.execute("CREATE TEMP TABLE small AS SELECT 'C' || range AS customer FROM range(1000)")
    query = "EXPLAIN SELECT * FROM big b LEFT JOIN small s ON s.customer = b.customer_id"

    def stream():  # no row count known, like a text shard
        table = pa.table({"customer_id": [f"C{i}" for i in range(5000)]})
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1000))

    con.from_arrow(stream()).create_view("big", replace=True)
    assert "RIGHT" in con.execute(query).fetchall()[0][1]  # DuckDB alone builds on the stream
    con.from_arrow(stream()).create_view("big", replace=True)
    plan = _run_pass2(con, query, shard, [])[0][1]
    assert "LEFT" in plan and "RIGHT" not in plan
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchall()[0][0] == "top_n"
    run(data_root)
    assert con.execute("SELECT current_setting('disabled_optimizers')").fetchall()[0][0] == "top_n"
    assert invariants.row_accounting(data_root / "warehouse", read_json(manifest_file(data_root / "warehouse"))).passed


def test_a_shard_that_cannot_be_read_fails_alone_and_the_others_are_split(tmp_path, data_root, inbox):
    """A csv that cannot be parsed at all among good shards: run_all splits the others
    exactly as without it, records the failure, names the file, and the checks fail."""
    from assets_pkg.splits.pipeline import ShardsFailed, failure_file

    for n in range(1, 7):
        write_shard(make_rows(120, seed=n, n_customers=25), inbox / f"part-{n:05d}.csv")
    (inbox / "part-00004.csv").write_bytes(b"\x1f\x8b\x00not a text file at all\x00\xff\xfe" * 50)
    with pytest.raises(ShardsFailed, match=r"part-00004\.csv") as exc:
        run(data_root, exports=False)
    assert list(exc.value.failed) == ["00004"]
    assert failure_file(data_root / "warehouse", "00004").exists()
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert "00004" not in manifest["shards"] and list(manifest["failed_shards"]) == ["00004"]

    alone = tmp_path / "alone"
    (alone / "inbox" / "transactions").mkdir(parents=True)
    for p in inbox.glob("part-*.csv"):
        if p.name != "part-00004.csv":
            (alone / "inbox" / "transactions" / p.name).write_bytes(p.read_bytes())
    run(alone, exports=False)
    for split in ("train", "val", "oot"):
        assert read_split(data_root, split).equals(read_split(alone, split)), split

    params = make_params(**SETTINGS)
    outcomes = {o.name: o for o in invariants.global_outcomes(connect(), data_root / "warehouse", inbox, params)}
    assert not outcomes["shard_mapping"].passed and outcomes["shard_mapping"].metadata["failed_shards"] == ["00004"]
    assert not outcomes["row_accounting"].passed and "part-00004.csv" in outcomes["row_accounting"].metadata["problems"][0]

    # the shard leaves the inbox: its failure record goes with it, the checks pass again
    (inbox / "part-00004.csv").unlink()
    run(data_root, exports=False)
    assert not failure_file(data_root / "warehouse", "00004").exists()
    assert all(o.passed for o in invariants.global_outcomes(connect(), data_root / "warehouse", inbox, params))


# -- the export tree (the original's output modes) -------------------------------------------
def _tree(root: Path) -> list[str]:
    base = root / "exports" / "splits"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and p.name != "split_manifest.json")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_three_output_modes_write_the_original_tree_with_equal_counts(data_root, inbox, fmt):
    from assets_pkg.splits.pipeline import consolidate

    # shard 1: pre-split and post-split rows; shard 2: pre-split only (no OOT part)
    write_shard(rows([("A", "2023-01-01", "1"), ("B", "2023-02-01", "0"), ("C", "2024-02-01", "1"),
                      ("D", "2024-03-01", "0")]), inbox / "part-00001.parquet")
    write_shard(rows([("E", "2023-05-01", "0"), ("F", "2023-06-01", "1")]), inbox / "part-00007.csv")
    ext = fmt
    base = make_params(**{**SETTINGS, "output_format": fmt})
    summary = run(data_root, base)
    expected = {t: sum(summary["manifest"]["rows"][s] for s in [t]) for t in ("train", "val", "oot")}
    single = sorted([f"training_data/train/train_processed_data.{ext}", f"training_data/val/val_processed_data.{ext}",
                     f"training_data/test/test_processed_data.{ext}", f"oot_data/oot_data.{ext}"])
    assert _tree(data_root) == single  # default: ENABLE_TRUE_STREAMING=false
    out_single = summary["consolidated"]

    con = connect()
    streaming = make_params(**{**SETTINGS, "output_format": fmt, "enable_true_streaming": True})
    out_shards = consolidate(con, data_root / "warehouse", data_root / "exports", streaming)
    parts = {f"training_data/{t}/part-{k}.{ext}" for t, s in (("train", "train"), ("val", "val"), ("test", "oot"))
             for k in ("00001", "00007") if shard_file(data_root / "warehouse", s, k, fmt).exists()}
    parts |= {f"oot_data/part-{k}.{ext}" for k in ("00001", "00007")
              if shard_file(data_root / "warehouse", "oot", k, fmt).exists()}
    assert "oot_data/part-00001." + ext in parts and "oot_data/part-00007." + ext not in parts
    assert _tree(data_root) == sorted(parts)  # the single files are gone: no stale tree
    assert invariants.consolidated_matches(data_root / "warehouse", data_root / "exports", streaming).passed
    assert not invariants.consolidated_matches(data_root / "warehouse", data_root / "exports", base).passed

    both = make_params(**{**SETTINGS, "output_format": fmt, "enable_true_streaming": True,
                          "consolidate_streaming_output": True})
    out_both = consolidate(con, data_root / "warehouse", data_root / "exports", both)
    assert _tree(data_root) == single  # the parts are gone again
    assert invariants.consolidated_matches(data_root / "warehouse", data_root / "exports", both).passed

    for out in (out_single, out_shards, out_both):
        got = {t: out[t]["rows"] for t in ("train", "val", "test", "oot_data")}
        assert got == {"train": expected["train"], "val": expected["val"], "test": expected["oot"],
                       "oot_data": expected["oot"]}
    assert expected["oot"] == 2


def test_empty_splits_still_get_their_single_files(data_root, inbox):
    write_shard(rows([("A", "2023-01-01", "1"), ("B", "2023-02-01", "0")]), inbox / "part-00001.parquet")
    run(data_root)  # nothing after the split date: no OOT row
    test_file = data_root / "exports/splits/training_data/test/test_processed_data.parquet"
    oot_file = data_root / "exports/splits/oot_data/oot_data.parquet"
    assert file_rows(test_file) == 0 and file_rows(oot_file) == 0
    assert "customer_id" in pq.read_schema(oot_file).names


def test_an_old_layout_export_is_removed(data_root, inbox):
    old = data_root / "exports/splits/train/train_processed_data.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    write_shard(rows([("A", "2023-01-01", "1")]), inbox / "part-00001.parquet")
    run(data_root)
    assert not old.exists() and not old.parent.exists()
