"""`assets-pkg summary plan` and `assets-pkg summary run` (the Spark job's modes).

- plan [--config FILE]: the case counts (I new / II forward / III backfill) and the months
  an incremental run would rebuild; writes nothing (the old `--dry-run`).
- run --mode initial|forward|backfill|incremental [--start-month] [--end-month]
  [--accounts ...] [--backfill-filter SQL] [--config FILE]: one Dagster run
  (account_summary over a month range, then latest_summary) on the instance at
  DAGSTER_HOME, visible in the UI. `--config` goes into the run config (`config_file`), so
  the run itself uses that file's settings.
"""

import sys

from assets_pkg.summary.months import add_months, current_month, is_month, month_index, month_str

MODES = ("initial", "forward", "backfill", "incremental")


def register(subparsers) -> None:
    summary = subparsers.add_parser("summary", help="account summary: plan or run an update")
    sub = summary.add_subparsers(dest="summary_command", required=True)
    plan = sub.add_parser("plan", help="print case counts and the months an incremental run would rebuild (writes nothing)")
    _config_arg(plan)
    plan.set_defaults(func=_cmd_plan)
    run = sub.add_parser("run", help="materialize account_summary (+ latest_summary) for a mode")
    run.add_argument("--mode", choices=MODES, default="incremental",
                     help="initial: every month; forward: the current month (or --start-month..--end-month), as "
                          "the original; backfill: --start-month and the 35 months after it; incremental (default): "
                          "the months the new batch files affect plus every month with records after the last "
                          "summarized one")
    run.add_argument("--start-month", help="YYYY-MM (initial: override; forward: default the current month; "
                                           "backfill: required unless --backfill-filter)")
    run.add_argument("--end-month", help="YYYY-MM (forward: default --start-month; others: the last month with records)")
    run.add_argument("--accounts", nargs="+", help="recompute only these accounts (merged into the month files) (default: every account)")
    run.add_argument("--backfill-filter", metavar="SQL",
                     help="backfill only: a predicate over the source columns (e.g. \"base_ts >= '2024-06-01'\"); "
                          "the accounts with matching records are rebuilt from --start-month (default: the first "
                          "matching month) for 36 months, merged into the month files")
    _config_arg(run)
    run.set_defaults(func=_cmd_run)


def _config_arg(parser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="summary settings file (YAML/JSON); default: $SUMMARY_CONFIG, else the built-in settings")


def _settings(args):
    from assets_pkg.summary.config import load_summary_settings

    return load_summary_settings(getattr(args, "config", None))


