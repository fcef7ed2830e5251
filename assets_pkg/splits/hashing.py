"""A known customer's side: a salted md5 of (``RANDOM_SEED``, customer id) against
``TRAIN_RATIO`` (DESIGN.md 4.1), in Python and as the SQL the allocation runs (no dagster import).

``u = int(md5(f"{RANDOM_SEED}:{customer}")[:8 bytes], big endian) / 2**64``; the side is
``train`` when ``u < TRAIN_RATIO``, else ``val``. md5 is specified (unlike DuckDB's
``hash()``), so sides are stable across DuckDB versions, processes and growing data: adding
a shard never moves a known customer.
"""

import hashlib


def hash_fraction(seed: int, customer: str) -> float:
    """Reference implementation of the salted hash (the SQL below must agree)."""
    digest = hashlib.md5(f"{seed}:{customer}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def side_of(seed: int, ratio: float, customer: str) -> str:
    return "train" if hash_fraction(seed, customer) < ratio else "val"


FRACTION_SQL = "CAST(('0x' || substr(md5(CAST(? AS VARCHAR) || ':' || customer), 1, 16))::UBIGINT AS DOUBLE) / 18446744073709551616.0"
