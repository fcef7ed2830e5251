"""`ingest/files`: one dynamic partition per inbox file, streamed into Parquet shards."""

import dagster as dg

from assets_pkg import layout
from assets_pkg.dagster_layer import add_partition_metadata, config_class, log_progress, per_partition_check
from assets_pkg.fanout import fanout_asset, from_message, to_message
from assets_pkg.ingest.files import find_inbox_file, load_column_types
from assets_pkg.ingest.quality import reject_rate_outcome
from assets_pkg.ingest.settings import IngestSettings
from assets_pkg.ingest.stream import stream_file_to_shards
from assets_pkg.io.locks import domain_lock

INGEST_KEY = dg.AssetKey(["ingest", "files"])
ingest_partitions = dg.DynamicPartitionsDefinition(name="ingest_files")


def inbox_dir():
    return layout.inbox_dir("files")


def output_root():
    return layout.asset_dir(INGEST_KEY.path)


class IngestConfig(config_class(IngestSettings)):
    """How inbox files are streamed (declared in ``ingest/settings.py``); env defaults are
    read when the run starts."""


@dg.asset(
    key=INGEST_KEY,
    partitions_def=ingest_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    kinds={"parquet", "csv"},
    owners=["team:data-platform"],
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec(
            "reject_rate",
            asset=INGEST_KEY,
            description="WARN when a file's rejected rows exceed reject_warn_rate of its rows.",
            partitions_def=ingest_partitions,  # one result per file
        )
    ],
)
def ingest_files(context: dg.AssetExecutionContext, config: IngestConfig):
    """Stream each inbox file (csv/tsv/jsonl, gzip too) into bounded Parquet shards.

    Output: `data/warehouse/ingest/files/<file stem>/part-NNNNN.parquet` plus
    `rejects.parquet` (line, error type, raw text) for rows that could not be read. The
    folder is replaced only when the new one is complete. One run covers every file the
    sensor found; per-file metadata: rows, rejects, rows/s, peak memory.
    """
    metadata, check_results = report_files(context, config, ingest_file_keys(context, config, context.partition_keys))
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


def ingest_file_keys(context, config: IngestConfig, keys: list[str]) -> dict:
    """Stream the inbox files ``keys`` into their folders; each file's record (metadata and
    line counts). The one-step asset and each fan-out step run this."""
    settings = config.settings()
    records = {}
    for key in keys:
        # one writer per output folder: the source is read under its lock, so a run that
        # waited publishes the file as it is now, never over a newer run's output
        stem = find_inbox_file(inbox_dir(), key).stem
        with domain_lock("ingest", context.run_id, logger=context.log, part=stem):
            source = find_inbox_file(inbox_dir(), key)
            result = stream_file_to_shards(
                source.path,
                output_root() / source.stem,
                shard_rows=settings.shard_rows,
                column_types=load_column_types(source.path),
                **settings.reader_options(),
                progress_callback=log_progress(context),
            )
        records[key] = {"metadata": to_message(_file_metadata(result, source.identity())),
                        "lines": [result.row_lines, result.rejects]}
    return records


def report_files(context, config: IngestConfig, records: dict) -> tuple[dict, list]:
    """Each file's metadata on its partition and the reject-rate check, one result per file."""
    add_partition_metadata(context, {key: from_message(r["metadata"]) for key, r in records.items()})
    per_file = {key: tuple(r["lines"]) for key, r in records.items()}
    outcome = reject_rate_outcome(per_file, config.settings().reject_warn_rate)
    return {}, [per_partition_check(context, outcome.by_partition, outcome)]


def _file_metadata(result, identity: str) -> dict:
    return {
        "dagster/row_count": result.rows,
        "rejects": result.rejects,
        "lines_read": result.lines_read,
        "skipped_lines": result.skipped_lines,
        "reject_rate": round(result.reject_rate, 6),
        "shards": result.shards,
        "bytes": result.bytes,
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
        "peak_rss_mb": result.peak_rss_mb,
        "path": dg.MetadataValue.path(result.output_dir),
        "source": dg.MetadataValue.path(result.source),
        "source_identity": identity,
    }


# `ingest/files` for the cluster executors: one step per inbox file (or per
# FANOUT_BATCH_PARTITIONS files), each writing only its own files' folders
ingest_files_fanout = fanout_asset(ingest_files, domain="ingest", step=ingest_file_keys, finish=report_files,
                                   config=IngestConfig)