def _cmd_plan(args) -> int:
    from assets_pkg.summary.plan import plan_pending

    try:
        plan, new, gone = plan_pending(cfg=_settings(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not new and not gone:
        print("no new account batch files: nothing to rebuild")
        return 0
    for line in plan.lines():
        print(line)
    return 0


def resolve_range(mode: str, start: str | None, end: str | None, cfg=None, record_filter: str | None = None,
                  now_month: str | None = None) -> tuple[str | None, str | None, str]:
    """(start, end, note) for a mode; (None, None, why) when there is nothing to do.
    ``cfg``: the settings (default: $SUMMARY_CONFIG)."""
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.engine import source_months
    from assets_pkg.summary.plan import existing_month_files, plan_pending

    for value, name in ((start, "--start-month"), (end, "--end-month")):
        if value is not None and not is_month(value):
            raise ValueError(f"{name} {value!r} is not a month YYYY-MM")
    if record_filter is not None and mode != "backfill":
        raise ValueError(f"--backfill-filter applies to --mode backfill only (not {mode})")
    cfg = cfg or load_summary_settings()
    if mode == "forward":
        # as the original: one month, the current one unless given
        first = start or now_month or current_month()
        last = end or first
        if month_index(first) > month_index(last):
            raise ValueError(f"--end-month {last} is before --start-month {first}")
        return first, last, f"forward: months {first}..{last}"
    months = source_months(cfg, now_month=now_month)
    if mode == "incremental":
        plan, new, gone = plan_pending(cfg=cfg)
        done = [p.stem for p in existing_month_files()]
        # months with records after the last summarized one: the old forward ("catch up")
        after = [m for m in months if not done or month_index(m) > month_index(max(done))]
        notes = [] if plan.empty else list(plan.lines())
        if after:
            notes.append(f"months with records after the last summarized one: {after[0]}..{after[-1]}")
        if plan.empty and not after:
            if new:
                from assets_pkg.summary import state

                state.record_without_rebuild(new)
            return None, None, "no new records and no unsummarized month: nothing to rebuild"
        lo = min([m for m in (plan.start, after[0] if after else None) if m], key=month_index)
        hi = max([m for m in (plan.end, after[-1] if after else None) if m], key=month_index)
        return start or lo, end or hi, "\n".join(notes)
    if not months:
        return None, None, f"no account records in {cfg.source_path}"
    last = end or months[-1]
    if mode == "initial":
        return start or months[0], last, "initial build of every month"
    if mode == "backfill":
        if not start and record_filter is None:
            raise ValueError("--mode backfill needs --start-month (the corrected month) or --backfill-filter")
        first = start or _first_matching_month(cfg, record_filter, now_month)
        if first is None:
            return None, None, f"--backfill-filter {record_filter!r}: no matching records"
        stop = end or min(add_months(first, cfg.history_length - 1), months[-1], key=month_index)
        return first, stop, f"backfill of {first}: months {first}..{stop}"
    raise ValueError(f"unknown mode {mode!r}")


def _first_matching_month(cfg, record_filter: str, now_month: str | None) -> str | None:
    """The earliest month holding a record that passes the filter (None: no record does)."""
    from assets_pkg.duck import connect
    from assets_pkg.summary.record_filter import matching_months_sql, validate_filter
    from assets_pkg.summary.source import VIEW, Source, list_batch_files

    expr = validate_filter(cfg, record_filter)
    con = connect()
    with Source(con, cfg, list_batch_files(cfg.source_path), now_month=now_month) as source:
        source.profile()
        row = con.execute(matching_months_sql(cfg, VIEW, source.good_rows_sql(), expr)).fetchone()
    return None if row is None or row[0] is None else month_str(int(row[0]))


def _cmd_run(args) -> int:
    from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
    from assets_pkg.dagster_layer import materialize_selection
    from assets_pkg.instance import open_instance
    from assets_pkg.settings import get_settings
    from assets_pkg.summary.record_filter import validate_filter

    try:
        cfg = _settings(args)
        record_filter = args.backfill_filter
        if record_filter is not None:
            record_filter = validate_filter(cfg, record_filter)
        start, end, note = resolve_range(args.mode, args.start_month, args.end_month, cfg, record_filter)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(note)
    if start is None:
        return 0
    from assets_pkg.definitions import defs
    from assets_pkg.summary.assets import ACCOUNT_SUMMARY, LATEST_SUMMARY

    common = {"config_file": str(args.config)} if args.config else {}
    own = dict(common)
    if args.accounts:
        own["accounts"] = list(args.accounts)
    if record_filter is not None:
        own["backfill_filter"] = record_filter
    run_config = {"ops": {"summary__account_summary": {"config": own}}}
    if common:
        run_config["ops"]["summary__latest_summary"] = {"config": common}
    tags = {RANGE_START_TAG: start, RANGE_END_TAG: end, "summary/mode": args.mode}
    with open_instance(get_settings()) as instance:
        # Resolved while this instance is live: Dagster reads its defs-state storage then.
        result = materialize_selection(defs, instance, [ACCOUNT_SUMMARY, LATEST_SUMMARY], run_config=run_config,
                                       tags=tags, log_level="WARNING", raise_on_error=False)
    print(f"run {result.run_id}: months {start}..{end} {'succeeded' if result.success else 'FAILED'}")
    failed = 0
    for ev in result.get_asset_check_evaluations():
        status = "PASS" if ev.passed else "FAIL"
        failed += not ev.passed
        print(f"{status:4}  {ev.asset_key.to_user_string()}:{ev.check_name}  {ev.description or ''}")
    return 0 if result.success and not failed else 1
