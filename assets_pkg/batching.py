"""How a fan-out run's partitions are cut into steps (no dagster import): shared by the
splits fan-out and the generic one of the time series and ingest."""


def batches(keys: list[str], size: int) -> list[list[str]]:
    """``keys`` in order, in as few consecutive batches of at most ``size`` as they need, of
    even sizes (they differ by one at most): the steps of a pass take about as long as each
    other, instead of a short last one running alone while the other workers idle."""
    if size < 1:
        raise ValueError(f"batch size {size} is not >= 1")
    count = -(-len(keys) // size)
    if not count:
        return []
    small, extra = divmod(len(keys), count)
    out, start = [], 0
    for i in range(count):
        end = start + small + (1 if i < extra else 0)
        out.append(list(keys[start:end]))
        start = end
    return out
