"""Sample inbox files for `ingest/files`: clean and dirty csv, tsv, gzip jsonl."""

import gzip
import json
import random
from pathlib import Path

from assets_pkg.ingest.quality import counts_on_disk

INBOX = "files"
ROWS = {"demo": 200_000, "test": 400}


def generate(inbox_dir: Path, scale: str = "demo") -> None:
    """Write the sample files into ``inbox_dir`` (a local folder or an object-store inbox)."""
    from assets_pkg.demo.framework import inbox_writer

    rows = ROWS[scale]
    rng = random.Random(7)
    with inbox_writer(inbox_dir) as folder:
        _orders_csv(folder / "orders.csv", rows, rng)
        _products_tsv(folder / "products.tsv", max(rows // 100, 20), rng)
        _events_jsonl_gz(folder / "events.jsonl.gz", max(rows // 4, 100), rng)


def _orders_csv(path: Path, rows: int, rng: random.Random) -> None:
    """Orders with a declared schema and a few bad rows: text amounts and ragged lines."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("order_id,customer_id,amount,ordered_at\n")
        for i in range(rows):
            if i % 997 == 500:
                fh.write(f"{i},C{rng.randint(1, 5000):05d},not-a-number,2025-03-01 10:00:00\n")
            elif i % 1499 == 700:
                fh.write(f"{i},C00001,12.5\n")  # a field short
            else:
                day, second = rng.randint(1, 28), rng.randint(0, 86399)
                fh.write(
                    f"{i},C{rng.randint(1, 5000):05d},{rng.uniform(1, 500):.2f},"
                    f"2025-03-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}\n"
                )
    path.with_name(path.name + ".schema.json").write_text(
        json.dumps({"order_id": "int64", "customer_id": "string", "amount": "float64", "ordered_at": "timestamp"})
    )


def _products_tsv(path: Path, rows: int, rng: random.Random) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("sku\tname\tprice\n")
        for i in range(rows):
            fh.write(f"SKU{i:05d}\tproduct {i}\t{rng.uniform(1, 99):.2f}\n")


def _events_jsonl_gz(path: Path, rows: int, rng: random.Random) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i in range(rows):
            if i == rows // 2:
                fh.write('{"event_id": "broken", "level": \n')  # one broken line -> one reject
                continue
            fh.write(json.dumps({"event_id": f"e{i}", "level": rng.choice(["INFO", "WARN", "ERROR"]), "value": i}) + "\n")


def run(ctx) -> None:
    results = ctx.evaluate_sensor("ingest_file_sensor")
    ctx.report.line(f"sensor ingest_file_sensor launched {len(results)} run(s)")
    counts, unaccounted = counts_on_disk(ctx.settings.warehouse / "ingest" / "files")
    for name, (row_lines, rejected_lines) in counts.items():
        ctx.report.line(f"{name:<12} row lines={row_lines:>9,}  rejected lines={rejected_lines:>5,}")
    for name, problem in unaccounted.items():
        ctx.report.line(f"{name:<12} LINES UNACCOUNTED: {problem}")
