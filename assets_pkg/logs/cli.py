"""``assets-pkg logs fetch --log-id ID --start ISO --end ISO [--bypass-cache]``."""

import json
import logging
import sys


def _cmd_fetch(args) -> int:
    from assets_pkg.logs.fetch import fetch_request
    from assets_pkg.logs.planner import InvalidWindowError
    from assets_pkg.logs.resources import LogSourceResource
    from assets_pkg.logs.store import LogsError, cache_root
    from assets_pkg.settings import SettingError
    from assets_pkg.storage import StorageError, check_reachable

    logger = logging.getLogger("assets_pkg.logs")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        if not args.bypass_cache:
            check_reachable(cache_root())  # LOG_INGESTION_CACHE_DIR may be a bucket of its own
        source = LogSourceResource(source=args.source).build(logger)
        result = fetch_request(args.log_id, args.start, args.end, source,
                               bypass_cache=True if args.bypass_cache else None, logger=logger)
    except (InvalidWindowError, LogsError, SettingError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(describe_fetch(result, args.start, args.end))
    return 0


def _ranges(ranges) -> str:
    from assets_pkg.logs.planner import ms_to_iso

    return ", ".join(f"{ms_to_iso(lo)} to {ms_to_iso(hi)}" for lo, hi in ranges)


def describe_fetch(result: dict, start: str, end: str) -> str:
    """The few lines a person reads after ``logs fetch``: the window as typed, what came
    from the cache and the source, what was written and where."""
    summary = result.get("summary") or {}
    rows = summary.get("row_count")
    lines = [f"{result['log_id']} from {start} to {end}: {result['decision']}"
             + (f", {rows:,} events" if rows is not None else "")]
    if result["cache_cached_ranges"]:
        lines.append(f"  from the cache: {len(result['segments_used'])} segment(s) covering "
                     f"{_ranges(result['cache_cached_ranges'])}")
    if result["rows_processed"] or result["cache_missing_ranges"]:
        lines.append(f"  from the source: {result['rows_processed']:,} events in {result['batches_processed']:,} "
                     f"batch(es) for {_ranges(result['cache_missing_ranges']) or 'the whole window'}")
    if result["segments_written"]:
        lines.append(f"  cached: {len(result['segments_written'])} new segment(s), {result['parts_written']} part(s), "
                     f"{result['bytes_written']:,} bytes")
    if result["uncached_ranges"]:
        lines.append(f"  fetched, not cached (bypass, or too close to now): {_ranges(result['uncached_ranges'])}")
    if result.get("output_file"):
        lines.append(f"  events: {result['output_file']}")
    if result.get("summary_output"):
        lines.append(f"  summary: {result['summary_output']}")
    lines.append(f"  took {result['duration_seconds']:.2f} s (--json for every field)")
    return "\n".join(lines)


def register(subparsers) -> None:
    logs = subparsers.add_parser("logs", help="log segment cache")
    sub = logs.add_subparsers(dest="logs_command", required=True)
    fetch = sub.add_parser("fetch", help="fetch a window through the cache (only missing ranges hit the source)")
    fetch.add_argument("--log-id", required=True, help="log id ([A-Za-z0-9._-]+), required")
    fetch.add_argument("--start", required=True, help="inclusive start, required: ISO-8601 (naive = UTC) or epoch ms")
    fetch.add_argument("--end", required=True, help="exclusive end, required: ISO-8601 (naive = UTC) or epoch ms")
    fetch.add_argument("--bypass-cache", action="store_true", help="read from the source, write nothing to the cache")
    fetch.add_argument("--source", choices=["local", "http"], default=None, help="where the events come from (default: $LOG_SOURCE, else local)")
    fetch.add_argument("--json", action="store_true", help="print the whole result as JSON instead of a summary")
    fetch.add_argument("-v", "--verbose", action="store_true", help="print the structured JSON events to stderr")
    fetch.set_defaults(func=_cmd_fetch)


def main(argv=None) -> int:
    """``python -m assets_pkg.logs.cli fetch ...``: the same subcommand without the other domains."""
    import argparse

    parser = argparse.ArgumentParser(prog="assets-pkg")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["logs", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
