"""Sample transactions for the temporal split, and the demo run.

``generate`` writes ~20 shards with gaps in the numbering, mixed csv/tsv/parquet and one
gzip (``scale="test"``: 5 small shards). ``run`` plays the daemon: one tick of
``splits_shard_sensor`` registers every shard and launches ONE run over them, then the
report shows rows per split and the check results.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

INBOX = "transactions"
LABELS = np.array(["chargeback", "fraud", "legit"])
DEMO_SHARDS = [1, 2, 3, 5, 6, 8, 9, 10, 12, 13, 15, 17, 20, 21, 23, 25, 30, 31, 40, 42]
TEST_SHARDS = [1, 5, 10, 42, 99]
FORMATS = ("parquet", "csv", "tsv")
# the demo data's own settings: DATE_COLUMN, GROUP_ID_COLUMN and SPLIT_DATE are required
# (no defaults, as in the original script); a user's env vars win
SETTINGS = {"date_column": "date", "group_id_column": "customer_id", "split_date": "2024-01-01",
            "label_field": "label"}


def demo_env() -> dict:
    """:data:`SETTINGS` by env var name."""
    from assets_pkg.settings import env_var_of
    from assets_pkg.splits.params import SplitParams

    return {env_var_of(SplitParams, name): value for name, value in SETTINGS.items()}


def use_demo_settings() -> None:
    """Set the demo data's split settings in the environment where the user has not."""
    import os

    for name, value in demo_env().items():
        if not os.environ.get(name, "").strip():
            os.environ[name] = value


def make_rows(n: int, seed: int, n_customers: int = 2000, start_id: int = 0,
              first_day: str = "2023-01-01", days: int = 730, dirty: bool = False) -> pa.Table:
    """``n`` transactions over two years (split date 2024-01-01 falls in the middle).
    ``dirty``: about 0.5% rows without a customer id and 0.5% without a label."""
    rng = np.random.default_rng(seed)
    customers = rng.integers(0, n_customers, n)
    day0 = np.datetime64(first_day)
    dates = day0 + rng.integers(0, days, n).astype("timedelta64[D]")
    labels = LABELS[rng.choice(3, n, p=[0.05, 0.1, 0.85])]
    customer_ids = pa.array(np.char.add("C", customers.astype(str)))
    label_values = pa.array(labels)
    if dirty:
        customer_ids = pa.array(customer_ids.to_pylist(), mask=rng.random(n) < 0.005)
        label_values = pa.array(label_values.to_pylist(), mask=rng.random(n) < 0.005)
    return pa.table(
        {
            "transaction_id": pa.array(np.arange(start_id, start_id + n, dtype=np.int64)),
            "customer_id": customer_ids,
            "date": pa.array(np.datetime_as_string(dates, unit="D")),
            "amount": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2)),
            "merchant__DOT__category": pa.array(np.array(["food", "travel", "retail", "online"])[rng.integers(0, 4, n)]),
            "label": label_values,
        }
    )


def write_shard(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(table, path)
        return
    delimiter = "\t" if ".tsv" in name else ","
    options = pacsv.WriteOptions(delimiter=delimiter, quoting_style="none" if delimiter == "\t" else "needed")
    if name.endswith(".gz"):
        with pa.CompressedOutputStream(str(path), "gzip") as out:
            pacsv.write_csv(table, out, write_options=options)
    else:
        pacsv.write_csv(table, path, write_options=options)


def generate(inbox_dir: Path, scale: str = "demo") -> None:
    """Write the sample shards into ``inbox_dir`` (a local folder or an object-store inbox)."""
    from assets_pkg.demo.framework import inbox_writer

    numbers, rows = (TEST_SHARDS, 200) if scale == "test" else (DEMO_SHARDS, 5000)
    n_customers = 150 if scale == "test" else 4000
    with inbox_writer(inbox_dir) as folder:
        for i, number in enumerate(numbers):
            fmt = FORMATS[i % 3]
            suffix = ".gz" if i == 1 else ""  # one gzip csv shard
            table = make_rows(rows, seed=1000 + number, n_customers=n_customers, start_id=number * 1_000_000,
                              dirty=True)
            write_shard(table, folder / f"part-{number:05d}.{fmt}{suffix}")


def run(ctx) -> None:
    from assets_pkg.splits.checks import evaluate_materialized
    from assets_pkg.splits.discovery import discover
    from assets_pkg.splits.pipeline import manifest_file, read_json

    use_demo_settings()
    inbox = ctx.settings.inbox / INBOX
    found = discover(inbox)
    ctx.report.line(f"inbox {inbox}: {len(found.shards)} shards, {len(found.problems)} refused")
    for problem in found.problems:
        ctx.report.line(f"refused: {problem}")
    results = ctx.evaluate_sensor("splits_shard_sensor")
    for result in results:
        if not result.success:
            raise RuntimeError("the splits run failed; see the run's event log")
    ctx.report.line(f"sensor tick launched {len(results)} run(s)")
    consolidated_in_job = any(
        ev.asset_key.to_user_string() == "splits/consolidated"
        for result in results for ev in result.get_asset_materialization_events()
    )
    if results and not consolidated_in_job:  # a splits_job without it (benchmarks): the demo still shows it
        result = ctx.materialize(["splits/consolidated"])
        if not result.success:
            raise RuntimeError("splits/consolidated failed; see the run's event log")
    manifest = read_json(manifest_file(ctx.settings.warehouse)) or {}
    rows = manifest.get("rows", {})
    if rows:
        ctx.report.line(
            "rows: in {rows_in}, train {train}, val {val}, oot {oot}, dropped by policy {dropped_policy}, "
            "by label {dropped_label}, null customer {dropped_null_customer}, bad date {dropped_bad_date}".format(
                **{k: rows.get(k, 0) for k in ("rows_in", "train", "val", "oot", "dropped_policy", "dropped_label",
                                                "dropped_null_customer", "dropped_bad_date")}
            )
        )
        ctx.report.line(f"customers: {manifest.get('customers')}")
    for split, info in (manifest.get("label_rate") or {}).items():
        ctx.report.line(f"label share {split}: {info.get('share')}")
    ctx.report.line("checks on the files now (assets-pkg check --group splits):")
    for outcome in evaluate_materialized():
        ctx.report.line(f"  {outcome.line()}")
