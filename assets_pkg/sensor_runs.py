"""Inbox sensors that never lose work: runs kept in the cursor until they succeed.

An inbox sensor remembers what it has requested (``seen``: item -> identity, e.g. a file
name -> size:mtime) so one file is not requested twice while its run is in flight. If that
run then fails or is canceled, nothing would request the work again: the cursor says
"seen", and the daemon skips a run key it already launched. So every request is tracked
in the cursor with the items it covers, and each tick looks its run up in the instance:

- success: forgotten (its items stay seen, unless the domain keeps its own record of what
  is done: ``forget_on_success``);
- failure / canceled: its items are un-seen, so the sensor's own logic finds them again
  this very tick;
- anything else (queued, started, or not created yet): still in flight.

A request's run key is its base key (a digest of the work) the first time, then
``<base>~retry<n>``: the first one no run of this sensor has used yet, so a request of the
same work after a failed run is never skipped by the daemon. One base is never in flight
twice. Cursor: ``{"seen": {...}, "runs": {run_key: {"base": key, "items": {...}}}}`` plus
whatever a sensor adds.
"""

import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
RETRY_TAG = "assets_pkg/retry_of"


@dataclass
class TrackedCursor:
    sensor_name: str
    seen: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, sensor_name: str, text: str | None, legacy_seen_key: str | None = None) -> "TrackedCursor":
        """``legacy_seen_key``: the field of a cursor written before runs were tracked that
        held what was seen (None: that whole cursor was the seen map)."""
        data = json.loads(text) if text else {}
        if "runs" not in data:
            seen = data.get(legacy_seen_key, {}) if legacy_seen_key else data
            return cls(sensor_name, seen=dict(seen))
        extra = {k: v for k, v in data.items() if k not in ("seen", "runs")}
        return cls(sensor_name, dict(data.get("seen", {})), dict(data["runs"]), extra)

    def dumps(self) -> str:
        return json.dumps({**self.extra, "seen": self.seen, "runs": self.runs}, sort_keys=True)

    def settle(self, context: dg.SensorEvaluationContext, forget_on_success: bool = False) -> None:
        """Look up every tracked run: forget the finished ones; the items of a failed or
        canceled one (and of a successful one with ``forget_on_success``) are un-seen."""
        for run_key, entry in list(self.runs.items()):
            status = run_status(context.instance, self.sensor_name, run_key)
            failed = status in FAILED
            if status != dg.DagsterRunStatus.SUCCESS and not failed:
                continue  # still in flight
            del self.runs[run_key]
            if failed or forget_on_success:
                for item, identity in entry["items"].items():
                    if self.seen.get(item) == identity:
                        del self.seen[item]
            if failed:
                context.log.warning(
                    f"run {run_key} {status.value.lower()}: its {len(entry['items'])} item(s) will be requested again"
                )

    def request(self, context: dg.SensorEvaluationContext, base: str, items: dict, **kwargs) -> dg.RunRequest | None:
        """A RunRequest for ``items`` (marked seen), tracked until its run finishes; None
        when a run of ``base`` is already in flight."""
        self.seen.update(items)
        if any(entry["base"] == base for entry in self.runs.values()):
            return None
        run_key, retry = base, 0
        while run_status(context.instance, self.sensor_name, run_key) is not None:
            retry += 1
            run_key = f"{base}~retry{retry}"
        self.runs[run_key] = {"base": base, "items": dict(items)}
        tags = dict(kwargs.pop("tags", None) or {})
        if retry:
            tags[RETRY_TAG] = base
        return dg.RunRequest(run_key=run_key, tags=tags, **kwargs)


def work_key(prefix: str, work) -> str:
    """The base run key of a piece of work: ``<prefix>-<digest of it>`` (JSON-able)."""
    return f"{prefix}-{hashlib.md5(json.dumps(work, sort_keys=True).encode()).hexdigest()}"


def run_status(instance: dg.DagsterInstance, sensor_name: str, run_key: str) -> dg.DagsterRunStatus | None:
    """Status of the newest run this sensor launched under ``run_key`` (None: none yet)."""
    for run in instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key})):
        if run.tags.get(SENSOR_NAME_TAG) == sensor_name:  # run keys are per sensor, as the daemon reads them
            return run.status
    return None
