"""The summary's ERROR checks as pure functions returning CheckOutcome (no dagster import).

Each takes month files (``{month: path}``) and optionally the source and puts the
offending keys (first 20) and their count in the metadata. What each file holds comes from
one read of it (:mod:`assets_pkg.summary.month_scan`, shared by the checks); the source
winners from a DuckDB aggregate over the batches.

- unique_account_month: one row per (account, month) and the month column = the file month
- history_length: every ``<col>_history`` has exactly ``history_length`` elements
- history_matches_source: the rows are exactly the source winners; ``[0]`` and the current
  value equal the winning source value, base_ts equals the winning base_ts
- history_consistency: for an account's consecutive months m-1 and m,
  ``hist_m[1:] == hist_{m-1}[:-1]`` (catches a month left stale after a backfill)
- one_row_per_account (latest_summary): one row per account, at its greatest month
"""

import math
from pathlib import Path

from assets_pkg.checking import ERROR, CheckOutcome, limited
from assets_pkg.duck import quote_ident
from assets_pkg.storage import as_path
from assets_pkg.storage.objects import file_exists
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.month_scan import ListFacts, scan_months
from assets_pkg.summary.months import month_index, month_index_sql, month_str
from assets_pkg.summary.source import Source

ASSET = "summary/account_summary"
LATEST_ASSET = "summary/latest_summary"
CHECK_NAMES = ("unique_account_month", "history_length", "history_matches_source", "history_consistency")


def _texts(name: str, meta: dict) -> tuple[str, str]:
    """(passed text, failed text with ``{count}``) of an account_summary check, from its
    metadata (months_checked, history_length, pairs_checked): the one-step build and the
    fan-out's merge (:func:`merge_outcomes`) word a result alike."""
    if name == "unique_account_month":
        return (f"one row per (account, month) in {meta['months_checked']} months",
                "{count} (account, month) pairs duplicated or in the wrong month file")
    if name == "history_length":
        return (f"every history array has length {meta['history_length']}",
                "{count} rows with a history array not of length " + str(meta["history_length"]))
    if name == "history_matches_source":
        return (f"rows, base_ts, values and [0] equal the source winners in {meta['months_checked']} months",
                "{count} (account, month) rows differ from the winning source record")
    if name == "history_consistency":
        return (f"histories of consecutive months agree ({meta['pairs_checked']} month pairs)",
                "{count} account-months whose history disagrees with the previous month (stale after a backfill?)")
    raise ValueError(f"unknown summary check {name!r}")


def _files(month_files: dict[str, Path]) -> list[str]:
    return [str(month_files[m]) for m in sorted(month_files)]


def _outcome(name, asset, bad_rows, count, ok_text, bad_text, months=(), by_month=None, **meta) -> CheckOutcome:
    """The check over ``months`` (``by_month``: each month's offending rows), with each
    month's own outcome: a month is a partition, and the UI shows each one's result."""
    passed = count == 0
    by_month = by_month or {}
    return CheckOutcome(
        asset=asset,
        name=name,
        passed=passed,
        severity=ERROR,
        description=ok_text if passed else bad_text.format(count=count),
        metadata={"offending_count": int(count), "offending_keys": limited(bad_rows), **meta},
        by_partition={month: _month_outcome(name, asset, month, by_month.get(month, 0), bad_rows, bad_text)
                      for month in months},
    )


def _month_outcome(name, asset, month, count, bad_rows, bad_text) -> CheckOutcome:
    # the offending keys are labelled key@month (the first 20 of the run)
    keys = [label for label in bad_rows if f"@{month}" in label]
    return CheckOutcome(
        asset=asset, name=name, passed=count == 0, severity=ERROR,
        description=f"{month}: " + ("no offending rows" if count == 0 else bad_text.format(count=count)),
        metadata={"month": month, "offending_count": int(count), "offending_keys": limited(keys)},
    )


