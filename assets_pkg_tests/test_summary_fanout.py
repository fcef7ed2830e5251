"""The summary fan-out (bucket x month-chunk steps + combine) equals the one-step build."""

import dataclasses
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets_pkg import layout
from assets_pkg.duck import connect, current_setting
from assets_pkg.settings import SettingError
from assets_pkg.summary import fanout
from assets_pkg.summary.fanout import FanoutError, FanoutSettings, run_fanout
from assets_pkg.summary.month_file import FINGERPRINT_KEY
from assets_pkg.summary.months import month_range
from assets_pkg.summary.plan import plan_batches
from assets_pkg.summary.source import list_batch_files
from assets_pkg_tests.test_summary_helpers import SCHEMA, cfg_for, full_build, read_months, write_batch

MONTHS = month_range("2024-01", "2024-12")
LENGTH = 4

record = st.tuples(
    st.integers(1, 12),  # account
    st.sampled_from(MONTHS[:6] + MONTHS[8:]),  # a gap: 2024-07 and 2024-08 never have records
    st.one_of(st.none(), st.integers(-50, 50).map(float)),
    st.one_of(st.none(), st.integers(0, 90)),
    st.integers(0, 3),  # base_ts minutes: small range -> ties and late corrections
)


def fingerprints(folder: Path) -> dict:
    return {p.stem: (pq.read_schema(p).metadata or {}).get(FINGERPRINT_KEY) for p in sorted(folder.glob("*.parquet"))}


def reported(outcomes) -> list:
    """What a run reports of its checks: each outcome and each month's, in full."""
    return [(o.name, o.passed, o.description, o.metadata,
             {m: (p.passed, p.description, p.metadata) for m, p in o.by_partition.items()}) for o in outcomes]


def read_staged(path: Path) -> pa.Table:
    return pa.ipc.open_file(str(path)).read_all()


def shuffled(seed: int):
    def order(steps):
        steps = list(steps)
        random.Random(seed).shuffle(steps)
        return steps
    return order


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    first=st.lists(record, min_size=1, max_size=25),
    late=st.lists(record, max_size=10),
    buckets=st.integers(1, 4),
    chunk=st.integers(0, 6),
    combine=st.integers(1, 7),
    seed=st.integers(0, 1000),
)
def test_fanout_equals_one_step_build_then_after_an_incremental_batch(data_root, first, late, buckets, chunk, combine,
                                                                      seed):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox, fan, one = tmp / "inbox", tmp / "fan", tmp / "one"
        fan.mkdir()
        cfg = cfg_for(inbox, history_length=LENGTH, first_month="2024-01")
        split = FanoutSettings(buckets=buckets, chunk_months=chunk, combine_months=combine)
        write_batch(inbox, "b000.parquet", first)
        fanned = run_fanout(cfg, "2024-01", "2024-12", lambda m: fan / f"{m}.parquet", "r1", split,
                            state_file=tmp / "state.json", step_order=shuffled(seed))
        built = full_build(cfg, one, "2024-01", "2024-12")
        assert read_months(fan) == read_months(one)
        assert reported(fanned.outcomes) == reported(built.outcomes)
        assert fingerprints(fan) == fingerprints(one)

        # a later batch (new accounts, forward months, corrections of earlier months)
        write_batch(inbox, "b001.parquet", [(k, m, b, d, t + 2) for k, m, b, d, t in late])
        con = connect()
        files = list_batch_files(inbox)
        new = [f for f in files if f.name == "b001.parquet"]
        plan = plan_batches(con, cfg, new, files, sorted(fan.glob("*.parquet")), {})
        if not plan.empty:
            res = run_fanout(cfg, plan.start, plan.end, lambda m: fan / f"{m}.parquet", "r2", split,
                             state_file=tmp / "state.json", step_order=shuffled(seed + 1))
            assert res.newly_processed == ["b001.parquet"]
        full_build(cfg, one, "2024-01", "2024-12")
        assert read_months(fan) == read_months(one)
        assert fingerprints(fan) == fingerprints(one)
        assert not layout.staging_dir("summary", None).exists() or not any(layout.staging_dir("summary", None).iterdir())


def _inbox(tmp_path: Path, accounts: int = 40) -> Path:
    inbox = tmp_path / "inbox"
    records = [(k, m, float(k * 10 + i), i % 3, i) for k in range(1, accounts + 1) for i, m in enumerate(MONTHS)
               if (k + i) % 5]
    write_batch(inbox, "b000.parquet", records)
    return inbox


