"""Ingest checks over what is on disk (`assets-pkg check`); the run computes the same in-op."""

from assets_pkg.checking import CheckOutcome
from assets_pkg.ingest.assets import output_root
from assets_pkg.ingest.quality import counts_on_disk, reject_rate_outcome
from assets_pkg.ingest.settings import IngestSettings


def evaluate_materialized() -> list[CheckOutcome]:
    counts, unaccounted = counts_on_disk(output_root())
    return [reject_rate_outcome(counts, IngestSettings.from_env().reject_warn_rate, unaccounted)]
