"""`summary/account_summary` (monthly) and `summary/latest_summary`: the Dagster layer.

The work lives in the pure modules (engine, build, latest, validate); these assets resolve
settings and paths, call them, and attach metadata and check results.
"""

import warnings

import dagster as dg
from pydantic import Field

from assets_pkg import layout
from assets_pkg.dagster_layer import (
    add_partition_metadata,
    check_result,
    config_class,
    per_partition_check,
    run_level,
)
from assets_pkg.io.locks import domain_lock
from assets_pkg.obs import Stopwatch, peak_rss_mb
from assets_pkg.settings import at_load
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.summary.config import SummarySettings, load_summary_settings
from assets_pkg.summary.engine import rebuild_months
from assets_pkg.summary.latest import latest_reader
from assets_pkg.summary.month_file import key_arrow_type, output_schema, write_month_file
from assets_pkg.summary.months import LATEST_ASSET_PATH, MONTHS_ASSET_PATH
from assets_pkg.summary.plan import existing_month_files, month_file
from assets_pkg.summary.validate import CHECK_NAMES, check_one_row_per_account

ACCOUNT_SUMMARY = dg.AssetKey(list(MONTHS_ASSET_PATH))
LATEST_SUMMARY = dg.AssetKey(list(LATEST_ASSET_PATH))

CHECK_DESCRIPTIONS = {
    "unique_account_month": "One row per (account, month); each row sits in its month's file.",
    "history_length": "Every <col>_history array has exactly history_length elements.",
    "history_matches_source": "Rows, base_ts, values and history[0] equal the winning source records.",
    "history_consistency": "For consecutive months m-1, m of an account: hist_m[1:] == hist_(m-1)[:-1].",
}

# single_run() backfill policies are what DESIGN 5 asks for; their beta notice is noise here
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

# a broken SUMMARY_CONFIG must not stop the other domains loading: the partitions start
# at the declared first month and the summary's runs and sensor fail naming the file
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=at_load(lambda: load_summary_settings().first_month,
                       SummarySettings.model_fields["first_month"].default, "summary"),
    fmt="%Y-%m", end_offset=1,
)


class SummaryConfig(config_class(SummarySettings, defaults=lambda: dict(load_summary_settings()),
                                 exclude=("value_types",))):
    """Summary settings; defaults come from the SUMMARY_CONFIG file (or the built-in ones),
    read when the run starts; ``config_file`` names another such file for this run."""

    config_file: str = Field(
        default="", description="A summary settings file (YAML/JSON) for this run instead of $SUMMARY_CONFIG; "
                                "fields set here still override it (`summary run --config`).")
    accounts: list[str] | None = Field(
        default=None, description="account_summary only: recompute just these accounts, merged into the month files."
    )
    backfill_filter: str | None = Field(
        default=None, description="account_summary only: a predicate over the source columns "
                                  "(`summary run --backfill-filter`); the accounts with matching records in the "
                                  "run's months are rebuilt and merged into the month files.")

    def __init__(self, **values):
        if values.get("config_file"):
            # the settings this run leaves unset come from its file, not from $SUMMARY_CONFIG
            found = load_summary_settings(values["config_file"]).to_dict()
            values = {**{n: found[n] for n in SummarySettings.model_fields if n != "value_types"}, **values}
        super().__init__(**values)

    def settings(self) -> SummarySettings:
        if not self.config_file:
            return super().settings()
        chosen = {n: getattr(self, n) for n in SummarySettings.model_fields if n != "value_types"}
        return SummarySettings.build(**{**dict(load_summary_settings(self.config_file)), **chosen})


def _case_metadata(tags: dict) -> dict:
    return {k.split("/", 1)[1]: int(v) for k, v in tags.items() if k.startswith("summary/") and v.lstrip("-").isdigit()}