def test_buckets_split_the_accounts_disjointly_and_each_step_writes_only_its_bucket(data_root, tmp_path):
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=3, chunk_months=12))
    seen = []
    for b in range(3):
        fanout.build_bucket(cfg, plan, b, "2024-01", "2024-12")
        keys = set(read_staged(fanout.staged_file(plan, "2024-03", b)).column("cons_acct_key").to_pylist())
        assert keys
        seen.append(keys)
    assert set.union(*seen) == set(range(1, 41)) - {k for k in range(1, 41) if (k + 2) % 5 == 0}
    assert sum(len(s) for s in seen) == len(set.union(*seen))
    assert not layout.asset_dir(["summary", "account_summary"]).exists()  # nothing published by a step


def test_a_later_chunk_seeds_its_history_from_the_earlier_chunk_s_staged_files(data_root, tmp_path):
    """The months before a chunk come from its bucket's staged files of the run when they are
    written (Arrow files carrying the month's fingerprint), not from the source again."""
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=2, chunk_months=4))
    later = fanout.build_bucket(cfg, plan, 0, "2024-05", "2024-08")
    assert later.seeded_months == 0
    from_source = [read_staged(fanout.staged_file(plan, m, 0)) for m in month_range("2024-05", "2024-08")]
    fanout.build_bucket(cfg, plan, 0, "2024-01", "2024-04")
    again = fanout.build_bucket(cfg, plan, 0, "2024-05", "2024-08")
    assert again.seeded_months == LENGTH - 1
    assert again.source_rows_read < later.source_rows_read
    assert [read_staged(fanout.staged_file(plan, m, 0)) for m in month_range("2024-05", "2024-08")] == from_source


def test_a_combine_concatenates_bucket_files_in_key_order_and_refuses_files_out_of_order(data_root, tmp_path):
    """The buckets are consecutive key ranges: a month is its bucket files one after another.
    Bucket files swapped (another plan's files) would publish a month out of key order: the
    combine stops naming the file instead, and nothing is published."""
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=3, chunk_months=12))
    assert plan.buckets == 3 and len(plan.bounds) == 2
    for b in range(3):
        fanout.build_bucket(cfg, plan, b, "2024-01", "2024-12")
    last_keys = [read_staged(fanout.staged_file(plan, "2024-05", b)).column(0).to_pylist() for b in range(3)]
    assert all(max(last_keys[b]) < plan.bounds[b] <= min(last_keys[b + 1]) for b in range(2))
    first, second = fanout.staged_file(plan, "2024-05", 0), fanout.staged_file(plan, "2024-05", 1)
    swap = first.with_suffix(".swap")
    first.rename(swap), second.rename(first), swap.rename(second)
    out = tmp_path / "out"
    with pytest.raises(FanoutError, match=r"bucket-00001\.arrow: its first key .* is not above the previous"):
        fanout.combine_group(cfg, plan, "2024-01", "2024-12", lambda m: out / f"{m}.parquet")
    assert not (out / "2024-05.parquet").exists()
    second.rename(swap), first.rename(second), swap.rename(first)
    fanout.combine_group(cfg, plan, "2024-01", "2024-12", lambda m: out / f"{m}.parquet")
    one = tmp_path / "one-step"
    full_build(cfg, one, "2024-01", "2024-12")
    assert read_months(out) == read_months(one)


