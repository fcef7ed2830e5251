"""The split invariants as pure checks over the files materialized now (no dagster import).

* ``no_customer_leakage`` (ERROR, splits/oot): train ∩ oot = ∅, train ∩ val = ∅ and, with
  ``exclude_known``, known ∩ oot = ∅. Offending ids in metadata.
* ``shard_mapping`` (ERROR, splits/train): every output shard number exists in the input,
  output names are shard names, every output is current (its state fingerprint equals
  the allocation's: no shard left behind when a new shard moved one of its customers), and
  no input shard failed to profile (``failed_shards`` in the manifest).
* ``row_accounting`` (ERROR, splits/train): per shard and in total, rows_in = train + val +
  oot + dropped by policy + dropped by label + dropped invalid + rejected lines, and the
  rows in each output file equal what the allocation predicted from pass 1; a shard that
  failed to profile is a problem (its rows are accounted nowhere).
* ``split_ratio`` (WARN, splits/customer_allocation): train share of known customers within
  2 points of TRAIN_RATIO.
* ``consolidated_matches_shards`` (ERROR, splits/consolidated): the export tree in the chosen
  mode has exactly the rows of its split's shards (per part in shard mode), and no file of
  the other mode.
"""

from pathlib import Path

from assets_pkg.checking import ERROR, WARN, CheckOutcome, limited
from assets_pkg.duck import quote_ident
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.outputs import file_rows, files_relation, shard_output_files
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.export import export_problems
from assets_pkg.splits.pipeline import (
    manifest_file,
    read_json,
    stale_shards,
)
from assets_pkg.splits.rows import DROP_REASONS, SPLITS

RATIO_TOLERANCE = 0.02


def _customers(con, warehouse: Path, split: str, column: str) -> str | None:
    """Register the distinct customer ids of one split's shards as a temp table."""
    files = [p for k, p in sorted(shard_output_files(warehouse, split).items()) if k.isdigit()]
    name = f"__cust_{split}"
    con.execute(f"DROP TABLE IF EXISTS {name}")
    rel = files_relation(con, files, [column])
    if rel is None:
        con.execute(f"CREATE TEMP TABLE {name} (customer VARCHAR)")
    else:
        rel.create_view(f"{name}_v", replace=True)
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT DISTINCT NULLIF(TRIM(CAST({quote_ident(column)} AS VARCHAR)), '') AS customer "
            f"FROM {name}_v"
        )
    return name


def no_customer_leakage(con, warehouse: Path, params: SplitParams) -> CheckOutcome:
    names = {s: _customers(con, warehouse, s, params.group_id_column) for s in SPLITS}

    def overlap(a: str, b: str) -> list[str]:
        return [r[0] for r in con.execute(
            f"SELECT customer FROM {a} INTERSECT SELECT customer FROM {b} ORDER BY 1").fetchall()]

    train_oot = overlap(names["train"], names["oot"])
    train_val = overlap(names["train"], names["val"])
    known_oot: list[str] = []
    if params.excludes_known:
        known_oot = sorted(set(overlap(names["val"], names["oot"])) | set(train_oot))
    passed = not (train_oot or train_val or known_oot)
    parts = [f"train∩oot={len(train_oot)}", f"train∩val={len(train_val)}"]
    if params.excludes_known:
        parts.append(f"known∩oot={len(known_oot)}")
    return CheckOutcome(
        asset="splits/oot",
        name="no_customer_leakage",
        passed=passed,
        severity=ERROR,
        description=", ".join(parts) + f" (oot_policy={params.oot_policy})",
        metadata={
            "train_oot": len(train_oot),
            "train_val": len(train_val),
            "known_oot": len(known_oot),
            "offending_train_oot": limited(train_oot),
            "offending_train_val": limited(train_val),
            "offending_known_oot": limited(known_oot),
        },
    )


def shard_mapping(warehouse: Path, inbox: Path, manifest: dict | None) -> CheckOutcome:
    inputs = {s.key for s in discover(inbox).shards}
    orphans, bad_names = [], []
    for split in SPLITS:
        for key, path in shard_output_files(warehouse, split).items():
            if not key.isdigit():
                bad_names.append(f"{split}/{path.name}")
            elif key not in inputs:
                orphans.append(f"{split}/{path.name}")
    stale = stale_shards(warehouse, manifest or {})
    # shards that failed to profile are not split: never a pass while one is in the inbox
    failed = sorted(k for k in (manifest or {}).get("failed_shards", {}) if k in inputs)
    passed = not (orphans or bad_names or stale or failed)
    return CheckOutcome(
        asset="splits/train",
        name="shard_mapping",
        passed=passed,
        severity=ERROR,
        description=(
            f"{len(orphans)} output shard(s) without an input shard, {len(bad_names)} badly named, "
            f"{len(stale)} shard(s) not split with the current allocation"
            + (f", {len(failed)} failed to profile: {', '.join(failed[:10])}" if failed else "")
        ),
        metadata={
            "input_shards": len(inputs),
            "orphans": limited(orphans),
            "bad_names": limited(bad_names),
            "stale_shards": limited(stale),
            "failed_shards": limited(failed),
        },
    )