def check_unique_account_month(con, cfg: SummarySettings, month_files: dict[str, Path],
                               facts: ListFacts | None = None) -> CheckOutcome:
    """One row per (account, month) in each file, and the month column = the file's month
    (from the month scan, :mod:`assets_pkg.summary.month_scan`)."""
    name = "unique_account_month"
    if not month_files:
        return _outcome(name, ASSET, [], 0, "no months materialized", "", months_checked=0)
    facts = facts or scan_months(cfg, con, month_files)
    meta = {"months_checked": len(month_files)}
    return _outcome(name, ASSET, facts.unique_bad, facts.unique_count, *_texts(name, meta),
                    months=sorted(month_files), by_month=facts.by_month.get(name), **meta)


def check_history_length(con, cfg: SummarySettings, month_files: dict[str, Path], facts: ListFacts | None = None) -> CheckOutcome:
    name = "history_length"
    if not month_files:
        return _outcome(name, ASSET, [], 0, "no months materialized", "", months_checked=0)
    meta = {"history_length": int(cfg.history_length)}
    facts = facts or scan_months(cfg, con, month_files)
    return _outcome(name, ASSET, facts.length_bad, facts.length_count, *_texts(name, meta),
                    months=sorted(month_files), by_month=facts.by_month.get(name), **meta)