def test_text_keys_of_any_characters_are_bucketed_by_bound_values(data_root, tmp_path):
    """VARCHAR keys with quotes, SQL and non-ASCII characters: the bucket bounds reach DuckDB
    as values, never as SQL text, and the buckets' concatenation is the one-step build's
    key order."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    keys = ["o'brien", "a\"b", "x'); DROP TABLE t; --", "zoë", "Ωmega", "\\back", "  padded", "plain", "%_like",
            "ö'", "'", "''"]
    records = [(k, m, float(i), i % 3, i) for i, k in enumerate(keys) for m in MONTHS[: 3 + i % 9]]
    table = pa.table({"cons_acct_key": [r[0] for r in records], "rpt_as_of_mo": [r[1] for r in records],
                      "balance_am": [r[2] for r in records], "days_past_due": pa.array([r[3] for r in records], pa.int32()),
                      "base_ts": pa.array([np.datetime64("2024-01-01T00:00", "us")] * len(records))})
    pq.write_table(table, inbox / "b000.parquet")
    cfg = cfg_for(inbox, history_length=LENGTH, first_month="2024-01", key_type="VARCHAR")
    fan, one = tmp_path / "fan", tmp_path / "one"
    fanned = run_fanout(cfg, "2024-01", "2024-12", lambda m: fan / f"{m}.parquet", "r1",
                        FanoutSettings(buckets=4, chunk_months=5, combine_months=4), update_state=False)
    assert fanned.plan.buckets == 4
    full_build(cfg, one, "2024-01", "2024-12")
    assert read_months(fan) == read_months(one)
    assert sum(fanned.rows_per_month.values()) == len(records)


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(1, 50), min_size=1, max_size=60), buckets=st.integers(1, 12))
def test_bucket_bounds_cut_the_keys_into_ranges_of_about_equal_weight(weights, buckets):
    keys = list(range(0, 3 * len(weights), 3))
    bounds = fanout.bucket_bounds(keys, weights, buckets)
    assert bounds == sorted(set(bounds)) and len(bounds) <= buckets - 1
    assert all(b in keys and b != keys[0] for b in bounds)  # a bound is a key: no bucket is empty
    of = fanout.bucket_of(bounds, keys)
    assert list(of) == sorted(of) and set(of) == set(range(len(bounds) + 1))
    total, heaviest = sum(weights), max(weights)
    for b in range(len(bounds) + 1):
        # each range's weight: at most its share plus the key that crossed the line
        assert sum(w for w, o in zip(weights, of) if o == b) <= total / buckets + heaviest
    if len(bounds) < buckets - 1:  # fewer ranges only when no key could start another
        assert len(bounds) + 1 >= min(buckets, len(keys)) or heaviest > total / buckets


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5)), max_size=80), every=st.integers(1, 40),
       whole=st.dictionaries(st.integers(0, 5), st.integers(0, 10_000), min_size=6, max_size=6))
def test_a_bucket_s_months_are_never_sized_empty_when_the_source_has_records(rows, every, whole):
    """The build takes a month with 0 expected records for empty and skips it: a sampled
    estimate must never say 0 where the whole source has records, unless the sample is the
    whole source."""
    bucket = np.array([r[0] for r in rows], dtype=np.int64)
    months = np.array([r[1] for r in rows], dtype=np.int64)
    if every == 1:
        whole = {m: max(n, sum(1 for r in rows if r[1] == m)) for m, n in whole.items()}
    out = fanout.bucket_month_rows(3, bucket, months, every, whole)
    for b in range(3):
        for m, total in whole.items():
            n = out[b][str(m)]
            sampled = sum(1 for r in rows if r == (b, m))
            assert n <= total
            if every == 1:
                assert n == sampled
            else:
                assert (n > 0) == (total > 0) and n >= min(total, sampled * every)


def test_combine_refuses_until_every_bucket_of_the_chunk_is_done(data_root, tmp_path):
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    out = tmp_path / "out"
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=2, chunk_months=6))
    fanout.build_bucket(cfg, plan, 0, "2024-01", "2024-06")
    with pytest.raises(FanoutError, match=r"bucket step\(s\) \[1\] of 2 have not finished"):
        fanout.combine_group(cfg, plan, "2024-01", "2024-06", lambda m: out / f"{m}.parquet")
    assert not out.exists()
    fanout.build_bucket(cfg, plan, 1, "2024-01", "2024-06")
    rows = fanout.combine_group(cfg, plan, "2024-01", "2024-06", lambda m: out / f"{m}.parquet")["rows_per_month"]
    assert sum(rows.values()) == sum(pq.read_metadata(p).num_rows for p in out.glob("*.parquet")) > 0
    with pytest.raises(FanoutError, match="were not combined yet"):
        fanout.finish(cfg, plan, update_state=False)


def test_a_batch_changed_after_the_plan_stops_the_step_naming_it(data_root, tmp_path):
    inbox = _inbox(tmp_path)
    cfg = cfg_for(inbox, history_length=LENGTH, first_month="2024-01")
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=2, chunk_months=12))
    write_batch(inbox, "b000.parquet", [(1, "2024-01", 1.0, 0, 99)])
    with pytest.raises(FanoutError, match=r"b000.parquet .* start a new run"):
        fanout.build_bucket(cfg, plan, 0, "2024-01", "2024-12")
    assert not fanout.staging_dir(plan).exists()


def test_a_step_killed_mid_write_leaves_no_month_file(data_root, tmp_path, monkeypatch):
    """The bucket writer dies after its first month: nothing in the asset folder, no done
    marker, and the combine refuses; a re-run of the step then completes the run."""
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    out = layout.asset_dir(["summary", "account_summary"])
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=1, chunk_months=12))
    real = fanout.write_staged_file
    calls = []

    def dying(rows, path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(rows, path, **kw)

    monkeypatch.setattr(fanout, "write_staged_file", dying)
    with pytest.raises(KeyboardInterrupt):
        fanout.build_bucket(cfg, plan, 0, "2024-01", "2024-12")
    monkeypatch.setattr(fanout, "write_staged_file", real)
    assert not out.exists()
    assert not fanout.done_marker(plan, 0, "2024-01", "2024-12").exists()
    with pytest.raises(FanoutError):
        fanout.combine_group(cfg, plan, "2024-01", "2024-12", lambda m: layout.partition_file(["summary", "account_summary"], m))
    fanout.build_bucket(cfg, plan, 0, "2024-01", "2024-12")
    fanout.combine_group(cfg, plan, "2024-01", "2024-12", lambda m: layout.partition_file(["summary", "account_summary"], m))
    one = tmp_path / "one"
    full_build(cfg, one, "2024-01", "2024-12")
    assert read_months(out) == read_months(one)


def test_bucket_count_follows_the_step_memory_budget(tmp_path):
    cfg = cfg_for(tmp_path)
    budget = FanoutSettings(step_memory_mb=1024)
    small = fanout.choose_buckets(cfg, 1_000_000, budget)
    assert fanout.choose_buckets(cfg, 2_000_000, budget) in (2 * small - 1, 2 * small)
    assert fanout.choose_buckets(cfg, 1_000, budget) == 1
    assert fanout.choose_buckets(cfg, 2_000_000, FanoutSettings(buckets=7)) == 7


def test_fanout_settings_come_from_env_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("SUMMARY_BUCKETS", "6")
    monkeypatch.setenv("SUMMARY_CHUNK_MONTHS", "12")
    s = FanoutSettings.from_env()
    assert (s.buckets, s.chunk_months) == (6, 12)
    monkeypatch.setenv("SUMMARY_CHUNK_MONTHS", "-1")
    with pytest.raises(SettingError, match="SUMMARY_CHUNK_MONTHS"):
        FanoutSettings.from_env()
    monkeypatch.setenv("SUMMARY_CHUNK_MONTHS", "x")
    with pytest.raises(SettingError, match="SUMMARY_CHUNK_MONTHS"):
        FanoutSettings.from_env()


def test_plan_scans_every_batch_within_a_small_duckdb_memory_limit(data_root, tmp_path):
    """The plan's two whole-source queries (the profile, the account sample) over four
    batches of one 200k-row row group each. With DuckDB's Parquet prefetching (its default)
    they needed more than 24 MB and failed with "Out of Memory" under a 16 MB limit, as the
    plan did with 2M accounts under 300 MB; without it they fit in 10 MB."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rng = np.random.default_rng(7)
    n = 200_000
    for f in range(4):
        minutes = rng.integers(0, 10**6, n)
        table = pa.table({
            "cons_acct_key": rng.integers(0, 10**12, n),
            "rpt_as_of_mo": np.array(MONTHS)[rng.integers(0, len(MONTHS), n)],
            "balance_am": rng.random(n),
            "days_past_due": rng.integers(0, 90, n).astype(np.int32),
            "base_ts": np.datetime64("2024-01-01T00:00", "us") + minutes.astype("timedelta64[m]"),
        }, schema=SCHEMA)
        pq.write_table(table, inbox / f"b{f}.parquet", row_group_size=n)
    cfg = cfg_for(inbox, first_month="2024-01")
    con = connect(memory_limit="16MB", threads=2)
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=2), con=con)
    assert (plan.profile["rows"], plan.profile["bad_rows"], plan.profile["problems"]) == (4 * n, 0, [])
    assert sum(plan.profile["rows_per_month"].values()) == 4 * n
    assert abs(plan.accounts - 4 * n) < 0.05 * 4 * n  # random keys: all distinct, estimated from a sample of one in 4
    assert current_setting(con, "disable_parquet_prefetching") is False  # the setting is back for later queries


