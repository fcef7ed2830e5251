"""The torch IterableDataset over split shards: DataLoader workers read disjoint shards."""

from collections import Counter

import pyarrow as pa
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from assets_pkg.demo.splits import write_shard  # noqa: E402
from assets_pkg.splits.dataset import SplitShardDataset, split_files  # noqa: E402


def _shards(folder, fmt="parquet"):
    ids = []
    for number, n in ((1, 7), (5, 11), (10, 3), (42, 13), (99, 5)):
        values = list(range(number * 1000, number * 1000 + n))
        ids += values
        write_shard(pa.table({"transaction_id": values, "amount": [float(v) / 2 for v in values]}),
                    folder / f"part-{number:05d}.{fmt}")
    return ids


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_dataloader_two_workers_every_row_exactly_once(data_root, fmt):
    folder = data_root / "warehouse" / "splits" / "train"
    ids = _shards(folder, fmt)
    dataset = SplitShardDataset("train")
    assert [f.name for f in dataset.files] == [f"part-{n:05d}.{fmt}" for n in (1, 5, 10, 42, 99)]
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    seen = Counter()
    for batch in loader:
        assert isinstance(batch["transaction_id"], torch.Tensor)
        seen.update(batch["transaction_id"].tolist())
    assert seen == Counter(ids)  # every row exactly once, none twice


def test_batches_as_tensors_single_process(data_root):
    folder = data_root / "warehouse" / "splits" / "val"
    ids = _shards(folder)
    got = []
    for batch in SplitShardDataset("val", batch_rows=4):
        assert batch["amount"].dtype == torch.float64
        got += batch["transaction_id"].tolist()
    assert sorted(got) == sorted(ids)


def test_unknown_split_is_refused(data_root):
    with pytest.raises(ValueError, match="unknown split"):
        split_files("test")
