"""Property: applying batches one by one through plan + range rebuild gives exactly the
files of a full rebuild from all batches (and of the naive reference model)."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets_pkg.duck import connect
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.engine import rebuild_months
from assets_pkg.summary.months import month_range
from assets_pkg.summary.plan import plan_batches
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, reference, write_batch

MONTHS = month_range("2024-01", "2024-10")
LENGTH = 4

record = st.tuples(
    st.integers(1, 4),  # account
    st.sampled_from(MONTHS),
    st.one_of(st.none(), st.integers(-50, 50).map(float)),
    st.one_of(st.none(), st.integers(0, 90)),
    st.integers(0, 3),  # base_ts minutes: small range -> many ties
)
batches_st = st.lists(st.lists(record, max_size=6), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=batches_st)
def test_incremental_equals_full_rebuild(data_root, batches):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inbox, inc, full = tmp / "inbox", tmp / "inc", tmp / "full"
        inc.mkdir()
        state_file = tmp / "state.json"
        cfg = cfg_for(inbox, history_length=LENGTH, first_month="2024-01")
        con = connect()
        named = []
        for i, records in enumerate(batches):
            name = f"b{i:03d}.parquet"
            write_batch(inbox, name, records)
            named.append((name, records))
            from assets_pkg.summary.source import list_batch_files

            files = list_batch_files(inbox)
            processed = summary_state.load_processed(state_file)
            new, gone = summary_state.pending_files(files, processed)
            assert [f.name for f in new] == [name]
            plan = plan_batches(con, cfg, new, files, sorted(inc.glob("*.parquet")), gone)
            if plan.empty:
                assert not records
                summary_state.record_without_rebuild(new, state_file)
                continue
            res = rebuild_months(cfg, plan.start, plan.end, lambda m: inc / f"{m}.parquet", con=con, state_file=state_file)
            assert res.newly_processed == [name]
            assert all(o.passed for o in res.outcomes), [o.line() for o in res.outcomes if not o.passed]
        full_build(cfg, full, "2024-01", "2024-12")
        assert read_months(inc) == read_months(full)
        assert read_months(full) == reference(named, LENGTH)