def test_plan_round_trips_through_json(data_root, tmp_path):
    cfg = cfg_for(_inbox(tmp_path), history_length=LENGTH, first_month="2024-01")
    plan = fanout.plan_fanout(cfg, "2024-01", "2024-12", "r1", FanoutSettings(buckets=2, chunk_months=5))
    assert fanout.FanoutPlan.from_json(plan.to_json()) == plan
    assert plan.chunks == [("2024-01", "2024-05"), ("2024-06", "2024-10"), ("2024-11", "2024-12")]
    assert len(plan.steps) == 6 and os.path.basename(str(fanout.staging_dir(plan))) == "r1"


def test_checks_of_a_fanout_run_equal_the_one_step_build_s_when_they_fail(data_root, tmp_path):
    """A run over 2024-04..2024-12 after 2024-03's file went stale (history_consistency
    fails on the pair 03/04, for more accounts than the 20 keys reported): every check,
    each month's result and the offending keys are the one-step build's, whatever the
    combine groups."""
    inbox = _inbox(tmp_path, accounts=60)
    cfg = cfg_for(inbox, history_length=LENGTH, first_month="2024-01")
    results = {}
    for name, combine in (("one", None), ("g2", 2), ("g4", 4), ("g9", 9)):
        out = tmp_path / name
        full_build(cfg, out, "2024-01", "2024-12")
        stale = pq.read_table(out / "2024-03.parquet")
        hist = stale.column("balance_am_history").to_pylist()
        bumped = pa.array([[None if v is None else v + 1 for v in h] for h in hist], stale.schema.field("balance_am_history").type)
        pq.write_table(stale.set_column(stale.schema.get_field_index("balance_am_history"), "balance_am_history", bumped),
                       out / "2024-03.parquet")
        month = lambda m, out=out: out / f"{m}.parquet"  # noqa: E731
        if combine is None:
            results[name] = full_build(cfg, out, "2024-04", "2024-12").outcomes
        else:
            split = FanoutSettings(buckets=3, chunk_months=4, combine_months=combine)
            results[name] = run_fanout(cfg, "2024-04", "2024-12", month, name, split, update_state=False).outcomes
    failed = {o.name for o in results["one"] if not o.passed}
    assert failed == {"history_consistency"}
    assert all(reported(results[name]) == reported(results["one"]) for name in ("g2", "g4", "g9"))


