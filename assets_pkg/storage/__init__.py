"""The storage layer: the one place that knows whether the data root is a local folder or an
object store, and how to publish, list, lock and query files in each (DESIGN section 8).
Domains ask :mod:`assets_pkg.layout` for locations and :mod:`assets_pkg.io` to write them;
both resolve here. See docs/storage.md."""

from assets_pkg.storage.root import (
    StorageError,
    as_path,
    check_reachable,
    is_remote,
    is_url,
    local_scratch,
    url,
)

__all__ = ["StorageError", "as_path", "check_reachable", "is_remote", "is_url", "local_scratch", "url"]
