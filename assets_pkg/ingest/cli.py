"""`assets-pkg stream FILE --out DIR` and `assets-pkg ingest scan`."""

import json
import sys

from assets_pkg import layout
from assets_pkg.ingest.files import load_column_types, scan_inbox
from assets_pkg.ingest.stream import stream_file_to_shards
from assets_pkg.storage import as_path


def register(subparsers) -> None:
    stream = subparsers.add_parser(
        "stream", help="stream a csv/tsv/jsonl/parquet file (gzip too) into Parquet shards + rejects"
    )
    stream.add_argument("file", help="the file to read (csv, tsv, jsonl, parquet; .gz too)")
    stream.add_argument("--out", required=True, help="output folder, required (replaced when complete)")
    stream.add_argument("--file-format", default="auto", choices=["auto", "csv", "tsv", "jsonl", "parquet"],
                        help="format (default auto: from the name, checked against the content; gzip is detected)")
    stream.add_argument("--encoding", default="utf-8",
                        help="text encoding, or 'auto' (BOM, else UTF-8, Windows-1252, Latin-1) (default utf-8)")
    stream.add_argument("--chunk-size", type=int, default=100_000, help="rows per chunk (default 100000)")
    stream.add_argument("--memory-limit-mb", type=int, default=256, help="reader memory budget in MiB (default 256)")
    stream.add_argument("--columns", nargs="*", help="keep only these columns (default: all)")
    stream.add_argument("--skip-rows", type=int, default=0, help="lines to skip before the header (default 0)")
    stream.add_argument("--skip-data-rows", type=int, default=0, help="data lines to skip after the header (default 0)")
    stream.add_argument("--max-rows", type=int, help="stop after this many rows (default: no limit)")
    stream.add_argument("--keep-whitespace", action="store_true",
                        help="keep spaces around header names and values (default: stripped)")
    stream.add_argument("--keep-empty", action="store_true",
                        help="keep rows whose columns are all empty, blank lines included (default: skipped)")
    stream.add_argument("--stop-on-error", action="store_true", help="fail on the first bad row (default: collect rejects)")
    stream.add_argument("--error-threshold", type=float, default=0.05,
                        help="share of data lines that may be rejected before the read stops (default 0.05)")
    stream.add_argument("--max-quoted-lines", type=int, default=1000,
                        help="lines a quoted value may span; an opening quote that does not close within them "
                             "is rejected as unterminated_quote and reading resumes on the next line (default 1000)")
    stream.add_argument("--delimiter", help="field delimiter, one character (default: from the name and content)")
    stream.add_argument("--shard-rows", type=int, default=1_000_000, help="rows per output Parquet shard (default 1000000)")
    stream.add_argument("--no-progress", action="store_true", help="no progress bar")
    stream.set_defaults(func=_cmd_stream)

    ingest = subparsers.add_parser("ingest", help="file ingest helpers")
    ingest_sub = ingest.add_subparsers(dest="ingest_command", required=True)
    scan = ingest_sub.add_parser("scan", help="list the inbox files the sensor would ingest, and refusals")
    scan.set_defaults(func=_cmd_scan)


def _cmd_stream(args) -> int:
    from assets_pkg.reader import ReaderError

    try:
        result = stream_file_to_shards(
            args.file,
            args.out,
            shard_rows=args.shard_rows,
            file_format=args.file_format,
            encoding=args.encoding,
            chunk_size=args.chunk_size,
            memory_limit_mb=args.memory_limit_mb,
            columns=args.columns or None,
            column_types=load_column_types(as_path(args.file)),
            skip_rows=args.skip_rows,
            skip_data_rows=args.skip_data_rows,
            max_rows=args.max_rows,
            skip_empty=not args.keep_empty,
            strip_whitespace=not args.keep_whitespace,
            continue_on_error=not args.stop_on_error,
            error_threshold=args.error_threshold,
            max_quoted_lines=args.max_quoted_lines,
            delimiter=args.delimiter,
            report_progress=not args.no_progress,
        )
    except (ReaderError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def _cmd_scan(args) -> int:
    scan = scan_inbox(layout.inbox_dir("files"))
    for f in scan.files:
        print(f"ok       {f.partition_key} -> {f.stem}/")
    for problem in scan.refused:
        print(f"refused  {problem}")
    return 1 if scan.refused else 0