def test_combine_groups_are_handed_out_costliest_first():
    """A group's cost is the source rows of its months and of the history months before each:
    with the same rows every month, the first year (short histories) comes last."""
    from assets_pkg.summary.months import month_index
    from assets_pkg.summary.source import SourceProfile

    groups = [("2021-01", "2021-12"), ("2022-01", "2022-12"), ("2023-01", "2023-06"), ("2023-07", "2023-12")]
    flat = {month_index(m): 100 for m in month_range("2021-01", "2023-12")}
    plan = fanout.FanoutPlan(run="r", start="2021-01", end="2023-12", buckets=2, chunks=[], files={},
                             now_month="2024-01", groups=groups,
                             profile=SourceProfile(rows=3600, rows_per_month=flat).to_dict())
    # 12-month history: 2022 has full histories (144 cells a month x 12), 2021 a triangle (78 x 100);
    # each half of 2023 has full histories over 6 months
    assert fanout.groups_costliest_first(plan, history_length=12) == [
        ("2022-01", "2022-12"), ("2021-01", "2021-12"), ("2023-01", "2023-06"), ("2023-07", "2023-12")]
    # growing rows: the six latest months outweigh 2022's twelve once histories count
    growing = {m: 10 * (i + 1) for i, m in enumerate(sorted(flat))}
    plan = dataclasses.replace(plan, profile=SourceProfile(rows=6660, rows_per_month=growing).to_dict())
    assert fanout.groups_costliest_first(plan, history_length=12) == [
        ("2023-07", "2023-12"), ("2022-01", "2022-12"), ("2023-01", "2023-06"), ("2021-01", "2021-12")]
    assert fanout.groups_costliest_first(plan, history_length=1) == [
        ("2022-01", "2022-12"), ("2023-07", "2023-12"), ("2023-01", "2023-06"), ("2021-01", "2021-12")]
    # no profile: the plan's order
    assert fanout.groups_costliest_first(dataclasses.replace(plan, profile={}), history_length=12) == groups