def check_history_matches_source(con, cfg: SummarySettings, month_files: dict[str, Path], source: Source,
                                 facts: ListFacts | None = None, rows_per_query: int | None = None) -> CheckOutcome:
    """Rows = source winners (independent SQL aggregate over the source, not the build code).

    Per-month digests of the scalar columns against the winners find the suspect months;
    the files' digests and ``[0]`` against the current value come from the month scan
    (:func:`assets_pkg.summary.month_scan.scan_months`), so the files are not read again here. Suspect months are then compared row by row,
    ``[0]`` included. ``rows_per_query`` (default ``max_rows_per_query``): the source records
    one winners' query may aggregate; a month with more is digested in parts of accounts
    (``hash(key) % parts``), which add up to the same digest. Its memory is then bounded by
    that setting, not by the accounts (each part scans the month's records again)."""
    name = "history_matches_source"
    months = sorted(month_files)
    if not months:
        return _outcome(name, ASSET, [], 0, "no months materialized", "", months_checked=0)
    k, m, t = quote_ident(cfg.key_column), quote_ident(cfg.month_column), quote_ident(cfg.timestamp_column)
    idx = [month_index(x) for x in months]
    vals = list(cfg.all_value_columns)
    packed = ", ".join(f"v{i} := v{i}" for i in range(len(vals)))
    mo_col = "_mo" if source.profile().pushdown else "_month_raw"

    def src_sql(chunk: list[int], part: int = 0, parts: int = 1) -> tuple[str, list]:
        """Winners of the months in ``chunk`` (bounded rows: DuckDB cannot spill arg_max
        states), of the accounts in ``part`` of ``parts``."""
        accounts = f" AND hash(key) % {int(parts)} = {int(part)}" if parts > 1 else ""
        sql = f"""
            SELECT key, month_idx, max(ts) AS ts,
                   arg_max(struct_pack({packed}), struct_pack(t := ts, f := _file, r := _row)) AS w
            FROM summary_src
            WHERE {mo_col} BETWEEN ? AND ? AND month_idx BETWEEN ? AND ? AND list_contains(?, month_idx)
              AND {source.good_rows_sql()}{accounts}
            GROUP BY key, month_idx"""
        return sql, [month_str(chunk[0]), month_str(chunk[-1]) + "~", chunk[0], chunk[-1], chunk]

    rows_per_month = source.profile().rows_per_month
    bound = rows_per_query or cfg.max_rows_per_query

    def chunks(idx: list[int]) -> list[list[int]]:
        out, cur, acc = [], [], 0
        for i in idx:
            n = rows_per_month.get(i, 0)
            if cur and acc + n > bound:
                out.append(cur)
                cur, acc = [], 0
            cur.append(i)
            acc += n
        return out + ([cur] if cur else [])

    month_idx_sql = month_index_sql(f"s.{m}")
    diffs = [f"s.{t} IS DISTINCT FROM w.ts"]
    for i, c in enumerate(vals):
        diffs.append(f"s.{quote_ident(c)} IS DISTINCT FROM w.w.v{i}")
    for c in cfg.history_columns:
        i = vals.index(c)
        diffs.append(f"s.{quote_ident(cfg.history_name(c))}[1] IS DISTINCT FROM w.w.v{i}")
    # 1) per-month digests of the scalars (streaming scans, no join): equal digests -> equal rows
    facts = facts or scan_months(cfg, con, month_files)
    # the same terms, in the same order and types, as the month scan's digests
    w_terms = ", ".join(["key", "ts", *(f"w.v{i}" for i in range(len(vals)))])
    s_digest = facts.digests
    idx = [month_index(x) for x in months]
    w_digest = {}
    for chunk in chunks(idx):
        parts = max(1, math.ceil(sum(rows_per_month.get(i, 0) for i in chunk) / bound))
        for part in range(parts):
            sql, params = src_sql(chunk, part, parts)
            for r in con.execute(f"SELECT month_idx, count(*), sum(hash({w_terms})) FROM ({sql}) GROUP BY 1",
                                 params).fetchall():
                rows, total = w_digest.get(month_str(r[0]), (0, 0))
                w_digest[month_str(r[0])] = (rows + r[1], total + r[2])
    suspect = sorted({mo for mo in set(s_digest) | set(w_digest) if s_digest.get(mo) != w_digest.get(mo)}
                     | facts.first_months)
    count, bad, by_month = 0, [], {}
    # 2) only the months whose digests differ: find the offending rows
    for chunk in chunks([month_index(mo) for mo in suspect]):
        chunk_months = [month_str(i) for i in chunk]
        files = [str(month_files[mo]) for mo in chunk_months if mo in month_files] or _files(month_files)[:1]
        sql, params = src_sql(chunk)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE summary_check_src AS
                WITH w AS ({sql}),
                     s AS (SELECT * FROM read_parquet(?, union_by_name = true) WHERE list_contains(?, {m}))
                SELECT coalesce(s.{k}, w.key) AS key,
                       coalesce(s.{m}, printf('%04d-%02d', w.month_idx // 12, w.month_idx % 12 + 1)) AS month,
                       CASE WHEN s.{k} IS NULL THEN 'missing' WHEN w.key IS NULL THEN 'not in source' ELSE 'differs' END AS why
                FROM s FULL OUTER JOIN w ON s.{k} = w.key AND {month_idx_sql} = w.month_idx
                WHERE s.{k} IS NULL OR w.key IS NULL OR {' OR '.join(diffs)}""",
            [*params, files, chunk_months],
        )
        for month, n in con.execute("SELECT month, count(*) FROM summary_check_src GROUP BY 1").fetchall():
            by_month[month] = by_month.get(month, 0) + n
            count += n
        if len(bad) < 20:
            rows = con.execute("SELECT key, month, why FROM summary_check_src ORDER BY month, key LIMIT 20").fetchall()
            bad.extend(f"{r[0]}@{r[1]} ({r[2]})" for r in rows)
        con.execute("DROP TABLE summary_check_src")
    meta = {"months_checked": len(months), "suspect_months": len(suspect)}
    return _outcome(name, ASSET, bad[:20], count, *_texts(name, meta), months=months, by_month=by_month, **meta)


def check_history_consistency(
    con, cfg: SummarySettings, month_files: dict[str, Path], previous: dict[str, Path] | None = None,
    facts: ListFacts | None = None,
) -> CheckOutcome:
    """Consecutive months m-1, m of one account: hist_m[2:L] == hist_{m-1}[1:L-1] (1-based).

    ``previous`` adds neighbour files (e.g. the month before a run's first month) that are
    read but not reported on their own; ``facts`` is a scan already made with them."""
    name = "history_consistency"
    if not month_files:
        return _outcome(name, ASSET, [], 0, "no months materialized", "", pairs_checked=0)
    facts = facts or scan_months(cfg, con, month_files, previous)
    meta = {"pairs_checked": facts.pairs_checked}
    return _outcome(name, ASSET, facts.inconsistent, facts.inconsistent_count, *_texts(name, meta),
                    months=sorted(month_files), by_month=facts.by_month.get(name), **meta)


def check_one_row_per_account(con, cfg: SummarySettings, latest_path: Path | None, month_files: dict[str, Path]) -> CheckOutcome:
    """latest_summary: one row per account, at the account's greatest month."""
    name = "one_row_per_account"
    k, m = quote_ident(cfg.key_column), quote_ident(cfg.month_column)
    if latest_path is None or not file_exists(as_path(latest_path)):
        if month_files:
            return CheckOutcome(LATEST_ASSET, name, False, ERROR, "latest_summary is not materialized but account_summary is",
                                {"offending_count": 0, "offending_keys": []})
        return _outcome(name, LATEST_ASSET, [], 0, "nothing materialized", "")
    dup = con.execute(
        f"SELECT {k} FROM read_parquet(?) GROUP BY 1 HAVING count(*) > 1 ORDER BY 1", [str(latest_path)]
    ).fetchall()
    wrong = []
    if month_files:
        wrong = con.execute(
            f"""WITH truth AS (SELECT {k} AS key, max({m}) AS month FROM read_parquet(?) GROUP BY 1),
                     got AS (SELECT {k} AS key, {m} AS month FROM read_parquet(?))
                SELECT coalesce(truth.key, got.key) FROM truth FULL OUTER JOIN got ON truth.key = got.key
                WHERE truth.key IS NULL OR got.key IS NULL OR truth.month <> got.month ORDER BY 1""",
            [_files(month_files), str(latest_path)],
        ).fetchall()
    bad = [f"{r[0]} (duplicate)" for r in dup] + [f"{r[0]} (not at its greatest month)" for r in wrong]
    return _outcome(
        name, LATEST_ASSET, bad, len(dup) + len(wrong),
        "one row per account, each at its greatest month",
        "{count} accounts duplicated, missing or not at their greatest month",
        duplicates=len(dup), wrong_month=len(wrong),
    )


def summary_outcomes(con, cfg, month_files, source: Source | None, previous=None,
                     facts: ListFacts | None = None, rows_per_query: int | None = None) -> list[CheckOutcome]:
    """Every account_summary check; ``facts``: a month scan already made (e.g. by a
    :class:`~assets_pkg.summary.month_scan.MonthPipeline` during the build) of exactly
    ``month_files`` with ``previous``."""
    if facts is None and month_files:
        facts = scan_months(cfg, con, month_files, previous)
    out = [
        check_unique_account_month(con, cfg, month_files, facts),
        check_history_length(con, cfg, month_files, facts),
    ]
    if source is not None:
        out.append(check_history_matches_source(con, cfg, month_files, source, facts, rows_per_query))
    out.append(check_history_consistency(con, cfg, month_files, previous, facts))
    return out


# metadata a check's parts add up to the whole run's (the rest is the same in every part)
_SUMMED = ("months_checked", "suspect_months", "pairs_checked")


def merge_outcomes(parts: list[list[CheckOutcome]]) -> list[CheckOutcome]:
    """The account_summary checks of a run from those of its consecutive month groups, in
    month order (the fan-out's combine steps each check their months, the pair with the
    month before included): equal to :func:`summary_outcomes` over all the months at once.
    A group's offending keys are its first 20, so the run's first 20 are the first 20 of
    the groups' lists in month order, and each month's own outcome is worded again from
    them, as the one-step build does."""
    merged: list[CheckOutcome] = []
    for name in dict.fromkeys(o.name for part in parts for o in part):
        outcomes = [o for part in parts for o in part if o.name == name]
        checked = [o for o in outcomes if o.by_partition]
        if not checked:  # no month file in the whole run
            merged.append(outcomes[0])
            continue
        meta = {k: v for o in checked for k, v in o.metadata.items() if k not in ("offending_count", "offending_keys")}
        for key in _SUMMED:
            if key in meta:
                meta[key] = sum(int(o.metadata.get(key, 0)) for o in checked)
        bad = [label for o in checked for label in o.metadata["offending_keys"]][:20]
        count = sum(int(o.metadata["offending_count"]) for o in checked)
        by_month = {m: int(p.metadata["offending_count"]) for o in checked for m, p in o.by_partition.items()}
        merged.append(_outcome(name, checked[0].asset, bad, count, *_texts(name, meta), months=sorted(by_month),
                               by_month=by_month, **meta))
    return merged
