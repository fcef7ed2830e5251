"""`assets-pkg splits ...`: look at the shard inbox and the split without the UI."""

import json


def _cmd_shards(args) -> int:
    from assets_pkg import layout
    from assets_pkg.settings import get_settings
    from assets_pkg.splits.discovery import discover
    from assets_pkg.storage import check_reachable

    check_reachable(get_settings().data_root)
    inbox = layout.inbox_dir("transactions")
    found = discover(inbox)
    print(f"inbox: {inbox}")
    for shard in found.shards:
        size = shard.path.stat().st_size
        fmt = shard.format + ("+gz" if shard.compressed else "")
        print(f"  {shard.key}  {fmt:10} {size:>12,d} B  {shard.name}")
    if found.signature:
        print(f"signature (header-less text shards): {', '.join(found.signature)}")
    for problem in found.problems:
        print(f"  REFUSED  {problem}")
    print(f"{len(found.shards)} shard(s), {len(found.problems)} refused")
    return 1 if (found.problems and args.strict) else 0


def _cmd_manifest(args) -> int:
    from assets_pkg.settings import get_settings
    from assets_pkg.splits.pipeline import manifest_file, read_json
    from assets_pkg.storage import check_reachable

    check_reachable(get_settings().data_root)
    manifest = read_json(manifest_file(get_settings().warehouse))
    if manifest is None:
        print("no split manifest yet: materialize splits/customer_allocation first")
        return 1
    if args.full:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    print(f"split date {manifest['split_date']}, train ratio {manifest['train_ratio']}, seed {manifest['random_seed']}, "
          f"policy {manifest['oot_policy']}")
    print(f"customers: {manifest['customers']}")
    print(f"rows: {manifest['rows']}")
    print(f"labels: {manifest['labels']['mode']} {manifest['labels']['map'] or ''}")
    for key, entry in sorted(manifest["shards"].items()):
        r = entry["rows"]
        print(f"  {key}  {entry['source']:28} in {entry['rows_in']:>9,d}  train {r['train']:>9,d}  val {r['val']:>8,d}  "
              f"oot {r['oot']:>8,d}  dropped {r['dropped_policy'] + r['dropped_label'] + r['dropped_null_customer'] + r['dropped_bad_date']:>8,d}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("splits", help="temporal split: list shards, show the split manifest")
    sub = parser.add_subparsers(dest="splits_command", required=True)
    shards = sub.add_parser("shards", help="list the shards in data/inbox/transactions and the refused files")
    shards.add_argument("--strict", action="store_true", help="exit 1 when a file is refused")
    shards.set_defaults(func=_cmd_shards)
    manifest = sub.add_parser("manifest", help="show the current split manifest (rows per shard and split)")
    manifest.add_argument("--full", action="store_true", help="print the whole JSON")
    manifest.set_defaults(func=_cmd_manifest)