def row_accounting(warehouse: Path, manifest: dict | None) -> CheckOutcome:
    shards = (manifest or {}).get("shards", {})
    # a shard that failed to profile has rows nobody accounted for
    problems = [f"{key}: not profiled, its rows are not accounted ({v['error']})"
                for key, v in sorted((manifest or {}).get("failed_shards", {}).items())]
    totals = {k: 0 for k in ("rows_in", *SPLITS, *DROP_REASONS, "rejected_lines")}
    files = {s: shard_output_files(warehouse, s) for s in SPLITS}
    for key, entry in sorted(shards.items()):
        rows = entry["rows"]
        parts = sum(rows.get(k, 0) for k in (*SPLITS, *DROP_REASONS, "rejected_lines"))
        if parts != entry["rows_in"]:
            problems.append(f"{key}: rows_in {entry['rows_in']} != parts {parts}")
        for k in totals:
            totals[k] += entry["rows_in"] if k == "rows_in" else rows.get(k, 0)
        for split in SPLITS:
            path = files[split].get(key)
            actual = file_rows(path) if path is not None else 0
            if actual != rows.get(split, 0):
                problems.append(f"{key}/{split}: file has {actual} rows, expected {rows.get(split, 0)}")
    extra = sorted({k for s in SPLITS for k in files[s] if k.isdigit() and k not in shards})
    for key in extra:
        problems.append(f"{key}: output without an entry in the allocation")
    parts_total = sum(totals[k] for k in totals if k != "rows_in")
    if parts_total != totals["rows_in"]:
        problems.append(f"total: rows_in {totals['rows_in']} != parts {parts_total}")
    return CheckOutcome(
        asset="splits/train",
        name="row_accounting",
        passed=not problems and manifest is not None,
        severity=ERROR,
        description=(
            f"{len(shards)} shards: in {totals['rows_in']} = train {totals['train']} + val {totals['val']} + "
            f"oot {totals['oot']} + policy {totals['dropped_policy']} + label {totals['dropped_label']} + "
            f"invalid {totals['dropped_null_customer'] + totals['dropped_bad_date']} + rejected {totals['rejected_lines']}"
            + (f"; {len(problems)} problem(s)" if problems else "")
            + ("" if manifest is not None else "; no allocation manifest")
        ),
        metadata={**totals, "problems": limited(problems)},
    )


def split_ratio(manifest: dict | None, params: SplitParams) -> CheckOutcome:
    customers = (manifest or {}).get("customers", {})
    known = customers.get("known", 0)
    share = customers.get("train", 0) / known if known else 0.0
    passed = known > 0 and abs(share - params.train_ratio) <= RATIO_TOLERANCE
    return CheckOutcome(
        asset="splits/customer_allocation",
        name="split_ratio",
        passed=passed,
        severity=WARN,
        description=f"train share of {known} known customers {share:.3f} vs TRAIN_RATIO {params.train_ratio}",
        metadata={"known_customers": known, "train_share": round(share, 4), "train_ratio": params.train_ratio},
    )


def consolidated_matches(warehouse: Path, exports: Path, params: SplitParams) -> CheckOutcome:
    problems, meta = export_problems(warehouse, exports, params)
    return CheckOutcome(
        asset="splits/consolidated",
        name="consolidated_matches_shards",
        passed=not problems,
        severity=ERROR,
        description="; ".join(problems[:10]) or f"export tree ({meta['mode']}) has exactly the split shards' rows",
        metadata={**meta, "problems": limited(problems)},
    )


def global_outcomes(con, warehouse: Path, inbox: Path, params: SplitParams) -> list[CheckOutcome]:
    """The pass-2 invariants over every shard materialized now."""
    manifest = read_json(manifest_file(warehouse))
    return [
        no_customer_leakage(con, warehouse, params),
        shard_mapping(warehouse, inbox, manifest),
        row_accounting(warehouse, manifest),
    ]
