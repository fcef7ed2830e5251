"""``assets-pkg logs fetch --log-id ID --start ISO --end ISO [--bypass-cache]``."""

import json
import logging
import sys


def _cmd_fetch(args) -> int:
    from assets_pkg.logs.fetch import fetch_request
    from assets_pkg.logs.planner import InvalidWindowError
    from assets_pkg.logs.resources import LogSourceResource
    from assets_pkg.logs.store import LogsError
    from assets_pkg.settings import SettingError

    logger = logging.getLogger("assets_pkg.logs")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        source = LogSourceResource(source=args.source).build(logger)
        result = fetch_request(args.log_id, args.start, args.end, source,
                               bypass_cache=True if args.bypass_cache else None, logger=logger)
    except (InvalidWindowError, LogsError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


def register(subparsers) -> None:
    logs = subparsers.add_parser("logs", help="log segment cache")
    sub = logs.add_subparsers(dest="logs_command", required=True)
    fetch = sub.add_parser("fetch", help="fetch a window through the cache (only missing ranges hit the source)")
    fetch.add_argument("--log-id", required=True, help="log id ([A-Za-z0-9._-]+)")
    fetch.add_argument("--start", required=True, help="inclusive start: ISO-8601 (naive = UTC) or epoch ms")
    fetch.add_argument("--end", required=True, help="exclusive end: ISO-8601 (naive = UTC) or epoch ms")
    fetch.add_argument("--bypass-cache", action="store_true", help="read from the source, write nothing")
    fetch.add_argument("--source", choices=["local", "http"], default=None, help="override LOG_SOURCE")
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
