"""`assets-pkg summary plan` and `assets-pkg summary run` (the Spark job's modes).

- plan: the case counts (I new / II forward / III backfill) and the months an incremental
  run would rebuild; writes nothing (the old `--dry-run`).
- run --mode initial|forward|backfill|incremental [--start-month] [--end-month]
  [--accounts ...]: one Dagster run (account_summary over a month range, then
  latest_summary) on the instance at DAGSTER_HOME, visible in the UI.
"""

import sys

from assets_pkg.summary.months import add_months, is_month, month_index

MODES = ("initial", "forward", "backfill", "incremental")


def register(subparsers) -> None:
    summary = subparsers.add_parser("summary", help="account summary: plan or run an update")
    sub = summary.add_subparsers(dest="summary_command", required=True)
    plan = sub.add_parser("plan", help="print case counts and the months an incremental run would rebuild (writes nothing)")
    plan.set_defaults(func=_cmd_plan)
    run = sub.add_parser("run", help="materialize account_summary (+ latest_summary) for a mode")
    run.add_argument("--mode", choices=MODES, default="incremental",
                     help="initial: every month; forward: months after the last summarized one; "
                          "backfill: --start-month and the 35 months after it; incremental: the new batch files (default)")
    run.add_argument("--start-month", help="YYYY-MM (initial/forward: override; backfill: required)")
    run.add_argument("--end-month", help="YYYY-MM (default: the last month with records)")
    run.add_argument("--accounts", nargs="+", help="recompute only these accounts (merged into the month files)")
    run.set_defaults(func=_cmd_run)


def _cmd_plan(args) -> int:
    from assets_pkg.summary.plan import plan_pending

    try:
        plan, new, gone = plan_pending()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not new and not gone:
        print("no new account batch files: nothing to rebuild")
        return 0
    for line in plan.lines():
        print(line)
    return 0


def resolve_range(mode: str, start: str | None, end: str | None) -> tuple[str | None, str | None, str]:
    """(start, end, note) for a mode; (None, None, why) when there is nothing to do."""
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.engine import source_months
    from assets_pkg.summary.plan import existing_month_files, plan_pending

    for value, name in ((start, "--start-month"), (end, "--end-month")):
        if value is not None and not is_month(value):
            raise ValueError(f"{name} {value!r} is not a month YYYY-MM")
    cfg = load_summary_settings()
    if mode == "incremental":
        plan, new, gone = plan_pending()
        if plan.empty:
            if new:
                from assets_pkg.summary import state

                state.record_without_rebuild(new)
            return None, None, "no new records: nothing to rebuild"
        return start or plan.start, end or plan.end, "\n".join(plan.lines())
    months = source_months(cfg)
    if not months:
        return None, None, f"no account records in {cfg.source_path}"
    last = end or months[-1]
    if mode == "initial":
        return start or months[0], last, "initial build of every month"
    if mode == "forward":
        done = [p.stem for p in existing_month_files()]
        first = start or (add_months(max(done), 1) if done else months[0])
        if month_index(first) > month_index(last):
            return None, None, f"forward: nothing after {max(done)}"
        return first, last, "forward"
    if mode == "backfill":
        if not start:
            raise ValueError("--mode backfill needs --start-month (the corrected month)")
        stop = end or min(add_months(start, cfg.history_length - 1), months[-1], key=month_index)
        return start, stop, f"backfill of {start}: months {start}..{stop}"
    raise ValueError(f"unknown mode {mode!r}")


def _cmd_run(args) -> int:
    from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
    from assets_pkg.dagster_layer import materialize_selection
    from assets_pkg.instance import open_instance
    from assets_pkg.settings import get_settings

    try:
        start, end, note = resolve_range(args.mode, args.start_month, args.end_month)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(note)
    if start is None:
        return 0
    from assets_pkg.definitions import defs
    from assets_pkg.summary.assets import ACCOUNT_SUMMARY, LATEST_SUMMARY

    run_config = {}
    if args.accounts:
        run_config = {"ops": {"summary__account_summary": {"config": {"accounts": list(args.accounts)}}}}
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
