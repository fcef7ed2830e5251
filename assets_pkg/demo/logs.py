"""Sample log events for the logs domain, and its demo run.

``generate`` writes a few UTC days of JSONL events for two logs (``app`` plain JSONL,
``web`` gzip). ``run`` fetches an ad-hoc window first (a miss), then materializes the daily
partitions (a partial hit where the ad-hoc window already cached part of the day, misses
elsewhere), re-runs one partition (a hit) and reports decisions, summaries and checks.
"""

import gzip
import json
import random
import re
from pathlib import Path

import dagster as dg

from assets_pkg.io.atomic import atomic_path
from assets_pkg.logs.checks import evaluate_materialized
from assets_pkg.logs.partitions import log_ids, partition_key
from assets_pkg.logs.planner import day_window

INBOX = "logs"
DEMO_LOGS = ("app", "web")
DEMO_DAYS = ("2025-01-01", "2025-01-02", "2025-01-03")
EVENTS_PER_DAY = {"demo": 50_000, "test": 120}
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR")
_DAY_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def generate(inbox_dir: Path, scale: str = "demo") -> None:
    """Write the sample JSONL files into ``inbox_dir`` (a folder or an object-store prefix):
    each file is made locally and published whole, so a sensor never reads half of one."""
    per_day = EVENTS_PER_DAY[scale]
    rng = random.Random(11)
    for log_id in DEMO_LOGS:
        folder = inbox_dir / log_id
        for day in DEMO_DAYS:
            start_ms, end_ms = day_window(day)
            stamps = sorted(rng.randrange(start_ms, end_ms) for _ in range(per_day))
            lines = []
            for i, ts in enumerate(stamps):
                event = {"timestamp": ts, "event_id": f"{log_id}-{day}-{i:07d}", "level": rng.choice(LEVELS),
                         "message": f"request {i} served", "host": f"{log_id}-{rng.randint(1, 4)}",
                         "latency_ms": rng.randint(1, 900)}
                lines.append(json.dumps(event))
            text = "\n".join(lines) + "\n"
            if log_id == "web":
                with atomic_path(folder / f"{day}.jsonl.gz") as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
                    fh.write(text)
            else:
                with atomic_path(folder / f"{day}.jsonl") as tmp:
                    tmp.write_text(text, encoding="utf-8")


def inbox_days(inbox_dir: Path) -> list[str]:
    """Days named in the inbox's file names (the generated ones, or a user's own files)."""
    days = {m.group(1) for p in inbox_dir.glob("*/*") if (m := _DAY_RE.search(p.name))}
    return sorted(days) or list(DEMO_DAYS)


def _metadata(result, asset_path: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if "/".join(mat.asset_key.path) == asset_path:
            return {k: v.value for k, v in mat.metadata.items()}
    return {}


def _output_metadata(result, node: str) -> dict:
    for event in result.events_for_node(node):
        if event.is_successful_output:
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    return {}


def _user_error(exc: BaseException) -> BaseException:
    """The error the asset raised, not Dagster's step wrapper around it."""
    return getattr(exc, "user_exception", None) or exc.__cause__ or exc


def run(ctx) -> None:
    inbox = ctx.settings.inbox / INBOX
    configured = log_ids()
    ids = [x for x in configured if (inbox / x).is_dir()]
    skipped = sorted({p.name for p in inbox.iterdir() if p.is_dir()} - set(configured)) if inbox.is_dir() else []
    if skipped:
        ctx.report.line(f"inbox logs not in LOG_IDS (not materialized): {', '.join(skipped)}")
    days = inbox_days(inbox)
    # a partition materialized by an earlier demo (or the daily schedule) is not run again
    done = ctx.instance.get_materialized_partitions(dg.AssetKey(["logs", "log_summary"]))
    todo = [(log_id, day) for log_id in ids for day in days if str(partition_key(log_id, day)) not in done]
    if ids and not todo:
        ctx.report.line(f"every (log, day) partition of {', '.join(ids)} x {len(days)} day(s) is materialized: "
                        "nothing to run")
        ids = []

    # 1. an ad-hoc window first: the middle of the second day of the first log (a miss)
    if ids and len(days) >= 1:
        day = days[min(1, len(days) - 1)]
        start_ms, _ = day_window(day)
        config = {"ops": {"fetch_log_window": {"config": {
            "log_id": ids[0], "start": str(start_ms + 6 * 3_600_000), "end": str(start_ms + 18 * 3_600_000)}}}}
        result = ctx.execute_job("logs_fetch_window_job", run_config=config)
        # the output's metadata, not the output value: a run through Celery hands back a
        # result whose values are only loadable inside its context manager
        out = _output_metadata(result, "fetch_log_window")
        ctx.report.line(
            f"ad-hoc {ids[0]} {day} 06:00-18:00: {out['decision']:<7} rows={out['dagster/row_count']:>7,} "
            f"written={out['segments_written']} segment(s) in {out['seconds']:.2f} s"
        )

    # 2. the daily partitions: partial where the ad-hoc window is cached, miss elsewhere. A
    # partition that fails (its source broke) is reported and the others still run, as one
    # run per partition would in the daemon.
    for log_id, day in todo:
        try:
            result = ctx.materialize(["logs/log_events", "logs/log_summary"],
                                     partition_key=partition_key(log_id, day))
        except Exception as exc:
            cause = _user_error(exc)
            ctx.report.line(f"{log_id:<5} {day}: FAILED {type(cause).__name__}: {cause}")
            ctx.report.errors.append(f"logs {log_id} {day}: {type(cause).__name__}: {cause}")
            continue
        events, summary = _metadata(result, "logs/log_events"), _metadata(result, "logs/log_summary")
        ctx.report.line(
            f"{log_id:<5} {day}: {events.get('decision', '?'):<7} fetched={events.get('rows_fetched', 0):>7,} "
            f"rows={summary.get('dagster/row_count', 0):>7,} segments={summary.get('segments', 0)} "
            f"used={events.get('segments_used', 0)} written={events.get('segments_written', 0)}"
        )

    # 3. a re-run is a full cache hit: zero source calls
    if ids:
        result = ctx.materialize(["logs/log_events", "logs/log_summary"], partition_key=partition_key(ids[0], days[0]))
        meta = _metadata(result, "logs/log_events")
        ctx.report.line(f"re-run {ids[0]} {days[0]}: {meta.get('decision')} (fetched {meta.get('rows_fetched')} rows)")

    for outcome in evaluate_materialized():  # the same checks over everything cached now
        ctx.report.line(f"cache now: {outcome.line()}")
