"""Ingest checks over what is on disk (`assets-pkg check`); the run computes the same in-op."""

from assets_pkg.checking import CheckOutcome
from assets_pkg.ingest.assets import inbox_dir, output_root
from assets_pkg.ingest.files import scan_inbox
from assets_pkg.ingest.quality import counts_on_disk, reject_rate_outcome
from assets_pkg.ingest.settings import IngestSettings
from assets_pkg.storage import is_remote
from assets_pkg.storage.objects import list_files


def evaluate_materialized() -> list[CheckOutcome]:
    counts, unaccounted = counts_on_disk(output_root())
    # a folder's partition is its inbox file's name (a folder whose file left the inbox
    # counts in the total only)
    partition_of = {found.stem: found.partition_key for found in scan_inbox(inbox_dir()).files}
    return [reject_rate_outcome(counts, IngestSettings.from_env().reject_warn_rate, unaccounted, partition_of)]


def multi_object_folders() -> list:
    """Every ingested folder in an object-store warehouse, committed or not, for
    `assets-pkg check` to verify and to report uncommitted uploads in (a first ingest killed
    before its commit leaves parts no reader sees); [] for a local root (one rename there)."""
    root = output_root()
    if not is_remote(root):
        return []
    return sorted((p for p in list_files(root, folders=True) if not p.name.startswith(".")), key=str)