@dg.asset(
    key=ACCOUNT_SUMMARY,
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="summary",
    kinds={"duckdb", "parquet"},
    owners=["team:data-platform"],
    code_version="1",
    # each month's rows are checked on their own: one result per month in the UI
    check_specs=[dg.AssetCheckSpec(name, asset=ACCOUNT_SUMMARY, description=CHECK_DESCRIPTIONS[name],
                                   partitions_def=monthly_partitions) for name in CHECK_NAMES],
    metadata={"partition_file": "/".join(["<ASSETS_PKG_DATA_DIR>/warehouse", *MONTHS_ASSET_PATH, "YYYY-MM.parquet"])},
)
def account_summary(context: dg.AssetExecutionContext, config: SummaryConfig, duckdb: DuckDBResource):
    """One row per (account, month): the winning record (greatest base_ts; ties: later batch
    file, then later row) with a `<col>_history` array per history column, `[i]` = the value
    i months earlier, NULL where the account has no record.

    Every month is a pure function of all batch files in `data/inbox/accounts/`, so a run
    over any range of months (one run, one pass over the source, months in order) gives the
    same files as a full rebuild. Checks are computed in-op for the months of the run.
    """
    months = context.partition_keys
    cfg = config.settings()
    result = rebuild_months(
        cfg, months[0], months[-1], month_file, accounts=config.accounts, con=duckdb.connect(), logger=context.log,
        run_id=context.run_id, record_filter=config.backfill_filter,
    )
    for outcome in result.outcomes:
        yield per_partition_check(context, outcome.by_partition, outcome)
    stats = result.stats
    add_partition_metadata(context, {
        month: {"dagster/row_count": rows, "bytes": stats.bytes_per_month.get(month, 0)}
        for month, rows in stats.rows_per_month.items() if month in months})
    metadata = {
        **run_level(result.metadata(), len(months)),
        **_case_metadata(context.run.tags),
        "rows_per_month": dg.MetadataValue.json(result.stats.rows_per_month),
    }
    if config.accounts:
        metadata["accounts_recomputed"] = len(config.accounts)
    yield dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=LATEST_SUMMARY,
    # a dependency, not an input: the body lists the month files itself under the lock, and
    # loading them as an input asked the store about every partition in every format
    deps=[ACCOUNT_SUMMARY],
    group_name="summary",
    kinds={"duckdb", "parquet"},
    owners=["team:data-platform"],
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec(
            "one_row_per_account", asset=LATEST_SUMMARY,
            description="One row per account, each at the account's greatest summarized month.",
        )
    ],
)
def latest_summary(context: dg.AssetExecutionContext, config: SummaryConfig, duckdb: DuckDBResource):
    """One row per account: its row of account_summary at its greatest month (history
    arrays included). Reads only key and month of every month file, then the full rows
    from the files that hold an account's latest month.

    Under the summary's domain lock, over the month files as they are then (a list taken
    before the lock may predate months another run wrote since)."""
    watch = Stopwatch()
    cfg = config.settings()
    con = duckdb.connect()
    path = layout.asset_file(LATEST_ASSET_PATH)
    with domain_lock("summary", context.run_id, logger=context.log):
        months = existing_month_files()
        rows = latest_reader(con, cfg, months)
        # the month files' codecs: no dictionary attempts on the lists, byte-stream-split values
        written = write_month_file(rows if rows is not None else _empty(cfg), path)
        by_month = {p.stem: p for p in months}
        outcome = check_one_row_per_account(con, cfg, written.path, by_month)
    yield check_result(outcome, LATEST_SUMMARY)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": written.rows,
            "bytes": written.bytes,
            "path": dg.MetadataValue.path(str(path)),
            "months_read": len(months),
            "seconds": watch.seconds,
            "peak_rss_mb": peak_rss_mb(),
            **_case_metadata(context.run.tags),
        }
    )


def _empty(cfg: SummarySettings):
    return output_schema(cfg, key_arrow_type(cfg)).empty_table()
